build-asan/src/core/money.o: src/core/money.c src/core/money.h
src/core/money.h:
