# The front door: `make run`, `make test`, `make bench`, `make fmt`.
# Each target installs missing Debian packages first (scripts/install-deps.sh),
# so on a fresh Debian 12 machine these commands are the whole set-up.
BUILD  ?= build
ASAN   ?= build-asan
JOBS   ?= $(shell nproc)
CMAKE  ?= cmake
DATA   ?= data
PREFIX ?= /usr/local
MAKEFLAGS += --no-print-directory

.PHONY: all deps build build-asan run test bench fmt clean install

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DTD_BUILD_TESTS=OFF >/dev/null
	@$(CMAKE) --build $(BUILD) -j $(JOBS)

build-asan: deps
	@$(CMAKE) -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DTD_SANITIZE=ON >/dev/null
	@$(CMAKE) --build $(ASAN) -j $(JOBS)

# The library, headers, tidings.pc, the CMake package, the commands and
# their manual pages, under PREFIX (make install PREFIX=$HOME/.local).
install: build
	@$(CMAKE) --install $(BUILD) --prefix $(PREFIX)

run: build
	@bash scripts/run.sh $(BUILD) $(DATA)

# The whole suite, once, under AddressSanitizer and UndefinedBehaviorSanitizer.
# The release build is compiled too, so -Werror holds at -O2 as well.
test: build build-asan
	@cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

bench: build
	@$(BUILD)/bench/tidings-bench
	@bash bench/shop_load.sh $(BUILD)
	@bash bench/shop_memory.sh $(BUILD)
	@bash bench/shop_overload.sh $(BUILD)

fmt:
	@clang-format -i $$(git ls-files --cached --others --exclude-standard '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN)
