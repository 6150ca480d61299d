# Wraps the README's two commands: `make run` and `make test`.
BUILD ?= build
JOBS  ?= $(shell nproc)
PORT  ?= 6380
ARGS  ?=
DEMO  ?= 1

.PHONY: all build run test deps clean

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

clean:
	rm -rf $(BUILD)
