build-asan/tests/unit/test_opts.o: tests/unit/test_opts.c \
 tests/unit/../../src/opts.h
tests/unit/../../src/opts.h:
