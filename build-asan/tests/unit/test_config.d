build-asan/tests/unit/test_config.o: tests/unit/test_config.c \
 tests/unit/../../src/config.h
tests/unit/../../src/config.h:
