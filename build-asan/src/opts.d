build-asan/src/opts.o: src/opts.c src/opts.h src/util.h
src/opts.h:
src/util.h:
