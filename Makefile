# Postern: a thin wrapper over CMake. `make run` and `make test` are the only set-up.
BUILD      ?= build
JOBS       ?= $(shell nproc)
BUILD_DEPS  = cmake pkg-config libssl-dev libc-ares-dev liblmdb-dev libpcre2-dev \
              libcmocka-dev libcrypt-dev openssl
TEST_DEPS   = python3-pytest swaks pflogsumm lmdb-utils dnsmasq-base clang-14 libclang-rt-14-dev \
              fetchmail getmail6 python3-aiosmtpd isync mutt
RUN_DIR    ?= run
FUZZ_TARGETS = $(basename $(notdir $(wildcard fuzz/fuzz-*.c)))

.PHONY: all build deps test-deps run test unit unit-asan integration fuzz bench bench-pop3 bench-imap bench-relay bench-edge docs clean

all: build

deps:
	@sh tools/ensure-packages.sh $(BUILD_DEPS)

test-deps: deps
	@sh tools/ensure-packages.sh $(TEST_DEPS)

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@sh tools/make-run.sh $(BUILD) $(RUN_DIR)

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

unit-asan: deps
	@cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DPOSTERN_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

fuzz: test-deps
	@CC=clang-14 cmake -S . -B $(BUILD)-fuzz -DCMAKE_BUILD_TYPE=Debug -DPOSTERN_FUZZ=ON >/dev/null
	@cmake --build $(BUILD)-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	@sh tools/run-fuzz.sh $(BUILD)-fuzz 10

integration: build test-deps
	@sh tools/ensure-mail-owner.sh
	cd tests/integration && POSTERN_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider .

test: build test-deps
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory unit-asan
	@$(MAKE) --no-print-directory fuzz
	@$(MAKE) --no-print-directory integration

bench: build test-deps
	@sh bench/run-all.sh $(BUILD)

bench-pop3: build test-deps
	@sh bench/pop3-bench.sh $(BUILD)

bench-imap: build test-deps
	@sh bench/imap-bench.sh $(BUILD)

bench-relay: build test-deps
	@sh bench/relay-bench.sh $(BUILD)

bench-edge: build test-deps
	@sh bench/edge-bench.sh $(BUILD)

docs: build
	@/usr/bin/python3 tools/update-param-doc.py $(BUILD)/postconf docs/postconf.md

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz
