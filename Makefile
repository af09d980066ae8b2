# fsrace — top-level make targets.  `make test` and `make demo` are the README's two commands.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: bench-report all deps build test unit demo bench bench-probes bench-bisect clean

all: build

# Installs every build and run dependency with apt-get (idempotent; prints what it installs).
deps:
	@bash tools/install-deps.sh

$(BUILD_DIR)/Makefile:
	cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)

build: $(BUILD_DIR)/Makefile
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Every test through ctest (unit tests, then root/loop-device integration tests).
test: deps
	$(MAKE) build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 600

unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L unit

# The main job: the built-in default campaign, in a QEMU guest running Debian 12's kernel (VM mode).
demo: deps
	$(MAKE) build
	./fsrace run campaigns/default.toml --kernel debian

bench: build
	$(BUILD_DIR)/bench/fsrace_bench

# bisect (issue 17): the flaky-aware decision against one-run-per-step bisection, simulated (docs/bisect.md)
bench-bisect:
	/usr/bin/python3 bench/bisect_sim.py

# probes (issue 3): ops/s with all probes vs none, and the highest event rate with zero drops (root)
bench-probes: build
	bash bench/probes_overhead.sh
	$(BUILD_DIR)/bench/fsrace_probe_bench

# reports (issue 16): fsrace report's time and memory on a 60 s case with probes, report.html in chromium (root)
bench-report: build
	bash bench/report_bench.sh

clean:
	rm -rf $(BUILD_DIR)
