#!/usr/bin/env bash
# soak.sh -- the long soak: steady fan-out for a long time, RSS flat, zero gaps.
#
# Runs tests/integration/test_soak.py (50 subscribers + 5 pattern subscribers,
# 5000 msg/s, 1000 on naive; every byte checked, RSS sampled each second)
# for SECONDS on each backend given. CI runs the same test for ~30 s on uring
# and ~12 s on the others; this is the command for the hour-long version.
#
# Usage: scripts/soak.sh [seconds] [uring|epoll|naive ...]
#        BUILD=build scripts/soak.sh 3600 uring
# Defaults: 600 seconds, all three backends. Exit status: 0 if every run passed.
#
# SPDX-License-Identifier: BSD-3-Clause
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-600}
shift || true
backends=("$@")
[ ${#backends[@]} -eq 0 ] && backends=(uring epoll naive)
build=${BUILD:-$here/build}

if [ ! -x "$build/ringcastd" ]; then
    cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j "$(nproc)" --target ringcastd
fi

status=0
for io in "${backends[@]}"; do
    echo "== soak: $io backend, $secs s"
    if ! RINGCASTD="$build/ringcastd" RINGCAST_IO="$io" RINGCAST_SRC="$here" \
        RINGCAST_SOAK_SECONDS="$secs" /usr/bin/python3 "$here/tests/integration/test_soak.py"; then
        status=1
    fi
done
exit $status
