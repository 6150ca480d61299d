# Wraps the README's commands: `make run`, `make test`, `make deb`, `make install`.
BUILD ?= build
JOBS  ?= $(shell nproc)
PORT  ?= 6380
ARGS  ?=
DEMO  ?= 1

.PHONY: all build run test test-asan test-tsan test-kmod fuzz deps clean deb install
PREFIX ?= /usr/local
DEBDIR ?= build-deb
VERSION := $(shell grep -m1 -o 'ringcast VERSION [0-9.]*' CMakeLists.txt | cut -d' ' -f3)

all: build

deps:
	@bash scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# DEMO=1: ringcastd plus the quote simulator (scripts/run-demo.sh); DEMO=0: the bare server.
run: build
ifeq ($(DEMO),0)
	exec $(BUILD)/ringcastd --port $(PORT) $(ARGS)
else
	exec bash scripts/run-demo.sh $(BUILD) $(PORT) $(ARGS)
endif

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The whole suite against an ASan+UBSan build (CI runs it after `make test`).
test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRINGCAST_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# The tests that run several servers on several threads in one process, with
# the library built under ThreadSanitizer (CI runs it after test-asan).
test-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DRINGCAST_TSAN=ON
	cmake --build build-tsan -j $(JOBS) --target ringcast-dist ringcastd
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure \
	    -R 'two_servers|^integ\.workers\.(uring|epoll)$$'

# The kernel module (kmod/) built against Debian 12's 6.1 and 6.12 kernels and
# tested in qemu, with ringcastd --io kmod when the server has that backend
# (docs/kmod.md; packages and builds are cached under build/kmod/).
test-kmod: deps
	bash scripts/test-kmod.sh

# A longer libFuzzer run of every harness (clang): make fuzz FUZZ_SECONDS=600
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DRINGCAST_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS)
	for t in resp glob config udp http ws; do \
	    mkdir -p build-fuzz/corpus-$$t && \
	    build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -dict=tests/fuzz/$$t.dict \
	        build-fuzz/corpus-$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# Debian packages (ringcast, libringcast0, libringcast-dev) with dpkg-buildpackage,
# built from a copy of the tree in $(DEBDIR) so that dpkg-buildpackage's output
# (written to the parent directory) and debhelper's files stay out of the tree.
deb:
	@bash scripts/deps.sh --pkg
	rm -rf $(DEBDIR) && mkdir -p $(DEBDIR)/ringcast-$(VERSION)
	git ls-files -z --cached --others --exclude-standard | \
	    xargs -0 cp -a --parents -t $(DEBDIR)/ringcast-$(VERSION)
	cd $(DEBDIR)/ringcast-$(VERSION) && \
	    DEB_BUILD_OPTIONS="nocheck parallel=$(JOBS)" dpkg-buildpackage -us -uc -b
	lintian --fail-on error $(DEBDIR)/ringcast_$(VERSION)_*.changes
	@ls -1 $(DEBDIR)/*.deb

# For systems without dpkg: builds and installs under PREFIX (the unit names the
# installed paths, so PREFIX is a configure-time choice, in its own build dir).
install: deps
	cmake -S . -B $(BUILD)-install -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD)-install -j $(JOBS) --target ringcast-dist
	cmake --install $(BUILD)-install

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz $(DEBDIR) $(BUILD)-install
