build-asan/tests/unit/test_server.o: tests/unit/test_server.c \
 tests/unit/loopsrv.h tests/unit/../../src/http/server.h \
 tests/unit/../../src/http/router.h
tests/unit/loopsrv.h:
tests/unit/../../src/http/server.h:
tests/unit/../../src/http/router.h:
