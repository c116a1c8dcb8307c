build-asan/src/api/exchange.o: src/api/exchange.c \
 src/api/../core/payload.h src/api/../core/runner.h \
 src/api/../core/delivery.h src/api/../core/payload.h src/api/../worker.h \
 src/api/../config.h src/api/../core/runner.h src/api/../http/server.h \
 src/api/../http/router.h src/api/api.h src/api/../http/router.h \
 src/api/../http/server.h
src/api/../core/payload.h:
src/api/../core/runner.h:
src/api/../core/delivery.h:
src/api/../core/payload.h:
src/api/../worker.h:
src/api/../config.h:
src/api/../core/runner.h:
src/api/../http/server.h:
src/api/../http/router.h:
src/api/api.h:
src/api/../http/router.h:
src/api/../http/server.h:
