build-asan/src/http/server.o: src/http/server.c src/http/server.h \
 src/http/router.h src/http/../buf.h src/http/../jsonw.h \
 src/http/../buf.h src/http/../limits.h src/http/../util.h
src/http/server.h:
src/http/router.h:
src/http/../buf.h:
src/http/../jsonw.h:
src/http/../buf.h:
src/http/../limits.h:
src/http/../util.h:
