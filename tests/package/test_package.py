"""test_package -- the Debian packages, end to end, on this machine.

Builds the packages with `make deb` (dpkg-buildpackage, then lintian with
--fail-on error), installs ringcast, libringcast0 and libringcast-dev with
`dpkg -i`, and checks what a user gets:

  - /usr/bin/ringcastd --version is the package version and project()'s;
  - ringcastd started from /etc/ringcast/ringcast.conf (port overridden with a
    flag) reports READY=1 on $NOTIFY_SOCKET, and a publish from redis-cli
    reaches a redis-cli subscriber;
  - the unit passes `systemd-analyze verify`; its system call filter lets
    ringcastd run on io_uring (checked with the filter applied by libseccomp
    when systemd is not PID 1, with the unit itself when it is), and without
    the io_uring calls the server falls back to epoll (so the check can fail);
  - libringcast.so.0 exports exactly the functions ringcast.h declares;
  - examples/feed_handler.c builds with `pkg-config --libs ringcast` against
    the shared library (and with --static against the archive) and runs;
  - `dpkg --purge` leaves nothing behind.

It changes the machine's package set, so it runs as root only, and skips
(77) without dpkg-buildpackage, unless CI is set: then it must run.
Registered once (cmake/packaging.cmake), not per backend.

SPDX-License-Identifier: BSD-3-Clause
"""

import glob
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import rchelper as rc  # noqa: E402

SRC = os.path.abspath(os.environ.get("RINGCAST_SRC")
                      or os.path.join(os.path.dirname(__file__), "..", ".."))
PACKAGES = ["ringcast", "libringcast0", "libringcast-dev"]
UNIT = "/lib/systemd/system/ringcast.service"
IN_CI = os.environ.get("CI", "") not in ("", "0", "false")
WEAK_STANDARD = {"_ITM_deregisterTMCloneTable", "_ITM_registerTMCloneTable", "__cxa_finalize",
                 "__gmon_start__"}
procs = []  # every process we start, killed by PID in cleanup()


def run(argv, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, timeout=timeout, **kw)


def out(r):
    return (r.stdout + r.stderr).decode(errors="replace")


def installed(pkg):
    r = run(["dpkg-query", "-W", "-f", "${Status}", pkg])
    return r.returncode == 0 and b"install ok installed" in r.stdout


def project_version():
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        return re.search(r"project\(ringcast VERSION ([0-9.]+)", f.read()).group(1)


def multiarch():
    return run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).stdout.decode().strip()


def start(argv, env=None):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=env)
    procs.append(p)
    return p


def stop(p, timeout=10):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        o, e = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        o, e = p.communicate()
        raise rc.Failure("pid %d did not stop on SIGTERM" % p.pid)
    return p.returncode, o.decode(errors="replace"), e.decode(errors="replace")


def redis_cli(port, *args):
    r = run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(args), timeout=10)
    rc.check_eq(r.returncode, 0, "redis-cli %s (%s)" % (" ".join(args), out(r)))
    return r.stdout.decode().strip()


def io_backend(port):
    info = redis_cli(port, "info", "fanout")
    m = re.search(r"^io_backend:(\w+)", info, re.M)
    rc.check(m, "INFO fanout has io_backend", None, info)
    return m.group(1)


