# exchanged - build, run and test. See README.md.
#   make          build the programs (build/exchanged, build/exchanged-main) and unit tests
#   make run      install missing Debian packages, build, run the service (+ stand-in main service)
#   make test     install missing Debian packages, build, run every test
#   make SANITIZE=1 ...   the same with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)

CC ?= cc
PKGS := libuv jansson libcurl sqlite3 libcrypto
ifeq ($(SANITIZE),1)
BUILD := build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
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

LIB_SRC := src/util.c src/buf.c src/jsonw.c src/opts.c \
           src/http/server.c src/http/router.c \
           src/core/money.c src/core/payload.c src/core/deadline.c src/core/delivery.c \
           src/core/runner.c src/core/backoff.c src/store/store.c
EXCHANGED_SRC := src/main.c src/config.c src/worker.c src/api/routes.c src/api/exchange.c \
                 src/api/ops.c src/api/tasks.c
MAIN_SRC := src/mainsvc/main.c
UNIT_TESTS := util buf jsonw opts config router server money payload deadline delivery runner \
              backoff store

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
EXCHANGED_OBJ := $(EXCHANGED_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(MAIN_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN := $(UNIT_TESTS:%=$(BUILD)/tests/unit/test_%)

PYTEST := /usr/bin/python3 -m pytest

.PHONY: all deps run test unit e2e clean
.SECONDARY:
all: $(BUILD)/exchanged $(BUILD)/exchanged-main $(UNIT_BIN)

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

# unit tests: one per module; test_config also links the service's config.c
$(BUILD)/tests/unit/test_config: $(BUILD)/tests/unit/test_config.o $(BUILD)/src/config.o $(BUILD)/libexchange.a
	$(CC) -o $@ $^ $(LDLIBS_ALL) -lcmocka
$(BUILD)/tests/unit/test_%: $(BUILD)/tests/unit/test_%.o $(BUILD)/libexchange.a
	$(CC) -o $@ $^ $(LDLIBS_ALL) -lcmocka

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run.sh

unit: all
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; (cd tests/unit && ../../$$t) || exit 1; done

e2e: all
	EXCHANGED_BUILD=$(BUILD) $(PYTEST) -q tests/e2e

test: deps
	@$(MAKE) --no-print-directory unit SANITIZE=$(SANITIZE)
	@$(MAKE) --no-print-directory e2e SANITIZE=$(SANITIZE)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
