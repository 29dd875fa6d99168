#!/usr/bin/env bash
# Aggregate throughput of 3 nodes against 6 at the same load per node: one redis-benchmark per
# node (10 connections, GET and SET at the nodes' default consistency, quorum, with N = 3
# replicas), all at once, alternating rounds, medians. It also records the CPU the nodes used per
# operation, the figure that says whether the cluster scales: on a machine with a core per node,
# throughput grows with the nodes as long as CPU per operation stays flat; on this 2-core machine
# every node and every load tool share the same two cores, so the aggregate cannot grow, and the
# ratio of CPU per operation is the honest result (docs/scaling.md).
#
#   ROUNDS=3 REQUESTS=20000 bench/scale-out.sh
#
# Needs a release build (`make release`); installs redis-tools.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-20000}
HTTP_BASE=${HTTP_BASE:-18100}
PEER_BASE=${PEER_BASE:-19100}
RESP_BASE=${RESP_BASE:-16400}

ensure_tools
work=$(mktemp -d)
trap 'stop_cluster; cleanup' EXIT

# cpu_ticks: user+system clock ticks of every node process so far.
cpu_ticks() {
    local total=0
    for pid in "${node_pids[@]}"; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

for round in $(seq "$ROUNDS"); do
    for nodes in 3 6; do
        CLUSTER_NODES=$nodes start_cluster REPLICATION_FACTOR=3
        # Every key written once first, so that GETs hit.
        redis-benchmark -p "$RESP_BASE" -c 10 -n 10000 -t set -d 3 -r 10000 -q >/dev/null
        before=$(cpu_ticks)
        started=$(date +%s.%N)
        loads=()
        for i in $(seq 0 $((nodes - 1))); do
            redis-benchmark -p $((RESP_BASE + i)) -c 10 -n "$REQUESTS" -t get,set -d 3 -r 10000 --csv \
                >"$work/n${nodes}_r${round}_$i.csv" &
            loads+=($!)
        done
        wait "${loads[@]}"
        ended=$(date +%s.%N)
        after=$(cpu_ticks)
        echo "$nodes $round $started $ended $before $after" >>"$work/runs"
        stop_cluster
    done
done

python3 - "$work" "$REQUESTS" <<'PY'
import csv, statistics, sys
from pathlib import Path
work, requests = Path(sys.argv[1]), int(sys.argv[2])
runs = {}
for line in (work / "runs").read_text().splitlines():
    nodes, round_, started, ended, before, after = line.split()
    nodes = int(nodes)
    operations = nodes * requests * 2  # GET and SET, REQUESTS each per node
    seconds = float(ended) - float(started)
    cpu = (int(after) - int(before)) / 100
    runs.setdefault(nodes, []).append((operations / seconds, cpu / operations * 1e6))
print("N = 3 replicas, quorum, one redis-benchmark -c 10 per node; median of the alternating rounds")
print(f"{'nodes':>5} {'aggregate ops/s':>16} {'per node':>10} {'node CPU µs/op':>15}  rounds (ops/s)")
for nodes in sorted(runs):
    rates = [rate for rate, _ in runs[nodes]]
    costs = [cost for _, cost in runs[nodes]]
    print(f"{nodes:>5} {statistics.median(rates):>16,.0f} {statistics.median(rates) / nodes:>10,.0f} "
          f"{statistics.median(costs):>15.1f}  {', '.join(f'{rate:,.0f}' for rate in rates)}")
if 3 in runs and 6 in runs:
    rate = statistics.median(r for r, _ in runs[6]) / statistics.median(r for r, _ in runs[3])
    cost = statistics.median(c for _, c in runs[6]) / statistics.median(c for _, c in runs[3])
    print(f"6 nodes / 3 nodes: aggregate throughput {rate:.2f}x, node CPU per operation {cost:.2f}x")
PY
