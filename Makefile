# Wraps the README's two commands: `make run` and `make test`.
BUILD ?= build
JOBS  ?= $(shell nproc)
PORT  ?= 6380
ARGS  ?=

.PHONY: all build run test deps clean

all: build

deps:
	@bash scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	exec $(BUILD)/ringcastd --port $(PORT) $(ARGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD)
