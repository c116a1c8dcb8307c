build-asan/tests/unit/test_money.o: tests/unit/test_money.c \
 tests/unit/../../src/core/money.h
tests/unit/../../src/core/money.h:
