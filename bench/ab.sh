#!/usr/bin/env bash
# bench/ab.sh -- two ringcastd builds side by side: server CPU per delivery, alternating runs.
#
# Usage: bench/ab.sh OLD_BUILD_DIR NEW_BUILD_DIR [--scenarios A,C] [--runs 5] [--duration 5]
#                    [--server-args "..."]
#
# For every run and scenario, each build's ringcastd is started fresh on a free loopback port,
# pinned to CPU 0 (io uring, output limits lifted, as bench/run.sh does), and driven by NEW's
# ringcast-bench pinned to CPU 1 -- the same load generator for both, so only the server
# differs. The order alternates (old first on odd runs, new first on even ones) so that drift
# in the machine's load falls on both. Prints one line per run and, per scenario, the medians
# and new/old. A run with anything lost, reordered or duplicated (ringcast-bench's
# correctness line) is marked INVALID and left out of the medians. Scenario shapes are
# bench/run.sh's.
#
# SPDX-License-Identifier: BSD-3-Clause
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
[ $# -ge 2 ] || { sed -n '/^# Usage:/,/^$/p' "$0"; exit 2; }
OLD=$(cd "$1" && pwd)
NEW=$(cd "$2" && pwd)
shift 2
SCENARIOS=A,C
RUNS=5
DURATION=5
SERVER_ARGS=""
while [ $# -gt 0 ]; do
    case "$1" in
    --scenarios) SCENARIOS=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --server-args) SERVER_ARGS=$2; shift ;;
    *) echo "ab.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
BENCH=$NEW/ringcast-bench
TMP=$(mktemp -d /tmp/ringcast-ab.XXXXXX)
SERVER_PID=""
cleanup() {
    [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

flags_of() {
    local common="--size 128 --pipeline 64 --duration $DURATION --warmup 1"
    case "$1" in
    A) echo "--subs 100 --channels 1 --pubs 1 $common" ;;
    B) echo "--subs 1000 --channels 1 --pubs 1 $common" ;;
    C) echo "--subs 1000 --channels 100 --pubs 4 $common" ;;
    D1k) echo "--subs 100 --channels 1 --pubs 1 --rate 1000 $common" ;;
    *) echo "ab.sh: unknown scenario $1" >&2; exit 2 ;;
    esac
}

# run BUILD SCENARIO -> prints "cpu_ns_per_delivery deliveries_per_s valid"
run() {
    local build=$1 scen=$2 port rc=0
    port=$(free_port)
    local http=()
    # Builds with an HTTP port (on by default) get it turned off: one server at a time here,
    # but nothing else on the machine should have to share 8380 with a benchmark.
    "$build/ringcastd" --help 2>/dev/null | grep -q -- --http-port && http=(--http-port 0)
    # shellcheck disable=SC2086
    taskset -c 0 "$build/ringcastd" --port "$port" "${http[@]}" --io uring \
        --client-output-buffer-limit 'normal 0 0 0 pubsub 0 0 0' --maxclients 20000 \
        --loglevel warning $SERVER_ARGS >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    wait_ports "$port" || true
    # shellcheck disable=SC2046
    timeout 120 taskset -c 1 "$BENCH" --port "$port" $(flags_of "$scen") \
        --server-pid "$SERVER_PID" --json-only >"$TMP/out" 2>&1 || rc=$?
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    /usr/bin/python3 - "$TMP/out" "$rc" <<'PY'
import json, sys
line = next((l for l in open(sys.argv[1]) if l.startswith("RESULT ")), None)
if not line:
    print("nan nan INVALID(no-result,exit=%s)" % sys.argv[2]); sys.exit()
r = json.loads(line[7:])
bad = {k: r.get(k, 0) for k in ("lost", "gaps", "dups", "reorders", "misrouted",
                                 "reply_mismatch") if r.get(k, 0)}
if r.get("deliveries") != r.get("expected"):
    bad["undelivered"] = r.get("expected", 0) - r.get("deliveries", 0)
ns = r["cpu_s_per_million"] * 1000 if r.get("cpu_s_per_million") is not None else float("nan")
print("%.1f %.0f %s" % (ns, r.get("deliveries_per_sec", 0),
                         "INVALID(%s)" % bad if bad else "valid"))
PY
}

echo "# bench/ab.sh $OLD $NEW --scenarios $SCENARIOS --runs $RUNS --duration $DURATION" \
    "${SERVER_ARGS:+--server-args '$SERVER_ARGS'}"
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg);" \
    "server on CPU 0, ringcast-bench ($BENCH) on CPU 1"
IFS=, read -r -a scens <<<"$SCENARIOS"
for ((i = 1; i <= RUNS; i++)); do
    for scen in "${scens[@]}"; do
        if ((i % 2)); then order="old new"; else order="new old"; fi
        for which in $order; do
            b=$OLD; [ "$which" = new ] && b=$NEW
            read -r ns rate valid < <(run "$b" "$scen")
            echo "$scen run $i $which: $ns ns CPU/delivery, $rate deliveries/s, $valid"
            echo "$scen $which $ns $valid" >>"$TMP/all"
        done
    done
done
/usr/bin/python3 - "$TMP/all" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for scen in dict.fromkeys(r[0] for r in rows):
    med = {}
    for w in ("old", "new"):
        v = [float(r[2]) for r in rows if r[0] == scen and r[1] == w and r[3] == "valid"]
        med[w] = statistics.median(v) if v else float("nan")
    print("%s: median server CPU per delivery old %.1f ns, new %.1f ns, new/old %.3f"
          % (scen, med["old"], med["new"], med["new"] / med["old"]))
PY
