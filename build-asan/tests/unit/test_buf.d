build-asan/tests/unit/test_buf.o: tests/unit/test_buf.c \
 tests/unit/../../src/buf.h
tests/unit/../../src/buf.h:
