#!/usr/bin/env bash
# bench/workers.sh -- multi-core fan-out: ringcastd --workers 1 and 2 beside Redis and NATS.
#
# Usage: bench/workers.sh [--scenarios B,C,B2k] [--peers rc1,rc2,redis,redis-io2,redis-io2r,nats]
#                         [--runs 3] [--duration 5] [--warmup 1] [--cpus 0-1] [--bench-cpus LIST]
#                         [--build DIR] [--out FILE] [--max-load 2.0] [--max-wait 300] [--quick]
#                         [--no-report]
#
# Scenarios (bench/run.sh's shapes; many subscribers, one or a few publishers):
#   B    1 channel, 1,000 subscribers, 1 publisher, 128 B, max rate: every message reaches every
#        subscriber connection, wherever the kernel placed it (one channel owner, all workers
#        writing)
#   C    100 channels x 10 subscribers, 4 publishers, 128 B, max rate: owners and publishers
#        spread over the workers too
#   B2k  as B at a fixed 2,000 msg/s (2 million deliveries/s): the same work for every server,
#        so CPU and system calls per delivery compare directly
# Peers: rcN = ringcastd --workers N (io uring, output limits lifted, as bench/run.sh starts it);
#   redis = redis-server --io-threads 1; redis-ioN = --io-threads N; redis-ioNr = --io-threads N
#   --io-threads-do-reads yes; nats = nats-server (Go: GOMAXPROCS follows the affinity mask).
#
# Placement: every server runs under `taskset -c CPUS` (--cpus, default: all CPUs, 0-1 on the
# 2-core machine) and ringcast-bench under `taskset -c BENCH_CPUS` (--bench-cpus, default the
# same CPUS). On 2 cores THE SERVER AND THE LOAD GENERATOR THEREFORE SHARE THE CORES: a
# multi-threaded server competes with the bench, and the bench's subscriber thread (one thread
# for all subscribers) can cap deliveries/s before the server does. The bench's own CPU is in
# the results. bench/run.sh's split (server CPU 0, bench CPU 1) would put a 2-worker server on
# one CPU, so it is not used here. On a larger machine, give them disjoint sets (e.g. --cpus 0-7
# --bench-cpus 8-15) and ringcastd's default workers follow (rcN still passes --workers N).
#
# Each run: a fresh server on a free loopback port; ringcast-bench --server-pid PID --perf
# (server CPU from /proc, system calls from `perf stat -e raw_syscalls:sys_enter -p PID` in the
# measured window); around the bench run, bench/server_probe.py reads every server thread's CPU
# (how many threads were busy: a ringcastd --workers 2 with one busy thread did not run two
# workers) and, for ringcastd, the INFO fanout counters from the start of publishing to the
# end (its system calls per delivery, less the closes of the bench's connections at the end:
# the figure the tables give for ringcastd; perf's window figure is kept beside it as a
# cross-check). The peers'
# order rotates from run to run (rc1 rc2 redis ..., rc2 redis ... rc1, ...) so that drift in the
# machine's load falls on all of them. A run with anything lost, skipped, duplicated,
# reordered, misrouted or undelivered when the drain ended, a reply mismatch, an error or no
# result is INVALID and left out of the medians.
#
# Before starting, waits (at most --max-wait s) for the 1-minute load average to drop below
# --max-load, then starts anyway and says so. Every bench run is bounded by `timeout 120`, each
# server stop by 5 s. Results: bench/results/<date>-<HHMM>-workers.jsonl (--out): "meta" lines,
# a "cmd" line per run (exact server and bench commands, workers, CPUs, load average), the
# bench's RESULT line unchanged, and a "server" line (threads, INFO deltas). At the end
# `bench/report.py --workers FILE` prints the markdown tables (with the exact commands); run it
# again on the file at any time. Full run (defaults: 3 scenarios x 6 peers x 3 runs, 54 bench
# runs of about 7 s): about 6 minutes, plus the wait for a quiet moment; --quick: under 1 minute.
#
# SPDX-License-Identifier: BSD-3-Clause
set -euo pipefail

ARGV="bench/workers.sh${*:+ $*}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
BUILD=${RINGCAST_BUILD:-$ROOT/build-release}
SCENARIOS=B,C,B2k
PEERS=rc1,rc2,redis,redis-io2,redis-io2r,nats
RUNS=3
DURATION=5
WARMUP=1
CPUS=0-$(($(nproc) - 1))
BENCH_CPUS=""
OUT=""
MAX_LOAD=2.0
MAX_WAIT=300
REPORT=1

while [ $# -gt 0 ]; do
    case "$1" in
    --scenarios) SCENARIOS=$2; shift ;;
    --peers) PEERS=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --cpus) CPUS=$2; shift ;;
    --bench-cpus) BENCH_CPUS=$2; shift ;;
    --build) BUILD=$2; shift ;;
    --out) OUT=$2; shift ;;
    --max-load) MAX_LOAD=$2; shift ;;
    --max-wait) MAX_WAIT=$2; shift ;;
    --quick) RUNS=1; DURATION=2; SCENARIOS=B,C ;;
    --no-report) REPORT=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "workers.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

flags_of() {
    local common="--size 128 --pipeline 64 --duration $DURATION --warmup $WARMUP"
    case "$1" in
    A) echo "--subs 100 --channels 1 --pubs 1 $common" ;;
    B) echo "--subs 1000 --channels 1 --pubs 1 $common" ;;
    C) echo "--subs 1000 --channels 100 --pubs 4 $common" ;;
    B2k) echo "--subs 1000 --channels 1 --pubs 1 --rate 2000 $common" ;;
    *) return 1 ;;
    esac
}
IFS=, read -r -a SCEN_LIST <<<"$SCENARIOS"
IFS=, read -r -a PEER_LIST <<<"$PEERS"
for s in "${SCEN_LIST[@]}"; do
    flags_of "$s" >/dev/null || { echo "workers.sh: unknown scenario $s" >&2; exit 2; }
done
for p in "${PEER_LIST[@]}"; do
    [[ "$p" =~ ^(rc[0-9]+|redis|redis-io[0-9]+r?|nats)$ ]] ||
        { echo "workers.sh: unknown peer $p" >&2; exit 2; }
done
[ -n "$BENCH_CPUS" ] || BENCH_CPUS=$CPUS
for c in "$CPUS" "$BENCH_CPUS"; do
    taskset -c "$c" true 2>/dev/null || { echo "workers.sh: bad CPU list $c" >&2; exit 2; }
done
for tool in redis-server nats-server; do
    command -v "$tool" >/dev/null ||
        echo "workers.sh: $tool missing (scripts/deps.sh installs it)" >&2
done

mkdir -p "$ROOT/bench/results"
[ -n "$OUT" ] || OUT="$ROOT/bench/results/$(date +%Y-%m-%d-%H%M)-workers.jsonl"
TMP=$(mktemp -d /tmp/ringcast-workers.XXXXXX)
SERVER_PID=""
cleanup() {
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build (Release), limits, perf -----------------------------------------------------------
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" -j2 --target ringcastd ringcast-bench >"$TMP/build.log" 2>&1 ||
    { cat "$TMP/build.log" >&2; exit 1; }
RCD=$BUILD/ringcastd
BENCH=$BUILD/ringcast-bench
PROBE=(/usr/bin/python3 "$ROOT/bench/server_probe.py")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
MAXCLIENTS=$((NOFILE > 19100 ? 19000 : NOFILE - 100))
[ "$NOFILE" -ge 1200 ] ||
    echo "workers.sh: ulimit -n is $NOFILE; the server and the bench need about 1,100 each" \
        "for 1,000 subscribers" >&2
PERF=()
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -o /dev/null true 2>/dev/null
then
    PERF=(--perf)
else
    echo "workers.sh: perf cannot count system calls here; Redis and NATS get none" >&2
fi

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
json_str() { /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
cmd_json() {
    /usr/bin/python3 -c 'import json,shlex,sys; print(json.dumps(shlex.join(sys.argv[1:])))' "$@"
}

meta() {
    /usr/bin/python3 - "$1" "$OUT" "$ARGV" "$CPUS" "$BENCH_CPUS" "${2:-0}" <<'EOF'
import json, os, platform, subprocess, sys, time
what, out, argv, cpus, bench_cpus, waited = sys.argv[1:7]
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""
rec = {"kind": "meta", "what": what, "script": "bench/workers.sh",
       "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
       "nproc": os.cpu_count(), "cpus": cpus, "bench_cpus": bench_cpus,
       "cpu": sh("lscpu | sed -n 's/^Model name:[ \\t]*//p' | head -1"),
       "kernel": platform.release(), "loadavg": open("/proc/loadavg").read().split()[:3],
       "redis": sh("redis-server --version"), "nats": sh("nats-server --version"),
       "mem_kb": int(open("/proc/meminfo").readline().split()[1]), "command": argv,
       "waited_s": int(waited)}
with open(out, "a") as f:
    f.write(json.dumps(rec) + "\n")
EOF
}

# server_cmd PEER PORT: sets SERVER_CMD, WORKERS (null unless ringcastd) and INFO_PORT.
server_cmd() {
    local peer=$1 port=$2 n
    WORKERS=null
    INFO_PORT=""
    case "$peer" in
    rc*)
        WORKERS=${peer#rc}
        INFO_PORT=$port
        SERVER_CMD=("$RCD" --port "$port" --http-port 0 --io uring --workers "$WORKERS"
            --client-output-buffer-limit 'normal 0 0 0 pubsub 0 0 0'
            --maxclients "$MAXCLIENTS" --loglevel warning --logfile "$TMP/server.log")
        ;;
    redis | redis-io*)
        n=1
        [ "$peer" = redis ] || { n=${peer#redis-io}; n=${n%r}; }
        SERVER_CMD=(redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no
            --client-output-buffer-limit 'normal 0 0 0' --client-output-buffer-limit 'pubsub 0 0 0'
            --maxclients "$MAXCLIENTS" --io-threads "$n")
        [[ "$peer" == *r ]] && SERVER_CMD+=(--io-threads-do-reads yes)
        SERVER_CMD+=(--daemonize no --logfile "$TMP/server.log")
        ;;
    nats)
        printf 'max_pending: 1073741824\nwrite_deadline: "60s"\nmax_connections: %s\n' \
            "$MAXCLIENTS" >"$TMP/nats.conf"
        SERVER_CMD=(nats-server -a 127.0.0.1 -p "$port" -c "$TMP/nats.conf" -l "$TMP/server.log")
        ;;
    esac
}

# run_one SCENARIO PEER RUN: appends cmd, RESULT and server lines to $OUT; prints one line.
run_one() {
    local scen=$1 peer=$2 i=$3 port rc=0 label proto=()
    port=$(free_port)
    label="$peer/$scen/$i"
    server_cmd "$peer" "$port"
    : >"$TMP/server.log"
    taskset -c "$CPUS" "${SERVER_CMD[@]}" >/dev/null 2>&1 &
    SERVER_PID=$!
    if ! wait_ports "$port"; then
        echo "$label: server did not start: $(tail -3 "$TMP/server.log" | tr '\n' ' ')" >&2
        printf '{"kind":"fail","label":%s,"why":"server did not start"}\n' \
            "$(json_str "$label")" >>"$OUT"
        stop_server
        return 0
    fi
    [ "$peer" = nats ] && proto=(--proto nats)
    # shellcheck disable=SC2207
    local flags=($(flags_of "$scen"))
    local bench=(taskset -c "$BENCH_CPUS" "$BENCH" "${proto[@]}" --port "$port" "${flags[@]}"
        --server-pid "$SERVER_PID" "${PERF[@]}" --label "$label" --json-only)
    printf '{"kind":"cmd","label":%s,"peer":%s,"scenario":%s,"run":%d,"workers":%s,' \
        "$(json_str "$label")" "$(json_str "$peer")" "$(json_str "$scen")" "$i" "$WORKERS" >>"$OUT"
    printf '"cpus":%s,"bench_cpus":%s,"server_cmd":%s,"bench_cmd":%s,"loadavg_before":%s}\n' \
        "$(json_str "$CPUS")" "$(json_str "$BENCH_CPUS")" \
        "$(cmd_json taskset -c "$CPUS" "${SERVER_CMD[@]}")" \
        "$(cmd_json "${bench[@]}")" "$(json_str "$(loadavg)")" >>"$OUT"
    local info=()
    [ -z "$INFO_PORT" ] || info=("$INFO_PORT")
    "${PROBE[@]}" snap "$SERVER_PID" "${info[@]}" >"$TMP/before.json" 2>/dev/null ||
        echo '{}' >"$TMP/before.json"
    # ringcastd: INFO again once publishing has started (the bench's setup done), so that its
    # system calls per delivery leave out the 1,000 accepts and subscribes.
    local start_pid=""
    rm -f "$TMP/start.json"
    if [ -n "$INFO_PORT" ]; then
        timeout 40 "${PROBE[@]}" snap "$SERVER_PID" "$INFO_PORT" 30 >"$TMP/start.json" \
            2>/dev/null &
        start_pid=$!
    fi
    # The bench's CPU over the whole run (user and system, with its children): what it takes
    # from the shared cores, and with /proc/stat what everything else on the machine took.
    local TIMEFORMAT='%3U %3S'
    { time timeout 120 "${bench[@]}" >"$TMP/out" 2>&1; } 2>"$TMP/time" || rc=$?
    if [ -n "$start_pid" ]; then  # still polling only when the bench never published
        kill "$start_pid" 2>/dev/null || true
        wait "$start_pid" 2>/dev/null || true
    fi
    "${PROBE[@]}" snap "$SERVER_PID" "${info[@]}" >"$TMP/after.json" 2>/dev/null ||
        echo '{}' >"$TMP/after.json"
    stop_server
    if grep -q '^RESULT ' "$TMP/out"; then
        sed -n 's/^RESULT //p' "$TMP/out" >>"$OUT"
        if [ "$rc" != 0 ]; then  # a failed run: keep what the bench said besides RESULT
            local said
            said=$(grep -v '^RESULT ' "$TMP/out" | tail -c 300 | tr '\n' ' ')
            printf '{"kind":"fail","label":%s,"why":%s}\n' "$(json_str "$label")" \
                "$(json_str "exit $rc: $said")" >>"$OUT"
        fi
    else
        printf '{"kind":"fail","label":%s,"why":%s}\n' "$(json_str "$label")" \
            "$(json_str "no RESULT (exit $rc): $(tail -c 300 "$TMP/out" | tr '\n' ' ')")" >>"$OUT"
    fi
    local bench_cpu
    bench_cpu=$(awk 'NF == 2 { print $1 + $2 }' "$TMP/time" | tail -1)
    if "${PROBE[@]}" diff "$TMP/before.json" "$TMP/after.json" "$TMP/start.json" \
        ${bench_cpu:+--bench-cpu "$bench_cpu"} >"$TMP/server.json" 2>/dev/null; then
        printf '{"kind":"server","label":%s,"probe":%s}\n' "$(json_str "$label")" \
            "$(cat "$TMP/server.json")" >>"$OUT"
    fi
    /usr/bin/python3 "$ROOT/bench/report.py" --workers-line "$OUT" "$label"
}

# ---- wait for a quieter moment, bounded -------------------------------------------------------
waited=0
while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }' &&
    [ "$waited" -lt "$MAX_WAIT" ]; do
    echo "# load $(loadavg) >= $MAX_LOAD: waiting (${waited}s of at most ${MAX_WAIT}s)" >&2
    sleep 15
    waited=$((waited + 15))
done

meta start "$waited"
echo "# $ARGV"
echo "# $(date -u +%FT%TZ), $(nproc) CPUs, load $(loadavg) (waited ${waited}s); results: $OUT"
if [ "$CPUS" = "$BENCH_CPUS" ]; then
    echo "# every server AND ringcast-bench run on CPUs $CPUS (taskset): the server and the load" \
        "generator share the cores"
else
    echo "# servers on CPUs $CPUS, ringcast-bench on CPUs $BENCH_CPUS (taskset)"
fi
for ((i = 1; i <= RUNS; i++)); do
    for scen in "${SCEN_LIST[@]}"; do
        n=${#PEER_LIST[@]}
        for ((k = 0; k < n; k++)); do
            run_one "$scen" "${PEER_LIST[$(((i - 1 + k) % n))]}" "$i"
        done
    done
done
meta end
echo "# done, load $(loadavg); $OUT"
if [ "$REPORT" = 1 ]; then
    echo
    /usr/bin/python3 "$ROOT/bench/report.py" --workers "$OUT"
fi