def wait_ready(p, port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise rc.Failure("ringcastd exited %s: %s" % (p.returncode, p.stderr.read().decode()))
        r = run(["redis-cli", "-p", str(port), "ping"], timeout=5)
        if r.stdout.strip() == b"PONG":
            return
        time.sleep(0.05)
    raise rc.Failure("ringcastd on port %d not answering PING within %ds" % (port, timeout))


# ------------------------------------------------------------------ steps

def step_build():
    """make deb: dpkg-buildpackage and lintian --fail-on error."""
    debdir = os.environ.get("RINGCAST_DEB_DIR") or tempfile.mkdtemp(prefix="rc-deb-")
    r = run(["make", "-C", SRC, "deb", "DEBDIR=" + os.path.abspath(debdir)], timeout=900)
    rc.check_eq(r.returncode, 0, "make deb:\n%s" % out(r)[-4000:])
    lint = [line for line in out(r).splitlines() if re.match(r"[EW]: ", line)]
    print("    lintian errors/warnings: %s" % (lint or "none"), flush=True)
    debs = {}
    for pkg in PACKAGES:
        found = glob.glob(os.path.join(debdir, "%s_*.deb" % pkg))
        rc.check_eq(len(found), 1, "one %s .deb in %s" % (pkg, debdir))
        debs[pkg] = found[0]
    return debs


def step_install(debs):
    r = run(["dpkg", "-i"] + [debs[p] for p in PACKAGES], timeout=120,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    rc.check_eq(r.returncode, 0, "dpkg -i:\n%s" % out(r))
    for pkg in PACKAGES:
        rc.check(installed(pkg), "%s installed" % pkg)
    version = run(["dpkg-query", "-W", "-f", "${Version}", "ringcast"]).stdout.decode()
    rc.check_eq(version, project_version(), "package version is project()'s")
    r = run(["/usr/bin/ringcastd", "--version"])
    rc.check_eq((r.returncode, r.stdout.decode().strip()), (0, "ringcastd " + version),
                "/usr/bin/ringcastd --version")
    conffiles = run(["dpkg-query", "-W", "-f", "${Conffiles}", "ringcast"]).stdout.decode()
    rc.check("/etc/ringcast/ringcast.conf" in conffiles, "the config file is a conffile", None,
             conffiles)
    for page, sect in (("ringcastd", 8), ("ringcast.conf", 5), ("ringcast-feed", 1),
                       ("ringcast-bench", 1)):
        r = run(["man", "-w", "%d" % sect, page])
        rc.check_eq(r.stdout.decode().strip(), "/usr/share/man/man%d/%s.%d.gz" % (sect, page, sect),
                    "man page %s(%d) installed" % (page, sect))


def step_serve():
    """The installed server, from the installed config, with the notify protocol."""
    port = rc.free_port()
    tmp = tempfile.mkdtemp(prefix="rc-notify-")
    sock_path = os.path.join(tmp, "notify")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sub = None
    try:
        ns.bind(sock_path)
        p = start(["/usr/bin/ringcastd", "/etc/ringcast/ringcast.conf", "--port", str(port)],
                  env=dict(os.environ, NOTIFY_SOCKET=sock_path))
        if not select.select([ns], [], [], 10)[0]:
            raise rc.Failure("no sd_notify datagram within 10s")
        msg = ns.recv(4096).decode()
        rc.check_eq(sorted(msg.split("\n")), ["MAINPID=%d" % p.pid, "READY=1"],
                    "sd_notify message")
        wait_ready(p, port)
        sub = start(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "subscribe", "pkg.test"])
        rc.check(rc.wait_until(lambda: redis_cli(port, "pubsub", "numsub", "pkg.test")
                               .split() == ["pkg.test", "1"], 10), "redis-cli subscribed")
        rc.check_eq(redis_cli(port, "publish", "pkg.test", "hello from dpkg"), "1",
                    "PUBLISH reaches one subscriber")
        got = b""
        deadline = time.monotonic() + 10
        while b"hello from dpkg" not in got and time.monotonic() < deadline:
            if select.select([sub.stdout], [], [], 0.5)[0]:
                got += os.read(sub.stdout.fileno(), 4096)
        rc.check(b"hello from dpkg" in got, "subscriber printed the message", None, got)
        backend = io_backend(port)
        print("    installed ringcastd runs on io:%s" % backend, flush=True)
        stop(sub)
        code, _, err = stop(p)
        rc.check_eq(code, 0, "ringcastd exit code after SIGTERM (log %r)" % err[-500:])
        return backend
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def unit_syscall_filter():
    """(allowed names, denied names) of the unit's SystemCallFilter= lines, expanded."""
    allow, deny = set(), set()
    with open(UNIT) as f:
        lines = [line.split("=", 1)[1].split() for line in f
                 if line.startswith("SystemCallFilter=")]
    rc.check(lines, "the unit has a SystemCallFilter", None, lines)
    for words in lines:
        target = allow
        if words[0].startswith("~"):
            words[0] = words[0][1:]
            target = deny
        for w in words:
            target |= expand_group(w)
    return allow - deny, deny


def expand_group(name, seen=None):
    if not name.startswith("@"):
        return {name}
    seen = seen if seen is not None else set()
    if name in seen:
        return set()
    seen.add(name)
    r = run(["systemd-analyze", "syscall-filter", name])
    rc.check_eq(r.returncode, 0, "systemd-analyze syscall-filter %s" % name)
    names = set()
    for line in r.stdout.decode().splitlines()[1:]:
        w = line.strip()
        if w and not w.startswith("#"):
            names |= expand_group(w, seen)
    return names


SECCOMP_EXEC = r"""
import errno, os, sys, seccomp
allowed = sys.argv[1].split(",")
f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
for name in allowed:
    try:
        f.add_rule(seccomp.ALLOW, name)
    except Exception:
        pass  # not a system call of this architecture
f.load()
os.execv(sys.argv[2], sys.argv[2:])
"""


def run_filtered(allowed):
    """Starts the installed ringcastd under a seccomp allow-list; returns its backend."""
    port = rc.free_port()
    p = start([sys.executable, "-c", SECCOMP_EXEC, ",".join(sorted(allowed)),
               "/usr/bin/ringcastd", "/etc/ringcast/ringcast.conf", "--port", str(port)])
    try:
        wait_ready(p, port)
        backend = io_backend(port)
    finally:
        code, _, err = stop(p)
    rc.check_eq(code, 0, "filtered ringcastd exit code (log %r)" % err[-800:])
    return backend, err


def step_unit(plain_backend):
    r = run(["systemd-analyze", "verify", UNIT], timeout=60)
    rc.check_eq((r.returncode, [line for line in out(r).splitlines() if "ringcast" in line]),
                (0, []), "systemd-analyze verify %s:\n%s" % (UNIT, out(r)))
    if os.path.isdir("/run/systemd/system"):
        return unit_under_systemd()
    print("    systemd is not PID 1 here (PID 1 is %s): systemd-run/systemctl cannot run the "
          "unit; applying its SystemCallFilter with libseccomp instead" %
          open("/proc/1/comm").read().strip(), flush=True)
    try:
        import seccomp  # noqa: F401
    except ImportError:
        if IN_CI:
            raise rc.Failure("python3-seccomp is missing (scripts/deps.sh --pkg installs it)")
        print("    SKIP filter check: python3-seccomp is not installed", flush=True)
        return
    allowed, denied = unit_syscall_filter()
    uring_calls = {"io_uring_setup", "io_uring_enter", "io_uring_register"}
    rc.check(uring_calls <= allowed, "the unit's filter allows io_uring", uring_calls,
             sorted(uring_calls - allowed))
    rc.check("setuid" in denied and "read" in allowed, "filter expanded", None,
             (len(allowed), len(denied)))
    backend, log = run_filtered(allowed)
    rc.check_eq(backend, plain_backend, "backend under the unit's system call filter (log %r)"
                % log[-800:])
    print("    under the unit's filter: io:%s" % backend, flush=True)
    if plain_backend == "uring":
        backend, log = run_filtered(allowed - uring_calls)
        rc.check_eq(backend, "epoll", "without the io_uring calls the server falls back")
        rc.check("epoll" in log, "the fallback is logged", None, log[-800:])
        print("    control, filter without the io_uring calls: io:%s" % backend, flush=True)


def unit_under_systemd():
    """systemd is PID 1: run the installed unit itself on a free port."""
    port = rc.free_port()
    dropin = "/run/systemd/system/ringcast.service.d"
    os.makedirs(dropin, exist_ok=True)
    with open(os.path.join(dropin, "zz-test-port.conf"), "w") as f:
        f.write("[Service]\nExecStart=\nExecStart=/usr/bin/ringcastd "
                "/etc/ringcast/ringcast.conf --port %d\n" % port)
    try:
        run(["systemctl", "daemon-reload"])
        run(["systemctl", "stop", "ringcast.service"], timeout=60)
        r = run(["systemctl", "start", "ringcast.service"], timeout=60)
        rc.check_eq(r.returncode, 0, "systemctl start ringcast (Type=notify):\n%s" % out(r))
        backend = io_backend(port)
        rc.check_eq(backend, "uring", "backend of the unit (journalctl -u ringcast says why not)")
        r = run(["systemctl", "reload", "ringcast.service"], timeout=30)
        rc.check(r.returncode != 0, "reload is refused (no ExecReload)", None, out(r))
        print("    under systemd: io:%s" % backend, flush=True)
    finally:
        run(["systemctl", "stop", "ringcast.service"], timeout=60)
        shutil.rmtree(dropin, ignore_errors=True)
        run(["systemctl", "daemon-reload"])


def step_library():
    lib = "/usr/lib/%s/libringcast.so.0" % multiarch()
    with open("/usr/include/ringcast.h") as f:
        api = set(re.findall(r"\b(ringcast_\w+)\s*\(", f.read()))
    r = run(["nm", "-D", "--defined-only", lib])
    rc.check_eq(r.returncode, 0, "nm -D %s" % lib)
    exported = {line.split()[-1] for line in r.stdout.decode().splitlines() if line.strip()}
    rc.check_eq(sorted(exported), sorted(api),
                "nm -D --defined-only %s: exactly the functions of ringcast.h" % lib)
    # The rest of `nm -D` is imports: versioned libc, liburing and libcrypto functions, and
    # the weak references every gcc-built shared object carries (crtstuff).
    r = run(["nm", "-D", lib])
    imports, odd = 0, []
    for line in r.stdout.decode().splitlines():
        kind, name = line.split()[-2:]
        if kind == "U" and re.search(r"@(GLIBC|LIBURING|OPENSSL)_[0-9.]+$", name):
            imports += 1
        elif kind == "U" and re.match(r"nats(_|[A-Z][a-z]+_)", name):
            imports += 1  # libnats (the NATS upstream; its symbols are unversioned)
        elif kind == "w" and name.split("@")[0] in WEAK_STANDARD:
            pass
        elif not (kind == "T" and name in api):
            odd.append(line)
    rc.check_eq(odd, [], "nm -D %s: nothing but ringcast_*, libc/liburing/libcrypto imports and the "
                "standard weak references" % lib)
    print("    nm -D: %d defined, all ringcast_* (= ringcast.h); %d imports (libc, liburing, libcrypto); "
          "weak: %s" % (len(exported), imports, " ".join(sorted(WEAK_STANDARD))), flush=True)
    r = run(["readelf", "-d", lib])
    rc.check("Library soname: [libringcast.so.0]" in r.stdout.decode(), "SONAME", None,
             out(r))

    tmp = tempfile.mkdtemp(prefix="rc-pkgembed-")
    try:
        cc = shutil.which("cc") or shutil.which("gcc")
        example = os.path.join(SRC, "examples", "feed_handler.c")
        for kind in ("shared", "static"):
            pc = ["pkg-config", "--cflags", "--libs", "ringcast"]
            if kind == "static":
                pc.insert(1, "--static")
            r = run(pc)
            rc.check_eq(r.returncode, 0, "%s (%s)" % (" ".join(pc), out(r)))
            flags = r.stdout.decode().split()
            if kind == "static":
                rc.check("-luring" in flags, "--static lists liburing", None, flags)
                flags = ["-l:libringcast.a" if f == "-lringcast" else f for f in flags]
            exe = os.path.join(tmp, "feed_handler_" + kind)
            r = run([cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o", exe, example] + flags,
                    timeout=120)
            rc.check_eq(r.returncode, 0, "feed_handler (%s) builds: %s" % (kind, out(r)[-1500:]))
            needed = re.findall(r"\[(.*?)\]", run(["readelf", "-d", exe]).stdout.decode())
            rc.check_eq("libringcast.so.0" in needed, kind == "shared",
                        "%s build needs libringcast.so.0 (NEEDED %s)" % (kind, needed))
            p = start([exe, "--port", "0", "--threads", "1", "--symbols", "1", "--rate", "0",
                       "--count", "10", "--set", "loglevel", "warning"])
            lines = b""
            deadline = time.monotonic() + 10
            while b"published 10" not in lines and time.monotonic() < deadline:
                if select.select([p.stdout], [], [], 0.5)[0]:
                    chunk = os.read(p.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    lines += chunk
            rc.check(b"listening on 127.0.0.1:" in lines and b"published 10" in lines,
                     "feed_handler (%s) runs" % kind, None, lines)
            code, _, err = stop(p)
            rc.check_eq(code, 0, "feed_handler (%s) exit code (%r)" % (kind, err[-300:]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def leftovers():
    ma = multiarch()
    paths = ["/etc/ringcast", "/usr/bin/ringcastd", "/usr/bin/ringcast-feed",
             "/usr/bin/ringcast-bench", UNIT, "/usr/lib/%s/libringcast.so.0" % ma,
             "/usr/lib/%s/libringcast.so" % ma, "/usr/lib/%s/libringcast.a" % ma,
             "/usr/include/ringcast.h", "/usr/share/man/man8/ringcastd.8.gz",
             "/usr/share/doc/ringcast", "/etc/systemd/system/multi-user.target.wants/"
             "ringcast.service", "/var/lib/systemd/deb-systemd-helper-enabled/ringcast.service"]
    return [p for p in paths if os.path.lexists(p)]


def step_purge():
    r = run(["dpkg", "--purge"] + PACKAGES, timeout=120)
    rc.check_eq(r.returncode, 0, "dpkg --purge:\n%s" % out(r))
    for pkg in PACKAGES:
        r = run(["dpkg", "-L", pkg])
        rc.check(r.returncode != 0, "dpkg -L %s: package gone" % pkg, None, out(r))
        rc.check(not installed(pkg), "%s not installed" % pkg)
    rc.check_eq(leftovers(), [], "files left after dpkg --purge")


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if any(installed(p) for p in PACKAGES):
        run(["dpkg", "--purge"] + PACKAGES, timeout=120)


def main():
    print("test_package.py: the Debian packages (CI=%s)" % IN_CI, flush=True)
    why = None
    if os.geteuid() != 0:
        why = "installs packages: needs root"
    elif not shutil.which("dpkg-buildpackage"):
        why = "dpkg-buildpackage is missing (scripts/deps.sh --pkg)"
    elif os.environ.get("RINGCAST_SANITIZE", "") in ("1", "ON", "TRUE"):
        why = "builds its own packages; runs once, in the plain build"
    elif any(installed(p) for p in PACKAGES):
        why = "ringcast packages are installed already; not replacing them"
    if why and (not IN_CI or why.startswith("builds its own")):
        print("SKIP: %s" % why, flush=True)
        return rc.SKIP
    if why:
        print("FAIL: CI is set but: %s" % why, flush=True)
        return 1
    for tool in ("redis-cli", "pkg-config", "systemd-analyze"):
        if not shutil.which(tool):
            print("FAIL: %s is missing (scripts/deps.sh --pkg)" % tool, flush=True)
            return 1
    t0 = time.monotonic()
    step = "build"
    try:
        debs = step_build()
        print("ok   make deb (%.1fs)" % (time.monotonic() - t0), flush=True)
        step = "install"
        step_install(debs)
        print("ok   dpkg -i, --version, conffile, man pages", flush=True)
        step = "serve"
        backend = step_serve()
        print("ok   installed ringcastd: sd_notify, redis-cli publish/subscribe", flush=True)
        step = "unit"
        step_unit(backend)
        print("ok   systemd unit", flush=True)
        step = "library"
        step_library()
        print("ok   libringcast.so.0 symbols, feed_handler via pkg-config", flush=True)
        step = "purge"
        step_purge()
        print("ok   dpkg --purge leaves nothing (%.1fs in all)" % (time.monotonic() - t0),
              flush=True)
    except Exception as e:  # noqa: BLE001 -- report any failure with its step
        print("FAIL %s: %s" % (step, e), flush=True)
        if not isinstance(e, rc.Failure):
            import traceback
            traceback.print_exc()
        return 1
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
