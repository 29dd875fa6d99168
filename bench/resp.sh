#!/usr/bin/env bash
# One node against redis-server with the same load tool on both sides: redis-benchmark (GET and
# SET, 50 connections, 10,000 keys of 3 bytes), without pipelining and with -P 16; then wrk
# against the node's HTTP GET and against nginx (one worker) answering a fixed body of the same
# size, the ceiling of an HTTP answer on this machine. Alternating rounds, medians, spread printed.
#
#   ROUNDS=3 DURATION=8 bench/resp.sh
#
# Needs a release build (`make release`); installs redis-server, redis-tools, wrk and nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
NODE_PORT=${NODE_PORT:-18080}
RESP_PORT=${RESP_PORT:-16390}
REDIS_PORT=${REDIS_PORT:-16379}
NGINX_PORT=${NGINX_PORT:-18090}

ensure_tools
command -v nginx >/dev/null || { $SUDO apt-get install -y -qq nginx >/dev/null; }
work=$(mktemp -d)
trap 'stop_nginx; cleanup' EXIT

plain=$((DURATION * 100000))
piped=$((DURATION * 400000))
# redis-benchmark ARGS... -> one CSV line per test.
load() {
    local port=$1 name=$2
    redis-benchmark -p "$port" -c 50 -n "$plain" -t set,get -d 3 -r 10000 --csv >"$work/${name}_p1.csv"
    redis-benchmark -p "$port" -c 50 -n "$piped" -t set,get -d 3 -r 10000 -P 16 --csv >"$work/${name}_p16.csv"
}

# nginx with one worker answering GET with a fixed JSON body as long as the node's answer.
start_nginx() {
    mkdir -p "$work/nginx"
    cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { default_type application/json; return 200 '{"key":"bench:hit","value":"xyz","ttl_remaining":null}'; }
    }
}
CONF
    nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
    nginx_pid=$!
    wait_for "http://127.0.0.1:$NGINX_PORT/" 100 && return 0
    echo "nginx did not start"; cat "$work/nginx/error.log"; exit 1
}
stop_nginx() {
    [ -n "${nginx_pid:-}" ] || return 0
    kill "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=
}

for round in $(seq "$ROUNDS"); do
    start_node EVENT_LOOPS=1 RESP_PORT="$RESP_PORT"
    load "$RESP_PORT" "node_r$round"
    curl -sf -X PUT "http://127.0.0.1:$NODE_PORT/put" -d '{"key":"bench:hit","value":"xyz"}' >/dev/null
    run_wrk "node_http_r$round" 50 "http://127.0.0.1:$NODE_PORT/get/bench:hit"
    stop_node

    start_redis --appendonly no
    load "$REDIS_PORT" "redis_r$round"
    stop_redis

    start_nginx
    run_wrk "nginx_r$round" 50 "http://127.0.0.1:$NGINX_PORT/get/bench:hit"
    stop_nginx
done

python3 - "$work" "$ROUNDS" <<PY
$REPORT_HELPERS
rounds = range(1, int(sys.argv[2]) + 1)
print(f"one cache-node (EVENT_LOOPS=1) against redis-server, both driven by redis-benchmark; median of {len(rounds)} alternating rounds")
header("")
for test in ("GET", "SET"):
    for pipe in ("p1", "p16"):
        node = [redis(f"node_r{r}_{pipe}")[test] + (0,) for r in rounds]
        compare(f"{test} c=50 {'-P 16' if pipe == 'p16' else 'no pipelining'}", node,
                [redis(f"redis_r{r}_{pipe}")[test] for r in rounds])
print()
print("HTTP GET against nginx (one worker, fixed answer of the same size), both driven by wrk -t1 -c50")
print(f"{'':34} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8} | {'nginx ops/s':>11} {'p50 ms':>8} {'p99 ms':>8} | ratio")
compare("GET hit over HTTP", [wrk(f"node_http_r{r}") for r in rounds], [wrk(f"nginx_r{r}")[:3] for r in rounds], anchor="nginx")
PY
