build-asan/src/config.o: src/config.c src/config.h src/limits.h \
 src/opts.h
src/config.h:
src/limits.h:
src/opts.h:
