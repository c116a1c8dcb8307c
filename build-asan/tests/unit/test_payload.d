build-asan/tests/unit/test_payload.o: tests/unit/test_payload.c \
 tests/unit/../../src/core/payload.h tests/unit/../../src/limits.h
tests/unit/../../src/core/payload.h:
tests/unit/../../src/limits.h:
