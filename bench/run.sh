#!/usr/bin/env bash
# bench/run.sh -- the fan-out comparison: redis-server, nats-server and ringcastd (each backend).
#
# Each server is started fresh for every run on a free loopback port, pinned to CPU 0 with
# taskset, with persistence off and output-buffer limits lifted. ringcast-bench runs pinned to
# CPU 1 with --server-pid (and --perf when perf can count system calls), and its RESULT line is
# appended unchanged to bench/results/<date>-<HHMM>-<host>.jsonl, next to "meta" lines (machine,
# load) and "cmd" lines (the exact server and bench commands behind every RESULT). The ceiling
# microbenchmark (ringcast-ceiling) adds its CEILING lines to the same file. bench/report.py
# turns the file into the tables and the chart in BENCHMARKS.md.
#
# Usage: bench/run.sh [--quick] [--runs N] [--scenarios A,B,C,D,D1k,E,M,ceiling]
#                     [--servers redis,nats,uring,epoll,naive,uring-tick] [--build DIR]
#                     [--out FILE] [--workers N]
#                     [--duration S] [--report]
# Every run is bounded (timeout around each bench and each ceiling run); a full run (3 runs of
# every scenario on every server) takes about 17 minutes on 2 cores.
#
# --workers N (default 1): every ringcastd of the run gets `--workers N` (loop threads), and the
# number goes into the results file (the "meta" and "cmd" lines), where bench/report.py shows it.
# It is passed even when it is 1, so that runs compare like with like: ringcastd's own default
# (0, one worker per CPU of its affinity mask) would follow whatever taskset gives it. With 1
# worker the placement is the one above (server on CPU 0, bench on CPU 1). With N > 1 a server
# pinned to one CPU could not run its workers in parallel, so ringcastd gets CPUs 0..N-1 (all
# of them when N exceeds the CPUs) and ringcast-bench, for every server of that run, all CPUs:
# the workers and the load generator then share the cores, and the scheduler places them.
# redis-server and nats-server stay on CPU 0 whatever N is (bench/workers.sh compares them
# with several threads each).
#
# SPDX-License-Identifier: BSD-3-Clause
set -euo pipefail

ARGV="bench/run.sh${*:+ $*}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
BUILD=${RINGCAST_BUILD:-$ROOT/build-release}
RUNS=3
DURATION=5
WARMUP=1
SCENARIOS="A,B,C,D,D1k,E,M,ceiling"
SERVERS="redis,nats,uring,epoll,naive,uring-tick"
OUT=""
QUICK=0
SCEN_SET=0
REPORT=0
CEIL_DURATION=2
WORKERS=1

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --scenarios) SCENARIOS=$2; SCEN_SET=1; shift ;;
    --servers) SERVERS=$2; shift ;;
    --build) BUILD=$2; shift ;;
    --out) OUT=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --workers) WORKERS=$2; shift ;;
    --report) REPORT=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$WORKERS" in
'' | *[!0-9]*) echo "run.sh: --workers needs a number from 1 to 64" >&2; exit 2 ;;
esac
if [ "$WORKERS" -lt 1 ] || [ "$WORKERS" -gt 64 ]; then
    echo "run.sh: --workers needs a number from 1 to 64" >&2
    exit 2
fi
# CPU placement (see the top of this file): ringcastd on RC_CPUS, redis and nats on CPU 0,
# ringcast-bench on BENCH_CPUS.
NCPU=$(nproc)
if [ "$WORKERS" = 1 ]; then
    RC_CPUS=0
    BENCH_CPUS=1
else
    RC_CPUS=0-$(((WORKERS < NCPU ? WORKERS : NCPU) - 1))
    BENCH_CPUS=0-$((NCPU - 1))
fi
if [ "$QUICK" = 1 ]; then
    RUNS=1
    DURATION=2
    WARMUP=1
    CEIL_DURATION=1
    [ "$SCEN_SET" = 1 ] || SCENARIOS="A,D,M,ceiling"
fi

mkdir -p "$ROOT/bench/results"
HOST=$(hostname -s 2>/dev/null || hostname)
[ -n "$OUT" ] || OUT="$ROOT/bench/results/$(date +%Y-%m-%d-%H%M)-$HOST.jsonl"
LOG="${OUT%.jsonl}.log"
TMP=$(mktemp -d /tmp/ringcast-bench.XXXXXX)

# ---- build (Release) -------------------------------------------------------------------------
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if ! cmake --build "$BUILD" -j2 --target ringcastd ringcast-bench ringcast-ceiling \
        >"$TMP/build.log" 2>&1; then
    if [ -x "$BUILD/ringcastd" ] && [ -x "$BUILD/ringcast-bench" ]; then
        echo "run.sh: build failed (see below); using the binaries already in $BUILD" >&2
        tail -5 "$TMP/build.log" >&2
    else
        cat "$TMP/build.log" >&2
        exit 1
    fi
fi
RCD="$BUILD/ringcastd"
BENCH="$BUILD/ringcast-bench"
CEIL="$BUILD/ringcast-ceiling"

# ---- limits, perf ----------------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
PERF=""
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -o /dev/null true 2>/dev/null
then
    PERF="--perf"
fi
MAXCLIENTS=$((NOFILE > 19100 ? 19000 : NOFILE - 100))

SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


json_str() { /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

# cmd_json WORD...: the words as one shell-quoted command line, as a JSON string.
cmd_json() {
    /usr/bin/python3 -c 'import json,shlex,sys; print(json.dumps(shlex.join(sys.argv[1:])))' "$@"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

meta() {
    local what=$1
    /usr/bin/python3 - "$what" "$OUT" "$ARGV" "$WORKERS" "$RC_CPUS" "$BENCH_CPUS" <<'EOF'
import json, os, platform, subprocess, sys, time
what, out, argv = sys.argv[1], sys.argv[2], sys.argv[3]
workers, rc_cpus, bench_cpus = int(sys.argv[4]), sys.argv[5], sys.argv[6]
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""
rec = {"kind": "meta", "what": what, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
       "host": platform.node(), "nproc": os.cpu_count(),
       "cpu": sh("lscpu | sed -n 's/^Model name:[ \\t]*//p' | head -1"),
       "kernel": platform.release(), "loadavg": open("/proc/loadavg").read().split()[:3],
       "redis": sh("redis-server --version"), "nats": sh("nats-server --version"),
       "mem_kb": int(open("/proc/meminfo").readline().split()[1]), "command": argv,
       "workers": workers, "cpus": {"ringcastd": rc_cpus, "redis": "0", "nats": "0",
                                    "bench": bench_cpus}}
with open(out, "a") as f:
    f.write(json.dumps(rec) + "\n")
EOF
}

# start_server NAME PORT: starts NAME pinned (ringcastd to RC_CPUS, the others to CPU 0); sets
# SERVER_PID, SERVER_CMD and SERVER_CPUS.
start_server() {
    local name=$1 port=$2
    SERVER_CPUS=0
    case "$name" in
    redis)
        SERVER_CMD=(redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no
            --client-output-buffer-limit 'normal 0 0 0' --client-output-buffer-limit 'pubsub 0 0 0'
            --maxclients "$MAXCLIENTS" --daemonize no --logfile "$TMP/server.log")
        ;;
    nats)
        # Lifted slow-consumer limits: 1 GB pending per client, a long write deadline.
        printf 'max_pending: 1073741824\nwrite_deadline: "60s"\nmax_connections: %s\n' \
            "$MAXCLIENTS" >"$TMP/nats.conf"
        SERVER_CMD=(nats-server -a 127.0.0.1 -p "$port" -c "$TMP/nats.conf" -l "$TMP/server.log")
        ;;
    uring | epoll | naive)
        SERVER_CMD=("$RCD" --port "$port" --http-port 0 --io "$name" --workers "$WORKERS"
            --client-output-buffer-limit 'normal 0 0 0 pubsub 0 0 0'
            --maxclients "$MAXCLIENTS" --logfile "$TMP/server.log")
        SERVER_CPUS=$RC_CPUS
        ;;
    uring-tick)
        # io_uring with subscribers' output held up to 500 us to batch sends.
        SERVER_CMD=("$RCD" --port "$port" --http-port 0 --io uring --tick-us 500
            --workers "$WORKERS" --client-output-buffer-limit 'normal 0 0 0 pubsub 0 0 0'
            --maxclients "$MAXCLIENTS" --logfile "$TMP/server.log")
        SERVER_CPUS=$RC_CPUS
        ;;
    *) echo "run.sh: unknown server $name" >&2; return 1 ;;
    esac
    : >"$TMP/server.log"
    taskset -c "$SERVER_CPUS" "${SERVER_CMD[@]}" >/dev/null 2>&1 &
    SERVER_PID=$!
    # Wait (at most 5 s) until the port accepts connections.
    if wait_ports "$port"; then
        return 0
    fi
    echo "run.sh: $name did not start on port $port:" >&2
    tail -5 "$TMP/server.log" >&2
    stop_server
    return 1
}


# The ringcast-bench flags of each scenario.
scenario_flags() {
    local common="--size 128 --pipeline 64 --duration $DURATION --warmup $WARMUP"
    case "$1" in
    A) echo "--subs 100 --channels 1 --pubs 1 $common" ;;
    B) echo "--subs 1000 --channels 1 --pubs 1 $common" ;;
    C) echo "--subs 1000 --channels 100 --pubs 4 $common" ;;
    D) echo "--subs 100 --channels 1 --pubs 1 --rate 20000 $common" ;;
    D1k) echo "--subs 100 --channels 1 --pubs 1 --rate 1000 $common" ;;
    E) echo "--subs 100 --channels 1 --pubs 1 --size 4096 --pipeline 64 --duration $DURATION" \
        "--warmup $WARMUP" ;;
    M) echo "--subs 10000 --channels 1 --idle" ;;
    *) return 1 ;;
    esac
}

run_one() {
    local server=$1 scen=$2 run=$3 port flags label proto=() rc=0
    flags=$(scenario_flags "$scen")
    if [ "$scen" = M ] && [ "$NOFILE" -lt 20000 ]; then
        echo "run.sh: skipping M ($server): ulimit -n is $NOFILE, needs 20000" >&2
        return 0
    fi
    port=$(free_port)
    start_server "$server" "$port" || return 0
    [ "$server" = nats ] && proto=(--proto nats)
    label="$server/$scen/$run"
    local flag_words perf_words=()
    read -r -a flag_words <<<"$flags"
    [ -n "$PERF" ] && perf_words=("$PERF")
    local cmd=(taskset -c "$BENCH_CPUS" "$BENCH" "${proto[@]}" --port "$port" "${flag_words[@]}"
        --server-pid "$SERVER_PID" "${perf_words[@]}" --label "$label")
    local workers=null
    case "$server" in uring | epoll | naive | uring-tick) workers=$WORKERS ;; esac
    printf '{"kind":"cmd","label":%s,"server_cmd":%s,"bench_cmd":%s,"workers":%s,' \
        "$(json_str "$label")" "$(cmd_json taskset -c "$SERVER_CPUS" "${SERVER_CMD[@]}")" \
        "$(cmd_json "${cmd[@]}")" "$workers" >>"$OUT"
    printf '"server_cpus":%s,"bench_cpus":%s,"loadavg_before":%s}\n' "$(json_str "$SERVER_CPUS")" \
        "$(json_str "$BENCH_CPUS")" "$(json_str "$(loadavg)")" >>"$OUT"
    echo "== $label  (load $(loadavg))" | tee -a "$LOG"
    timeout 120 "${cmd[@]}" >"$TMP/bench.out" 2>&1 || rc=$?
    cat "$TMP/bench.out" >>"$LOG"
    if grep -q '^RESULT ' "$TMP/bench.out"; then
        sed -n 's/^RESULT //p' "$TMP/bench.out" >>"$OUT"
        grep -E '^  (deliveries|correctness|latency|server CPU|syscalls|server RSS|WARNING)' \
            "$TMP/bench.out" || true
    else
        echo "run.sh: $label produced no RESULT (exit $rc)" | tee -a "$LOG" >&2
        tail -3 "$TMP/bench.out" >&2
    fi
    stop_server
}

run_ceiling() {
    local cfg n b k cmd
    # N connections, B bytes, K messages per socket per round: scenario A's shape with and
    # without batching, B's 1,000 connections, C's (1,000 sockets, ~2.5 messages each per
    # server loop iteration), and E's 4 KiB messages.
    for cfg in "100 128 64" "100 128 1" "1000 128 64" "1000 128 2" "100 4096 16"; do
        read -r n b k <<<"$cfg"
        cmd=("$CEIL" --conns "$n" --size "$b" --batch "$k" --duration "$CEIL_DURATION"
            --send-cpu 0 --recv-cpu 1 --label "ceiling/N$n-B$b-K$k" --json-only)
        printf '{"kind":"cmd","label":%s,"bench_cmd":%s,"loadavg_before":%s}\n' \
            "$(json_str "ceiling/N$n-B$b-K$k")" "$(cmd_json taskset -c 0,1 "${cmd[@]}")" \
            "$(json_str "$(loadavg)")" >>"$OUT"
        echo "== ceiling N=$n B=$b K=$k  (load $(loadavg))" | tee -a "$LOG"
        if timeout 60 taskset -c 0,1 "${cmd[@]}" >"$TMP/ceil.out" 2>&1; then :; fi
        cat "$TMP/ceil.out" >>"$LOG"
        sed -n 's/^CEILING //p' "$TMP/ceil.out" | tee -a "$OUT" |
            /usr/bin/python3 -c 'import json,sys
for l in sys.stdin:
    r = json.loads(l)
    print("  %-6s %10.0f deliveries/s %8.1f ns/delivery %.5f syscalls/delivery" % (
        r["mode"], r["deliveries_per_sec"], r["cpu_ns_per_delivery"], r["syscalls_per_delivery"]))'
    done
}

echo "run.sh: results -> $OUT (log $LOG); runs=$RUNS duration=${DURATION}s perf=${PERF:-off}" \
    "nofile=$NOFILE workers=$WORKERS (ringcastd on CPU $RC_CPUS, bench on CPU $BENCH_CPUS)"
meta start
IFS=, read -r -a SCEN_LIST <<<"$SCENARIOS"
IFS=, read -r -a SERVER_LIST <<<"$SERVERS"
for scen in "${SCEN_LIST[@]}"; do
    if [ "$scen" = ceiling ]; then
        for run in $(seq "$RUNS"); do run_ceiling; done
        continue
    fi
    scenario_flags "$scen" >/dev/null || { echo "run.sh: unknown scenario $scen" >&2; exit 2; }
    for run in $(seq "$RUNS"); do
        for server in "${SERVER_LIST[@]}"; do
            run_one "$server" "$scen" "$run"
        done
    done
done
meta end
echo "run.sh: done; $(grep -c '"label"' "$OUT") result and command lines in $OUT"
if [ "$REPORT" = 1 ]; then
    /usr/bin/python3 "$ROOT/bench/report.py" "$OUT"
fi
