build-asan/src/api/ops.o: src/api/ops.c src/api/../config.h \
 src/api/../util.h src/api/../worker.h src/api/../config.h \
 src/api/../core/runner.h src/api/../core/delivery.h \
 src/api/../core/payload.h src/api/../http/server.h \
 src/api/../http/router.h src/api/api.h src/api/../http/router.h \
 src/api/../http/server.h
src/api/../config.h:
src/api/../util.h:
src/api/../worker.h:
src/api/../config.h:
src/api/../core/runner.h:
src/api/../core/delivery.h:
src/api/../core/payload.h:
src/api/../http/server.h:
src/api/../http/router.h:
src/api/api.h:
src/api/../http/router.h:
src/api/../http/server.h:
