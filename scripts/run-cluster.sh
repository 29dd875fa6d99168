#!/usr/bin/env bash
# Runs a local cluster in the foreground: NODES nodes (default 3) on 127.0.0.1, HTTP on 8000,
# 8001, ..., peers on 9000, 9001, ..., the Redis protocol on 6380, 6381, ... (redis-cli -p 6380),
# data under DATA_DIR (default .cluster-data). One log,
# each line tagged with its node. Ctrl-C stops every node cleanly; a node that dies on its own
# (kill -9) is reported with the command that starts it again, and the others keep serving.
#
#   scripts/run-cluster.sh              # three nodes
#   NODES=1 scripts/run-cluster.sh      # one node
#
# Settings: NODES, CACHE_NODE (binary), DATA_DIR, HTTP_PORT_BASE, PEER_PORT_BASE, RESP_PORT_BASE, and any
# cache-node variable (REPLICATION_FACTOR, CONSISTENCY, LOG_LEVEL, ...) passed through as is.
set -euo pipefail

nodes=${NODES:-3}
binary=${CACHE_NODE:-.build/release/cache-node}
data=${DATA_DIR:-.cluster-data}
http_base=${HTTP_PORT_BASE:-8000}
peer_base=${PEER_PORT_BASE:-9000}
resp_base=${RESP_PORT_BASE:-6380}

if ! [[ $nodes =~ ^[1-9][0-9]?$ ]]; then
    echo "NODES must be a number from 1 to 99, not '$nodes'" >&2
    exit 2
fi
if [[ ! -x $binary ]]; then
    echo "no cache-node binary at $binary: run 'make run' or 'swift build -c release --product cache-node'" >&2
    exit 2
fi
mkdir -p "$data"

# Node i's seeds: every other node's peer address, so that any of them may start first.
seeds_for() {
    local i=$1 seeds="" j
    for ((j = 0; j < nodes; j++)); do
        ((j == i)) || seeds+="${seeds:+,}127.0.0.1:$((peer_base + j))"
    done
    echo "$seeds"
}

# The command that starts node i again by hand, as printed for the user.
command_for() {
    local i=$1
    printf 'NODE_ID=node-%d HOST=127.0.0.1 PORT=%d PEER_PORT=%d RESP_PORT=%d WAL_DIR=%q SEEDS=%s LOG_FORMAT=text %q' \
        "$i" "$((http_base + i))" "$((peer_base + i))" "$((resp_base + i))" "$data/node-$i" "$(seeds_for "$i")" \
        "$binary"
}

declare -A name_of=()
stopping=0

start() {
    local i=$1
    # The tagger ignores Ctrl-C so that it outlives its node and prints the node's last lines.
    env NODE_ID="node-$i" HOST=127.0.0.1 PORT="$((http_base + i))" PEER_PORT="$((peer_base + i))" \
        RESP_PORT="$((resp_base + i))" WAL_DIR="$data/node-$i" SEEDS="$(seeds_for "$i")" \
        LOG_FORMAT="${LOG_FORMAT:-text}" "$binary" \
        > >(trap '' INT TERM; exec sed -u "s/^/[node-$i] /") 2>&1 &
    name_of[$!]="node-$i"
    echo "[cluster] started node-$i (pid $!): http://127.0.0.1:$((http_base + i)), redis-cli -p $((resp_base + i)), peers on $((peer_base + i)), data in $data/node-$i"
}

stop_all() {
    stopping=1
    echo "[cluster] stopping every node"
    for pid in "${!name_of[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
}
trap stop_all INT TERM

for ((i = 0; i < nodes; i++)); do start "$i"; done
echo "[cluster] $nodes node(s) up; the cluster page: http://127.0.0.1:$http_base/ui ; try: curl -s localhost:$http_base/cluster   (Ctrl-C stops them all)"

while ((${#name_of[@]} > 0)); do
    status=0
    pid=""
    # (stderr aside: bash would add its own "Killed" line for a node killed by a signal)
    wait -n -p pid "${!name_of[@]}" 2>/dev/null || status=$?
    # A trap interrupts wait (with or without a pid): wait again unless that node is gone.
    [[ -n $pid && -n ${name_of[$pid]:-} ]] || continue
    if kill -0 "$pid" 2>/dev/null; then continue; fi
    name=${name_of[$pid]}
    unset "name_of[$pid]"
    if ((stopping)); then
        echo "[cluster] $name stopped (status $status)"
        continue
    fi
    how="exited with status $status"
    ((status > 128)) && how="was killed by signal $((status - 128)) ($(kill -l "$status" 2>/dev/null || echo ?))"
    echo "[cluster] $name (pid $pid) $how; the other nodes keep serving."
    echo "[cluster] to start it again by hand, in another terminal:"
    echo "[cluster]   $(command_for "${name#node-}")"
done
echo "[cluster] all nodes stopped"
