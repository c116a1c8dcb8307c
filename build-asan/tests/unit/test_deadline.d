build-asan/tests/unit/test_deadline.o: tests/unit/test_deadline.c \
 tests/unit/../../src/core/deadline.h
tests/unit/../../src/core/deadline.h:
