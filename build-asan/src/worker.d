build-asan/src/worker.o: src/worker.c src/worker.h src/config.h \
 src/core/runner.h src/core/delivery.h src/core/payload.h \
 src/http/server.h src/http/router.h src/api/api.h \
 src/api/../http/router.h src/api/../http/server.h src/core/delivery.h \
 src/util.h
src/worker.h:
src/config.h:
src/core/runner.h:
src/core/delivery.h:
src/core/payload.h:
src/http/server.h:
src/http/router.h:
src/api/api.h:
src/api/../http/router.h:
src/api/../http/server.h:
src/core/delivery.h:
src/util.h:
