# exchanged - build, run and test. See README.md.
#   make          build the programs (build/exchanged, build/exchanged-main) and unit tests
#   make run      install missing Debian packages, build, run the service (+ stand-in main service)
#   make test     install missing Debian packages, build, run every test
#   make SANITIZE=1 ...   the same with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   make SANITIZE=thread ...   the same with ThreadSanitizer (build-tsan/)
#   make bench    install the benchmark's packages, build, run bench/bench.py (docs/PERFORMANCE.md)
#   make fuzz-run [FUZZ_SECONDS=60]   build the libFuzzer targets (clang, build-fuzz/) and run each

CC ?= cc
PKGS := libuv jansson libcurl sqlite3 libcrypto
ifeq ($(SANITIZE),1)
BUILD := build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1 -g
else ifeq ($(SANITIZE),thread)
BUILD := build-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
OPT := -O1 -g
else
BUILD := build
SANFLAGS :=
OPT := -O2 -g
endif

WARN := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wno-format-nonliteral
CFLAGS_ALL = -std=gnu11 $(OPT) $(WARN) $(SANFLAGS) -MMD -MP \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
LDLIBS_ALL = $(SANFLAGS) $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lpthread -lm $(LDLIBS)

LIB_SRC := src/util.c src/output.c src/buf.c src/jsonw.c src/opts.c \
           src/http/server.c src/http/group.c src/http/router.c src/http/client.c \
           src/core/money.c src/core/payload.c src/core/deadline.c src/core/delivery.c \
           src/core/runner.c src/core/backoff.c src/core/idcount.c src/store/store.c src/store/walvfs.c \
           src/store/sqlmem.c src/memtrim.c
EXCHANGED_SRC := src/main.c src/config.c src/worker.c src/api/routes.c src/api/exchange.c \
                 src/api/ops.c src/api/tasks.c
MAIN_SRC := src/mainsvc/main.c src/mainsvc/results.c
UNIT_TESTS := util output buf jsonw opts config router server group client money payload deadline idcount delivery runner \
              backoff store walvfs sqlmem memtrim results

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
EXCHANGED_OBJ := $(EXCHANGED_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(MAIN_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN := $(UNIT_TESTS:%=$(BUILD)/tests/unit/test_%)
FUZZ_TARGETS := http payload opts client
REPLAY_BIN := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/replay_%)

PYTEST := /usr/bin/python3 -m pytest

.PHONY: all deps run test unit e2e clean fuzz fuzz-run bench bench-smoke
.SECONDARY:
all: $(BUILD)/exchanged $(BUILD)/exchanged-main $(BUILD)/bench/loadgen $(UNIT_BIN) $(REPLAY_BIN)

deps:
	@scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libexchange.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/exchanged: $(EXCHANGED_OBJ) $(BUILD)/libexchange.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/exchanged-main: $(MAIN_OBJ) $(BUILD)/libexchange.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

# unit tests: one per module; test_config also links the service's config.c, and
# test_results the stand-in main service's table (src/mainsvc/results.c)
$(BUILD)/tests/unit/test_config: $(BUILD)/tests/unit/test_config.o $(BUILD)/src/config.o $(BUILD)/libexchange.a
	$(CC) -o $@ $^ $(LDLIBS_ALL) -lcmocka
$(BUILD)/tests/unit/test_results: $(BUILD)/tests/unit/test_results.o $(BUILD)/src/mainsvc/results.o $(BUILD)/libexchange.a
	$(CC) -o $@ $^ $(LDLIBS_ALL) -lcmocka
# calls a unit test makes fail on demand (-Wl,--wrap: its __wrap_F runs for F):
# the store's thread starts and WAL checkpoints, the client's sends, sqlmem's malloc and
# realloc; the runner's and the store's wall clock (clock_gettime, set forward);
# memtrim's malloc_trim (counted); the server's uv_tcp_open (a connection that cannot start)
WRAP_store := uv_thread_create sqlite3_wal_checkpoint_v2 clock_gettime sqlite3_step
WRAP_runner := clock_gettime
WRAP_client := uv_try_write uv_write
WRAP_sqlmem := malloc realloc
WRAP_memtrim := malloc_trim
WRAP_server := uv_tcp_open
$(BUILD)/tests/unit/test_%: $(BUILD)/tests/unit/test_%.o $(BUILD)/libexchange.a
	$(CC) -o $@ $^ $(LDLIBS_ALL) -lcmocka $(foreach f,$(WRAP_$*),-Wl,--wrap=$(f))

$(BUILD)/bench/loadgen: $(BUILD)/bench/loadgen.o
	$(CC) -o $@ $^ $(LDLIBS_ALL)

# the benchmark (see docs/PERFORMANCE.md); BENCH_ARGS="--runs 5" etc.
bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	/usr/bin/python3 bench/bench.py $(BENCH_ARGS)

bench-smoke: all
	EXCHANGED_BUILD=$(BUILD) /usr/bin/python3 bench/bench.py --smoke --out $(BUILD)/bench-smoke.json

# fuzz targets replayed over their corpus and regressions (gcc; sanitizers with SANITIZE=1)
$(BUILD)/fuzz/replay_%: $(BUILD)/fuzz/fuzz_%.o $(BUILD)/fuzz/replay.o $(BUILD)/libexchange.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

# libFuzzer builds (clang)
FUZZ_CC := clang
FUZZ_FLAGS := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined \
              $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_SECONDS ?= 60
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build-fuzz/%.o)
build-fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
build-fuzz/fuzz_%: build-fuzz/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $^ \
	    $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lpthread -lm
fuzz: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
fuzz-run: fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p build-fuzz/work-$$t; \
	    echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	    build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 \
	        -rss_limit_mb=2048 -dict=fuzz/$$t.dict -artifact_prefix=build-fuzz/crash-$$t- \
	        -print_final_stats=1 build-fuzz/work-$$t fuzz/corpus/$$t 2>build-fuzz/fuzz_$$t.log \
	        || { tail -50 build-fuzz/fuzz_$$t.log; exit 1; }; \
	    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" build-fuzz/fuzz_$$t.log; \
	    echo "corpus: $$(ls build-fuzz/work-$$t | wc -l) inputs"; \
	done

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run.sh

unit: all
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; (cd tests/unit && ../../$$t) || exit 1; done
	@set -e; for t in $(FUZZ_TARGETS); do echo "== replay fuzz_$$t"; \
	    $(BUILD)/fuzz/replay_$$t fuzz/corpus/$$t fuzz/regression/$$t; done

e2e: all
	EXCHANGED_BUILD=$(BUILD) $(PYTEST) -q tests/e2e

test: deps
	@$(MAKE) --no-print-directory unit SANITIZE=$(SANITIZE)
	@$(MAKE) --no-print-directory e2e SANITIZE=$(SANITIZE)
	@$(MAKE) --no-print-directory bench-smoke SANITIZE=$(SANITIZE)

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(shell find $(BUILD) build-fuzz -name '*.d' 2>/dev/null)
