# Thin wrapper over CMake. `make run` and `make test` install what is missing first.
MAKEFLAGS += --no-print-directory
JOBS   ?= $(shell nproc)
CMAKE_FLAGS ?=
ifneq ($(CI),)
CMAKE_FLAGS += -DRK_WERROR=ON
endif

.PHONY: all deps build build-asan run test fuzz bench clean

all: build

deps:
	@tools/install-deps

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

# Tests run against an AddressSanitizer + UBSan build; the release build is
# built too so that `make test` proves both compile warning-free.
build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRK_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j $(JOBS)

run: build
	@mkdir -p var
	./build/riskd -c riskd.yaml

test: build build-asan
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DRK_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@echo "fuzz targets:" build-fuzz/fuzz_* "(seed corpora in tests/fuzz/corpus/)"

bench: build
	@bench/run-all build

clean:
	rm -rf build build-asan build-fuzz
