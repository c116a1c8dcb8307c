build-asan/tests/unit/test_router.o: tests/unit/test_router.c \
 tests/unit/../../src/http/router.h
tests/unit/../../src/http/router.h:
