build-asan/tests/unit/test_runner.o: tests/unit/test_runner.c \
 tests/unit/../../src/core/runner.h tests/unit/../../src/core/delivery.h \
 tests/unit/../../src/core/payload.h tests/unit/loopsrv.h \
 tests/unit/../../src/http/server.h tests/unit/../../src/http/router.h
tests/unit/../../src/core/runner.h:
tests/unit/../../src/core/delivery.h:
tests/unit/../../src/core/payload.h:
tests/unit/loopsrv.h:
tests/unit/../../src/http/server.h:
tests/unit/../../src/http/router.h:
