build-asan/src/buf.o: src/buf.c src/buf.h src/util.h
src/buf.h:
src/util.h:
