build-asan/src/core/deadline.o: src/core/deadline.c src/core/deadline.h \
 src/core/../util.h
src/core/deadline.h:
src/core/../util.h:
