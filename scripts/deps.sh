#!/usr/bin/env bash
# deps.sh -- installs what ringcast needs to build and test, if it is missing.
# Debian 12 packages only; runs apt-get only when something is absent.
# --all adds fuzzing, static-check and chart tools; --pkg the packaging tools.
set -euo pipefail

PKGS=(build-essential cmake pkg-config liburing-dev libcmocka-dev libssl-dev curl
      redis-server redis-tools python3 python3-redis python3-websockets
      libnats-dev nats-server)
if [ "${1:-}" = "--all" ]; then
    # Extra tools for fuzzing, static checks and benchmark charts, and the real
    # clients of the HTTP tests: promtool (prometheus) checks /metrics, headless
    # chromium loads the dashboard, driven over DevTools with python3-websockets.
    PKGS+=(clang libclang-rt-14-dev clang-format clang-tidy cppcheck gnuplot-nox
           prometheus chromium python3-websockets)
fi
if [ "${1:-}" = "--all" ] || [ "${1:-}" = "--pkg" ]; then
    # Debian packaging (make deb, tests/package): the build tools, lintian,
    # systemd for `systemd-analyze verify` on the unit, and python3-seccomp to
    # apply the unit's system call filter where systemd is not PID 1.
    PKGS+=(debhelper devscripts lintian fakeroot dpkg-dev systemd python3-seccomp)
fi

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "deps.sh: installing ${missing[*]}" >&2
$SUDO apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
