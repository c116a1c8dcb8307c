build-asan/src/mainsvc/main.o: src/mainsvc/main.c src/mainsvc/../buf.h \
 src/mainsvc/../http/server.h src/mainsvc/../http/router.h \
 src/mainsvc/../limits.h src/mainsvc/../opts.h src/mainsvc/../util.h
src/mainsvc/../buf.h:
src/mainsvc/../http/server.h:
src/mainsvc/../http/router.h:
src/mainsvc/../limits.h:
src/mainsvc/../opts.h:
src/mainsvc/../util.h:
