#!/usr/bin/env bash
# One node with EVENT_LOOPS=1 against the same node with EVENT_LOOPS=2, and redis-server as the
# anchor, all under the same load (redis-benchmark GET and SET, 50 connections, 10,000 keys of 3
# bytes, without and with -P 16; then wrk's HTTP GET), alternating rounds, medians. Each node run
# also records the CPU each of its threads used, from /proc: the first event loop's thread carries
# the engine (docs/scaling.md), so its share of the CPU says how far more loops can take the node.
#
#   ROUNDS=3 DURATION=5 bench/event-loops.sh
#
# Needs a release build (`make release`); installs redis-server, redis-tools and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
NODE_PORT=${NODE_PORT:-18080}
RESP_PORT=${RESP_PORT:-16390}
REDIS_PORT=${REDIS_PORT:-16379}

ensure_tools
work=$(mktemp -d)
trap cleanup EXIT

plain=$((DURATION * 100000))
piped=$((DURATION * 400000))

# threads PID: "name user+system ticks" for each of the process's threads.
threads() {
    for task in /proc/"$1"/task/*; do
        printf '%s %s\n' "$(tr ' ' '_' <"$task/comm")" "$(awk '{ print $14 + $15 }' "$task/stat")"
    done
}

# measured NAME COMMAND...: runs the load, and the node's per-thread CPU during it.
measured() {
    local name=$1
    shift
    threads "$node_pid" >"$work/$name.before"
    "$@"
    threads "$node_pid" >"$work/$name.after"
}

load() {
    local port=$1 name=$2
    redis-benchmark -p "$port" -c 50 -n "$plain" -t set,get -d 3 -r 10000 --csv >"$work/${name}_p1.csv"
    redis-benchmark -p "$port" -c 50 -n "$piped" -t set,get -d 3 -r 10000 -P 16 --csv >"$work/${name}_p16.csv"
}

for round in $(seq "$ROUNDS"); do
    for loops in 1 2; do
        start_node EVENT_LOOPS="$loops" RESP_PORT="$RESP_PORT"
        measured "loops${loops}_r${round}_resp" load "$RESP_PORT" "loops${loops}_r$round"
        curl -sf -X PUT "http://127.0.0.1:$NODE_PORT/put" -d '{"key":"bench:hit","value":"xyz"}' >/dev/null
        measured "loops${loops}_r${round}_http" run_wrk "loops${loops}_http_r$round" 50 \
            "http://127.0.0.1:$NODE_PORT/get/bench:hit"
        stop_node
    done
    start_redis --appendonly no
    load "$REDIS_PORT" "redis_r$round"
    stop_redis
done

python3 - "$work" "$ROUNDS" <<PY
$REPORT_HELPERS
import collections, statistics
rounds = range(1, int(sys.argv[2]) + 1)

def cpu(name):
    """Seconds of CPU per thread name during a load (clock ticks of 1/100 s)."""
    def read(path):
        totals = collections.Counter()
        for line in open(path):
            thread, ticks = line.rsplit(" ", 1)
            totals[thread] += int(ticks)
        return totals
    before, after = read(f"{work}/{name}.before"), read(f"{work}/{name}.after")
    return {thread: (after[thread] - before.get(thread, 0)) / 100 for thread in after}

print(f"one node, EVENT_LOOPS=1 and 2, against redis-server (redis-benchmark c=50); median of {len(rounds)} alternating rounds")
header("")
for test in ("GET", "SET"):
    for pipe in ("p1", "p16"):
        for loops in (1, 2):
            compare(f"{test} {'-P 16' if pipe == 'p16' else 'no pipelining'} EVENT_LOOPS={loops}",
                    [redis(f"loops{loops}_r{r}_{pipe}")[test] + (0,) for r in rounds],
                    [redis(f"redis_r{r}_{pipe}")[test] for r in rounds])
print()
print("HTTP GET (wrk -t1 -c50): EVENT_LOOPS=2 against EVENT_LOOPS=1")
print(f"{'':34} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8} | {'1 loop ops/s':>11} {'p50 ms':>8} {'p99 ms':>8} | ratio")
compare("GET hit over HTTP", [wrk(f"loops2_http_r{r}") for r in rounds], [wrk(f"loops1_http_r{r}")[:3] for r in rounds], anchor="1 loop")
print()
print("CPU seconds per thread during each load (median of the rounds); NIO-ELT-*-#1 is the loop the engine lives on")
for loops in (1, 2):
    for part in ("resp", "http"):
        samples = [cpu(f"loops{loops}_r{r}_{part}") for r in rounds]
        names = sorted({name for sample in samples for name in sample if any(s.get(name, 0) > 0.05 for s in samples)})
        cells = ", ".join(f"{name} {statistics.median(s.get(name, 0) for s in samples):.2f}" for name in names)
        print(f"  EVENT_LOOPS={loops} {part}: {cells}")
PY
