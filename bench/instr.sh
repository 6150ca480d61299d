#!/usr/bin/env bash
# bench/instr.sh -- user-space instructions per delivery of two library builds, under callgrind.
#
# Usage: bench/instr.sh OLD_TREE NEW_TREE [--flat-old]
#
# Server CPU per delivery on a shared 2-core machine moves by 10-20 % from run to run, which
# hides a change of a few per cent. The instructions the fan-out executes in user space do
# not: bench/fanout_cost.c drives a server in-process (the real PUBLISH path, no sockets) and
# callgrind counts its instructions exactly, whatever else the machine does. This script
# compiles fanout_cost.c against each tree's built static library (TREE/build-release, built
# here if missing), runs both shapes -- A: 100 subscribers on one channel, 64 publishes per
# tick; C: 1,000 subscribers over 100 channels, 4 per tick -- and prints instructions per
# delivery in the library (the harness's main() and libc's formatting left out) and in all.
# --flat-old: OLD_TREE is the flat src/lib layout of commit cbc1778 and before. The kernel's
# share of the server's CPU (84-94 %, shared/research/profile.md) is not in these counts.
#
# SPDX-License-Identifier: BSD-3-Clause
set -euo pipefail

[ $# -ge 2 ] || { sed -n '/^# Usage:/,/^$/p' "$0"; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OLD=$(cd "$1" && pwd)
NEW=$(cd "$2" && pwd)
FLAT_OLD=0
[ "${3:-}" = --flat-old ] && FLAT_OLD=1
command -v valgrind >/dev/null || { echo "instr.sh: needs valgrind" >&2; exit 2; }
TMP=$(mktemp -d /tmp/ringcast-instr.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

build() { # TREE FLAT OUT
    local t=$1 flat=$2 out=$3 inc=() defs=() libs=()
    inc=(-I"$t/include")
    if [ ! -f "$t/build-release/libringcast.a" ]; then
        cmake -S "$t" -B "$t/build-release" -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    cmake --build "$t/build-release" -j2 --target ringcast >/dev/null
    if [ "$flat" = 1 ]; then
        inc+=(-I"$t/src/lib")
        defs+=(-DRC_FLAT_LIB)
    else
        for l in base core proto io server; do inc+=(-I"$t/src/lib/$l"); done
        libs+=(-lcrypto)
    fi
    gcc -O2 -D_GNU_SOURCE -DRINGCAST_VERSION_STRING='"bench"' "${defs[@]}" "${inc[@]}" \
        -o "$out" "$HERE/fanout_cost.c" "$t/build-release/libringcast.a" "${libs[@]}" \
        -luring -lpthread
}

build "$OLD" "$FLAT_OLD" "$TMP/old"
build "$NEW" 0 "$TMP/new"
echo "# bench/instr.sh $OLD $NEW$([ $FLAT_OLD = 1 ] && echo ' --flat-old')"
echo "# $(date -u +%FT%TZ); valgrind $(valgrind --version); gcc -O2, Release libraries"
for shape in "A 100 1 20000 64" "C 1000 100 20000 4"; do
    read -r name subs chans msgs batch <<<"$shape"
    for which in old new; do
        valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$which" \
            "$TMP/$which" "$subs" "$chans" "$msgs" "$batch" >"$TMP/out.$which" 2>/dev/null
        /usr/bin/python3 - "$TMP/cg.$which" "$TMP/out.$which" "$name" "$which" <<'PY'
import re, subprocess, sys
cg, out, name, which = sys.argv[1:]
d = int(open(out).read().split()[1])
ann = subprocess.run(["callgrind_annotate", "--threshold=100", cg], capture_output=True,
                     text=True).stdout
total = lib = 0
for line in ann.splitlines():
    m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S+):(\S+)", line)
    if not m:
        continue
    ir, where, fn = int(m.group(1).replace(",", "")), m.group(2), m.group(3)
    if "PROGRAM" in line:
        continue
    total += ir
    if fn != "main" and "libc" not in line and "/stdio" not in where and "/string/" not in where \
            and "/libio/" not in where:
        lib += ir
print("%s %s: %.1f instructions per delivery in the library, %.1f in all (%d deliveries)"
      % (name, which, lib / d, total / d, d))
PY
    done
done
