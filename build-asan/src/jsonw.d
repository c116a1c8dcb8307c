build-asan/src/jsonw.o: src/jsonw.c src/jsonw.h src/buf.h
src/jsonw.h:
src/buf.h:
