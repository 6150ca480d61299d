#!/usr/bin/env bash
# test-kmod.sh -- builds kmod/ against Debian 12's kernels and tests it in qemu.
#
# A module cannot be loaded into the kernel that runs CI (nor, usually, into
# a developer's), so each kernel we support is fetched as Debian packages
# (apt-get download + dpkg -x, nothing installed into /boot or /lib/modules),
# the module is built against its headers, and the kernel is booted under
# qemu (TCG: nested KVM is not available everywhere) with an initramfs of
# busybox, the module and static test programs. The guest loads the module,
# runs tests/kmod/kmod_ioctl_test and, when ringcastd has the kmod backend,
# tests/kmod/guest_fanout against the real server in copy and zero-copy
# modes, unloads the module and prints its kernel log; the host then checks
# the results and that nothing in the log after the module was loaded is a
# BUG, WARNING, Oops, refcount or KASAN report.
#
#   scripts/test-kmod.sh            both kernels (make test-kmod)
#   KMOD_KERNELS=linux-image-cloud-amd64 scripts/test-kmod.sh    one of them
#   KMOD_BENCH=1 scripts/test-kmod.sh    also tests/kmod/kmod_bench (docs/kmod.md)
# Packages and builds are cached under build/kmod/ (KMOD_CACHE).
# Exit status: 0 when every kernel passed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${KMOD_CACHE:-$ROOT/build/kmod}
# The metapackages that name the current 6.1 LTS and 6.12 cloud kernels.
KERNELS=${KMOD_KERNELS:-"linux-image-cloud-amd64 linux-image-6.12-cloud-amd64"}
BOOT_TIMEOUT=${KMOD_BOOT_TIMEOUT:-300}
JOBS=${KMOD_JOBS:-2}
BENCH=${KMOD_BENCH:-0}

log() { echo "test-kmod: $*" >&2; }
fail() {
    log "FAIL: $*"
    exit 1
}

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
APT_UPDATED=0
apt_update() {
    if [ "$APT_UPDATED" = 0 ]; then
        $SUDO apt-get update -q >&2
        APT_UPDATED=1
    fi
}

# qemu and the guest's userland; libelf1 for the 6.1 kbuild's objtool.
need=()
for p in qemu-system-x86 busybox-static libelf1 gcc make; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi
BUSYBOX=$(command -v busybox || echo /bin/busybox)

mkdir -p "$CACHE/bin"

# ---- static programs for the guest ------------------------------------------
log "building the guest programs"
CFLAGS_T=(-static -O2 -g0 -std=gnu11 -Wall -Wextra -Werror -I"$ROOT/include")
gcc "${CFLAGS_T[@]}" -o "$CACHE/bin/kmod_ioctl_test" tests/kmod/kmod_ioctl_test.c
gcc "${CFLAGS_T[@]}" -o "$CACHE/bin/guest_fanout" tests/kmod/guest_fanout.c
rm -f "$CACHE/bin/kmod_bench"
if [ "$BENCH" = 1 ]; then
    gcc "${CFLAGS_T[@]}" -o "$CACHE/bin/kmod_bench" tests/kmod/kmod_bench.c -l:liburing.a
fi

# ringcastd, linked statically from the objects of a build of its own (the
# CMake build links liburing by its .so path, so the static link is ours).
# KMOD_RINGCASTD names a static ringcastd built elsewhere instead.
if [ -n "${KMOD_RINGCASTD:-}" ]; then
    cp "$KMOD_RINGCASTD" "$CACHE/bin/ringcastd"
else
    SRV="$CACHE/static"
    log "building a static ringcastd"
    if [ ! -f "$SRV/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$SRV" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRINGCAST_NATS=OFF \
            >"$CACHE/cmake.log" 2>&1 || { cat "$CACHE/cmake.log" >&2; fail "cmake"; }
    fi
    cmake --build "$SRV" -j "$JOBS" --target ringcastd >"$CACHE/server-build.log" 2>&1 ||
        { tail -30 "$CACHE/server-build.log" >&2; fail "building ringcastd"; }
    gcc -static -o "$CACHE/bin/ringcastd" "$SRV/CMakeFiles/ringcastd.dir/src/server/main.c.o" \
        "$SRV/libringcast.a" -l:liburing.a -lcrypto -lpthread -lm 2>"$CACHE/server-link.log" ||
        { cat "$CACHE/server-link.log" >&2; fail "linking ringcastd statically"; }
fi
# The setting exists only in a server that has the kmod backend.
if grep -aq 'kmod-zerocopy' "$CACHE/bin/ringcastd"; then
    FANOUT=1
else
    FANOUT=0
    log "SKIP fan-out test: this ringcastd has no --io kmod (the kmod backend is not merged yet)"
fi

# ---- one kernel --------------------------------------------------------------
# Prints the cache directory of the kernel that the metapackage $1 depends on,
# after fetching and unpacking its image, headers and kbuild packages once.
fetch_kernel() {
    local meta=$1 img ver kname hdr deps common kbuild dir
    if ! apt-cache show "$meta" >/dev/null 2>&1; then
        apt_update
    fi
    resolve_kernel "$meta"
    if [ ! -f "$dir/unpacked-$ver" ] && [ "$APT_UPDATED" = 0 ]; then
        # About to download: the package lists may name a version the
        # security archive has since replaced, so refresh them and resolve again.
        apt_update
        resolve_kernel "$meta"
    fi
    if [ ! -f "$dir/unpacked-$ver" ]; then
        log "fetching $img $ver"
        rm -rf "$dir" && mkdir -p "$dir/debs"
        (cd "$dir/debs" && apt-get download -q -o APT::Sandbox::User=root \
            "$img=$ver" "$hdr=$ver" "$common=$ver" "$kbuild=$ver" >&2)
        for d in "$dir"/debs/*.deb; do dpkg -x "$d" "$dir/root"; done
        rm -rf "$dir/debs"
        # The flavour's Makefile includes the common one by absolute path.
        sed -i "s#^include /usr/src/#include $dir/root/usr/src/#" "$dir/root/usr/src/$hdr/Makefile"
        touch "$dir/unpacked-$ver"
    fi
    echo "$dir"
}

# Sets img, ver, kname, hdr, common, kbuild and dir (fetch_kernel's locals)
# for the kernel that the metapackage $1 depends on.
resolve_kernel() {
    local meta=$1
    img=$(apt-cache depends "$meta" | awk '/Depends: linux-image-/ {print $2; exit}')
    [ -n "$img" ] || fail "no kernel image behind $meta"
    ver=$(apt-cache policy "$img" | awk '/Candidate:/ {print $2; exit}')
    kname=${img#linux-image-}
    hdr=linux-headers-$kname
    deps=$(apt-cache show "$hdr=$ver" | awk '/^Depends:/ {sub(/^Depends: /, ""); print; exit}')
    common=$(grep -o 'linux-headers-[^ ,]*-common' <<<"$deps" | head -1)
    kbuild=$(grep -o 'linux-kbuild-[^ ,]*' <<<"$deps" | head -1)
    if [ -z "$common" ] || [ -z "$kbuild" ]; then
        fail "cannot resolve the headers of $img $ver"
    fi
    dir=$CACHE/$kname
}

# Builds the module in $dir/mod (a copy: the tree stays free of kbuild output).
build_module() {
    local dir=$1 kname=$2
    rm -rf "$dir/mod" && mkdir -p "$dir/mod"
    cp kmod/ringcast_kmod.c kmod/Kbuild "$dir/mod/"
    # 6.12's headers carry vmlinux for module BTF, which needs pahole: skip BTF.
    if ! make -C "$dir/root/usr/src/linux-headers-$kname" M="$dir/mod" \
        RINGCAST_INCLUDE="$ROOT/include" CONFIG_DEBUG_INFO_BTF_MODULES= -j "$JOBS" modules \
        >"$dir/mod/build.log" 2>&1; then
        cat "$dir/mod/build.log" >&2
        return 1
    fi
    if grep -E 'warning:|error:' "$dir/mod/build.log" >&2; then
        log "the module builds with warnings against $kname"
        return 1
    fi
}

# The guest's /init: runs the tests, prints markers the host looks for.
write_init() {
    cat >"$1" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ip link set lo up
echo "RCK-GUEST: booted \$(uname -r)"
echo "ringcast-test: loading the module" >/dev/kmsg
if insmod /ringcast_kmod.ko; then
    echo "RCK-GUEST: insmod ok"
    /kmod_ioctl_test
    echo "RCK-GUEST: ioctl-test rc=\$?"
    [ -x /kmod_bench ] && /kmod_bench
    if [ "$FANOUT" = 1 ]; then
        for zc in no yes uring; do
            io="--io kmod --kmod-zerocopy \$zc"
            [ \$zc = uring ] && io="--io uring"
            ringcastd \$io --port 6380 --http-port 0 --workers 1 --bind 127.0.0.1 \\
                --loglevel verbose --logfile /tmp/ringcastd-\$zc.log &
            pid=\$!
            /guest_fanout 127.0.0.1 6380 \$zc
            echo "RCK-GUEST: fanout-\$zc rc=\$?"
            kill \$pid
            wait \$pid
            grep -i kmod /tmp/ringcastd-\$zc.log | sed "s/^/RCK-SERVER[\$zc]: /"
        done
    fi
    rmmod ringcast_kmod
    echo "RCK-GUEST: rmmod rc=\$?"
else
    echo "RCK-GUEST: insmod failed"
fi
echo "RCK-GUEST: dmesg begin"
dmesg
echo "RCK-GUEST: dmesg end"
poweroff -f
EOF
    chmod +x "$1"
}

# Boots the kernel with the module and the tests; leaves the console in $dir/console.log.
boot() {
    local dir=$1 kname=$2
    local stage=$dir/initramfs
    rm -rf "$stage" && mkdir -p "$stage"/{bin,proc,sys,dev,tmp}
    cp "$BUSYBOX" "$stage/bin/busybox"
    cp "$dir/mod/ringcast_kmod.ko" "$CACHE/bin/kmod_ioctl_test" "$CACHE/bin/guest_fanout" "$stage/"
    cp "$CACHE/bin/ringcastd" "$stage/bin/"
    [ -f "$CACHE/bin/kmod_bench" ] && cp "$CACHE/bin/kmod_bench" "$stage/"
    write_init "$stage/init"
    (cd "$stage" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1 >"$dir/initrd.gz")
    timeout "$BOOT_TIMEOUT" qemu-system-x86_64 -accel tcg,thread=single -smp 2 -m 1024 \
        -nodefaults -display none -no-reboot -serial "file:$dir/console.log" \
        -kernel "$dir/root/boot/vmlinuz-$kname" -initrd "$dir/initrd.gz" \
        -append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init" </dev/null || true
}

# Checks one kernel's console log; prints the failures, returns non-zero on any.
check_log() {
    local f=$1 bad=0 kmsg
    if ! grep -q '^KMOD-IOCTL-TEST: PASS' "$f" || ! grep -q 'RCK-GUEST: ioctl-test rc=0' "$f"; then
        log "ioctl test failed:"
        grep -E '^not ok|^KMOD-IOCTL-TEST' "$f" >&2 || true
        bad=1
    fi
    if [ "$FANOUT" = 1 ]; then
        for zc in no yes uring; do
            grep -q "RCK-GUEST: fanout-$zc rc=0" "$f" ||
                { log "fan-out test (kmod-zerocopy $zc) failed:"; grep -E '^FANOUT' "$f" >&2 || true; bad=1; }
        done
        # The server says which mode it asked for, and never fell back to io_uring.
        grep -q 'RCK-SERVER\[yes\]: .*kmod backend: .*zero copy' "$f" ||
            { log "ringcastd --kmod-zerocopy yes did not report zero copy"; bad=1; }
        if grep -q 'RCK-SERVER\[no\]: .*zero copy' "$f"; then
            log "ringcastd --kmod-zerocopy no reported zero copy"
            bad=1
        fi
        if grep -E 'RCK-SERVER\[(no|yes)\]: .*RCK_IOC_SEND' "$f" >&2; then
            log "ringcastd's RCK_IOC_SEND failed (above)"
            bad=1
        fi
    fi
    grep -q 'RCK-GUEST: rmmod rc=0' "$f" || { log "rmmod failed"; bad=1; }
    grep -q 'RCK-GUEST: dmesg end' "$f" || { log "the guest did not finish"; bad=1; }
    # The kernel log from the module's loading on (boot-time notices are not ours).
    kmsg=$(sed -n '/RCK-GUEST: dmesg begin/,/RCK-GUEST: dmesg end/p' "$f" |
        sed -n '/ringcast-test: loading the module/,$p')
    if grep -E 'BUG|WARNING|Oops|refcount_t|KASAN|UBSAN|general protection|Call Trace|panic' \
        <<<"$kmsg" >&2; then
        log "the kernel log has reports (above)"
        bad=1
    fi
    return $bad
}

declare -A RESULT
START=$(date +%s)
for meta in $KERNELS; do
    t0=$(date +%s)
    dir=$(fetch_kernel "$meta") || exit 1
    kname=$(basename "$dir")
    log "== $kname"
    if ! build_module "$dir" "$kname"; then
        RESULT[$kname]="FAIL (module build)"
        continue
    fi
    boot "$dir" "$kname"
    # A guest that dies before the module is loaded is the emulator's flake
    # (docs: multi-threaded TCG); one more boot, and never after insmod.
    if ! grep -q 'RCK-GUEST: insmod' "$dir/console.log"; then
        log "the guest died before loading the module; booting once more"
        cp "$dir/console.log" "$dir/console-1.log"
        boot "$dir" "$kname"
    fi
    grep -E '^(ok|not ok|#|FANOUT|RCK-GUEST|RCK-SERVER|KMOD-IOCTL-TEST|BENCH)' "$dir/console.log" | grep -v 'dmesg' >&2 || true
    if check_log "$dir/console.log"; then
        RESULT[$kname]="PASS ($(($(date +%s) - t0)) s)"
    else
        RESULT[$kname]="FAIL (console: $dir/console.log)"
    fi
done

echo "== test-kmod summary ($(($(date +%s) - START)) s)"
status=0
for k in "${!RESULT[@]}"; do
    echo "  $k: ${RESULT[$k]}"
    [[ ${RESULT[$k]} == PASS* ]] || status=1
done
[ "$FANOUT" = 1 ] || echo "  fan-out with ringcastd --io kmod: SKIPPED (no kmod backend in this ringcastd)"
if [ $status = 0 ]; then echo "test-kmod: PASS"; else echo "test-kmod: FAIL"; fi
exit $status
