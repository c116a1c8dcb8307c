build-asan/tests/unit/test_delivery.o: tests/unit/test_delivery.c \
 tests/unit/../../src/core/delivery.h tests/unit/../../src/util.h \
 tests/unit/loopsrv.h tests/unit/../../src/http/server.h \
 tests/unit/../../src/http/router.h
tests/unit/../../src/core/delivery.h:
tests/unit/../../src/util.h:
tests/unit/loopsrv.h:
tests/unit/../../src/http/server.h:
tests/unit/../../src/http/router.h:
