# The front door: `make run`, `make test`, `make bench`, `make fmt`.
# Each target installs missing Debian packages first (scripts/install-deps.sh),
# so on a fresh Debian 12 machine these commands are the whole set-up.
BUILD  ?= build
ASAN   ?= build-asan
FUZZ   ?= build-fuzz
TSAN   ?= build-tsan
FUZZ_SECONDS ?= 60
JOBS   ?= $(shell nproc)
CMAKE  ?= cmake
DATA   ?= data
PREFIX ?= /usr/local
MAKEFLAGS += --no-print-directory

.PHONY: all deps build build-asan build-fuzz build-tsan run test test-fast test-tsan fuzz bench fmt clean install

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DTD_BUILD_TESTS=OFF >/dev/null
	@$(CMAKE) --build $(BUILD) -j $(JOBS)

build-asan: deps
	@$(CMAKE) -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DTD_SANITIZE=ON >/dev/null
	@$(CMAKE) --build $(ASAN) -j $(JOBS)

# The fuzz targets (tests/fuzz/) with clang's libFuzzer, under ASan+UBSan.
build-fuzz: deps
	@CC=clang $(CMAKE) -S . -B $(FUZZ) -DCMAKE_BUILD_TYPE=Debug -DTD_SANITIZE=ON -DTD_FUZZ=ON \
	  -DTD_BUILD_TESTS=OFF >/dev/null
	@$(CMAKE) --build $(FUZZ) -j $(JOBS) --target fuzz_targets

# Each fuzz target for FUZZ_SECONDS (make fuzz FUZZ_SECONDS=600), with its
# executions per second and coverage; what it finds lands in tests/fuzz/.
fuzz: build-fuzz
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh $(FUZZ)

# The library, headers, tidings.pc, the CMake package, the commands and
# their manual pages, under PREFIX (make install PREFIX=$HOME/.local).
install: build
	@$(CMAKE) --install $(BUILD) --prefix $(PREFIX)

run: build
	@bash scripts/run.sh $(BUILD) $(DATA)

# The whole suite, once, under AddressSanitizer and UndefinedBehaviorSanitizer.
# The release build is compiled too, so -Werror holds at -O2 as well. The
# fuzz corpora are replayed twice: in the suite (GCC, tests/fuzz/replay.c)
# and by libFuzzer itself in the clang build.
test: build build-asan build-fuzz
	@cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)
	@cd $(FUZZ) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# The fast tier alone (ctest -L fast: SQLite, no server but the shop; the
# PostgreSQL twins, the RabbitMQ suites and the slow tests are tiers of
# their own), under the same sanitizers: a quick round while working. make
# test runs every tier.
test-fast: build-asan
	@cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) -L fast

# The threaded suites (ctest -L threaded: the writer, subscriptions, sagas,
# the shop's handlers) under ThreadSanitizer, in a build of their own;
# .ci/run runs it after make test.
build-tsan: deps
	@$(CMAKE) -S . -B $(TSAN) -DCMAKE_BUILD_TYPE=Debug -DTD_SANITIZE=thread >/dev/null
	@$(CMAKE) --build $(TSAN) -j $(JOBS)

test-tsan: build-tsan
	@cd $(TSAN) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest -L threaded --output-on-failure -j $(JOBS)

# tidings-bench's PostgreSQL figures run on a private server it starts.
bench: build
	@bash bench/with_postgres.sh $(BUILD)/bench/tidings-bench
	@bash bench/broker.sh $(BUILD)
	@bash bench/shop_services.sh $(BUILD)
	@bash bench/shop_load.sh $(BUILD)
	@bash bench/shop_memory.sh $(BUILD)
	@bash bench/shop_overload.sh $(BUILD)
	@bash bench/with_postgres.sh bash bench/shop_postgres.sh $(BUILD)
	@bash bench/with_postgres.sh bash bench/shop_instances.sh $(BUILD)

fmt:
	@clang-format -i $$(git ls-files --cached --others --exclude-standard '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ) $(TSAN)
