# Two commands matter: `make run` and `make test`. Both install what is missing first.
SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := libjemalloc-dev
# The partition test (root only) cuts real processes apart in network namespaces; the monitoring
# test runs a real Prometheus and its promtool; the Redis-protocol tests run redis-cli and redis-benchmark;
# the cluster page is tested in chromium.
TEST_PACKAGES := curl iproute2 iptables prometheus redis-tools chromium
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 15
CORE_SOURCES := $(shell find Sources/CacheCore -name '*.swift' | sort)
FUZZ_TARGETS := request-body wal-decoder peer-frame node-frames resp

SIM_SEEDS ?= 1000
SIM_LONG_SEEDS ?= 5000
CLUSTER_SEEDS ?= 1000
CLUSTER_LONG_SEEDS ?= 2000
# The sweep of `make test` runs an optimized simulator that keeps its assertions, built apart
# (`-assert-config Debug` in a build directory of its own): about 8x a debug build's speed, so the
# same minutes cover far more seeds, and every assertion still runs.
SIM_BUILD := .build/checked

.PHONY: all deps build release tools run test test-unit sim-sweep sim chaos chaos-short fuzz fuzz-smoke bench format lint clean docker-dist compose-test ui-screenshots

all: build

# Debian packages the build links against, installed only when missing.
deps:
	@missing=""; for p in $(DEBIAN_PACKAGES) $(EXTRA_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# cachectl and cache-bench, release builds in .build/release/.
tools: deps
	$(SWIFT) build -c release --product cachectl
	$(SWIFT) build -c release --product cache-bench
	@echo "built .build/release/cachectl and .build/release/cache-bench"

# A local cluster in the foreground: HTTP on 8000-8002, peers on 9000-9002, data in .cluster-data,
# one log tagged by node; Ctrl-C stops it. `make run NODES=1` runs a single node.
NODES ?= 3
run: deps
	$(SWIFT) build -c release --product cache-node
	NODES=$(NODES) scripts/run-cluster.sh

# Every test: unit, HTTP, process, a simulator sweep and fuzz smoke runs. One line per step; the
# full output is in .build/test-logs (VERBOSE=1 streams it).
test:
	TEST_PACKAGES="$(TEST_PACKAGES)" MAKE="$(MAKE)" scripts/test.sh

test-unit:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# A CI-sized sweep of the deterministic simulator (checked build: about 1 min to build, membership
# about 30 s, cluster about 1 min). The build directory starts from the main one's package checkouts.
sim-sweep:
	@mkdir -p $(SIM_BUILD); for part in checkouts repositories workspace-state.json; do \
		[ -e $(SIM_BUILD)/$$part ] || [ ! -e .build/$$part ] || cp -r .build/$$part $(SIM_BUILD)/; done
	$(SWIFT) build -c release --product cache-sim --scratch-path $(SIM_BUILD) -Xswiftc -assert-config -Xswiftc Debug
	SWIFT_BACKTRACE=enable=no $(SIM_BUILD)/release/cache-sim --membership-only --seeds $(SIM_SEEDS) --first-seed 1
	SWIFT_BACKTRACE=enable=no $(SIM_BUILD)/release/cache-sim --seeds $(CLUSTER_SEEDS) --first-seed 1

# The long sweep, on a release build; a failing seed replays with `cache-sim --seed N --trace`.
sim:
	$(SWIFT) build -c release --product cache-sim
	SWIFT_BACKTRACE=enable=no .build/release/cache-sim --membership-only --seeds $(SIM_LONG_SEEDS) --first-seed 100000
	SWIFT_BACKTRACE=enable=no .build/release/cache-sim --seeds $(CLUSTER_LONG_SEEDS) --first-seed 100000

# Fault campaigns on real processes (cache-chaos, docs/chaos.md). In network namespaces (with
# partitions) when run as root, on loopback otherwise. The short one is make test's (under two
# minutes, debug nodes): every fault kind under WAL_SYNC=always, then kill rounds with a forget
# (interval) and a leave and a drain (none). The long one runs release nodes, CHAOS_CAMPAIGNS seeds
# of CHAOS_SECONDS each per policy, clock skew included, then as many with 5 nodes under always.
CHAOS_NETWORK = $(shell [ "$$(id -u)" = 0 ] && command -v iptables >/dev/null && echo namespaces || echo loopback)
CHAOS_CAMPAIGNS ?= 10
CHAOS_SECONDS ?= 60
CHAOS_FIRST_SEED ?= 1000
chaos-short:
	$(SWIFT) build --product cache-node
	$(SWIFT) build --product cache-chaos
	SWIFT_BACKTRACE=enable=no .build/debug/cache-chaos --seed 1 --duration 30 --network $(CHAOS_NETWORK)
	SWIFT_BACKTRACE=enable=no .build/debug/cache-chaos --seed 2 --duration 18 --wal-sync interval --faults kill,kill-two,restart-all,forget
	SWIFT_BACKTRACE=enable=no .build/debug/cache-chaos --seed 3 --duration 18 --wal-sync none --faults kill,kill-two,restart-all,leave,drain

# The long campaign also skews clocks: libfaketime cannot run with jemalloc linked, so a second
# cache-node is built without it (WITHOUT_JEMALLOC, in a build directory of its own).
SKEW_BUILD := .build/without-jemalloc
chaos:
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="iproute2 iptables faketime"
	$(SWIFT) build -c release --product cache-node
	$(SWIFT) build -c release --product cache-chaos
	@mkdir -p $(SKEW_BUILD); for part in checkouts repositories workspace-state.json; do \
		[ -e $(SKEW_BUILD)/$$part ] || [ ! -e .build/$$part ] || cp -r .build/$$part $(SKEW_BUILD)/; done
	WITHOUT_JEMALLOC=1 $(SWIFT) build -c release --product cache-node --scratch-path $(SKEW_BUILD)
	network=$$([ "$$(id -u)" = 0 ] && command -v iptables >/dev/null && echo namespaces || echo loopback); \
	for policy in always interval none; do \
		SWIFT_BACKTRACE=enable=no .build/release/cache-chaos --seed $(CHAOS_FIRST_SEED) --campaigns $(CHAOS_CAMPAIGNS) \
			--duration $(CHAOS_SECONDS) --network $$network --wal-sync $$policy \
			--skew-node-binary $(SKEW_BUILD)/release/cache-node || exit 1; \
	done; \
	SWIFT_BACKTRACE=enable=no .build/release/cache-chaos --seed $(CHAOS_FIRST_SEED) --campaigns $(CHAOS_CAMPAIGNS) \
		--nodes 5 --duration $(CHAOS_SECONDS) --network $$network --wal-sync always \
		--skew-node-binary $(SKEW_BUILD)/release/cache-node

# The README's screenshots of the cluster page (docs/images): three release nodes under a steady
# load in Debian's chromium, then one of them killed. About two minutes.
ui-screenshots:
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="chromium python3-venv"
	$(SWIFT) build -c release --product cache-node
	[ -x .build/python-venv/bin/python ] || python3 -m venv .build/python-venv
	.build/python-venv/bin/pip install -q -e 'clients/python[test]' playwright
	cd Tests/Browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 CACHE_NODE=../../.build/release/cache-node \
		../../.build/python-venv/bin/python screenshots.py ../../docs/images

# libFuzzer binaries: CacheCore's sources plus one entry point, built with the fuzzer and ASan.
# Target NAME's entry point is Fuzz/NAME.swift and its seed corpus Fuzz/corpus/NAME.
Fuzz/build/%-fuzzer: Fuzz/%.swift $(CORE_SOURCES)
	@mkdir -p Fuzz/build
	swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name Fuzz_$(subst -,_,$*) \
		$(CORE_SOURCES) $< -o $@

# Each fuzz target for FUZZ_SECONDS (default 60); new corpus entries go to Fuzz/build/corpus.
fuzz: $(foreach t,$(FUZZ_TARGETS),Fuzz/build/$(t)-fuzzer)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p Fuzz/build/corpus/$$t Fuzz/artifacts; \
		SWIFT_BACKTRACE=enable=no Fuzz/build/$$t-fuzzer -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
			-artifact_prefix=Fuzz/artifacts/ Fuzz/build/corpus/$$t Fuzz/corpus/$$t || exit 1; \
	done

# A short run of each target, part of `make test`.
fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)

# docker/dist: cache-node built here with the Swift runtime libraries it links, for the image's
# `prebuilt` target (the runtime path includes $ORIGIN, so they sit beside it).
docker-dist: deps
	$(SWIFT) build -c release --product cache-node
	rm -rf docker/dist && mkdir -p docker/dist
	cp .build/release/cache-node docker/dist/
	ldd .build/release/cache-node | awk '/=> \// { print $$3 }' | grep '/swift/' | xargs -r -I{} cp -L {} docker/dist/

# The compose cluster, started and checked for real (root; installs Docker when missing).
compose-test:
	docker/compose-test.sh

bench: release
	bench/http.sh && bench/wal.sh && bench/memory.sh

format:
	$(SWIFT) format --in-place -r Sources Tests Simulation Fuzz Package.swift

lint:
	$(SWIFT) format lint -r Sources Tests Simulation Fuzz Package.swift

clean:
	rm -rf .build Fuzz/build
