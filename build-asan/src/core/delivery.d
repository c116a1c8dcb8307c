build-asan/src/core/delivery.o: src/core/delivery.c src/core/delivery.h \
 src/core/../limits.h src/core/../util.h
src/core/delivery.h:
src/core/../limits.h:
src/core/../util.h:
