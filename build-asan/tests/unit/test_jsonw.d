build-asan/tests/unit/test_jsonw.o: tests/unit/test_jsonw.c \
 tests/unit/../../src/jsonw.h tests/unit/../../src/buf.h
tests/unit/../../src/jsonw.h:
tests/unit/../../src/buf.h:
