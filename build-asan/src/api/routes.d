build-asan/src/api/routes.o: src/api/routes.c src/api/api.h \
 src/api/../http/router.h src/api/../http/server.h \
 src/api/../http/router.h
src/api/api.h:
src/api/../http/router.h:
src/api/../http/server.h:
src/api/../http/router.h:
