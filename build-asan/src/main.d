build-asan/src/main.o: src/main.c src/config.h src/util.h src/worker.h \
 src/core/runner.h src/core/delivery.h src/core/payload.h \
 src/http/server.h src/http/router.h
src/config.h:
src/util.h:
src/worker.h:
src/core/runner.h:
src/core/delivery.h:
src/core/payload.h:
src/http/server.h:
src/http/router.h:
