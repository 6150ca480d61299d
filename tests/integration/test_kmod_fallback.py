"""test_kmod_fallback -- `--io kmod` without the module runs the uring backend.

The kmod backend needs the ringcast kernel module's device (kmod-device,
/dev/ringcast by default). Where there is none -- most machines, and every
CI host that cannot load modules -- the server must start anyway on the
uring backend, saying why in exactly one log line, and serve clients as
usual. Three ways of not having it:

  - the path does not exist (open fails with ENOENT);
  - the path is /dev/null, or a regular file: open succeeds but the
    RCK_IOC_VERSION ioctl fails (ENOTTY), so it is not the module;
  - the same with two workers: still one line (worker 0 decides, the others
    follow its backend).

In each case INFO says io_backend:uring and sys_ioctl counts only the version
probe (0 when open failed), and real clients (redis-cli, python3-redis)
receive what a publisher sends. The settings are those of the config table:
CONFIG GET shows them, CONFIG SET refuses them as immutable.

The behaviour does not depend on RINGCAST_IO or the worker count, so the file
runs once (integ.kmod_fallback.uring); the other passes exit 77. The module
itself is tested in a VM by scripts/test-kmod.sh.

SPDX-License-Identifier: BSD-3-Clause
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402

try:
    import redis
except ImportError:
    redis = None

MISSING = "/nonexistent/ringcast-test/dev-ringcast"


def kmod_lines(srv):
    return [ln for ln in srv.log().splitlines() if "kmod" in ln.lower()]


def check_one_line(srv, path, why):
    lines = kmod_lines(srv)
    rc.check_eq(len(lines), 1, "log lines about kmod (%r)" % lines)
    rc.check("kmod: %s: " % path in lines[0], "the line names the device", path, lines[0])
    rc.check(why in lines[0], "the line says why", why, lines[0])
    rc.check(lines[0].endswith("; using uring"), "the line says what runs instead", None,
             lines[0])
    rc.check_eq([ln for ln in srv.log().splitlines() if "falling back" in ln.lower()], [],
                "no fallback past uring")


def check_backend(ctl, ioctls):
    info = rc.info_sections(ctl.cmd("INFO", "server")).get("server", {})
    rc.check_eq(info.get("io_backend"), "uring", "INFO server io_backend")
    fan = rc.info_sections(ctl.cmd("INFO", "fanout")).get("fanout", {})
    rc.check_eq(fan.get("io_backend"), "uring", "INFO fanout io_backend")
    rc.check_eq(fan.get("sys_ioctl"), str(ioctls), "INFO fanout sys_ioctl (the version probe)")
    rc.check(int(fan.get("loop_iterations", "0")) > 0, "INFO fanout loop_iterations counts",
             "> 0", fan.get("loop_iterations"))


def check_raw_clients(srv, n=50):
    with srv.conn() as ctl, srv.conn() as sub:
        rc.check_eq(sub.cmd("SUBSCRIBE", "kf"), [b"subscribe", b"kf", 1], "SUBSCRIBE kf")
        for i in range(n):
            rc.check_eq(ctl.cmd("PUBLISH", "kf", "m%d" % i), 1, "PUBLISH kf m%d" % i)
        for i in range(n):
            rc.check_eq(sub.read(), [b"message", b"kf", b"m%d" % i], "message %d" % i)


def check_redis_cli(srv):
    cli = shutil.which("redis-cli")
    if not cli:
        print("  (redis-cli not installed: that part skipped)")
        return
    with tempfile.NamedTemporaryFile(prefix="rc-cli-") as out:
        proc = subprocess.Popen([cli, "-h", rc.HOST, "-p", str(srv.port), "subscribe", "kc"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            with srv.conn() as ctl:
                ok = rc.wait_until(lambda: ctl.cmd("PUBSUB", "NUMSUB", "kc")[1] == 1, 5.0)
                rc.check(ok, "redis-cli subscribed to kc")
                for i in range(3):
                    rc.check_eq(ctl.cmd("PUBLISH", "kc", "hello %d" % i), 1, "PUBLISH kc")
            want = b"".join(b"message\nkc\nhello %d\n" % i for i in range(3))

            def got():
                # By name: seeking the child's own file description would
                # move where redis-cli writes.
                with open(out.name, "rb") as f:
                    return f.read()
            rc.wait_until(lambda: got().endswith(want), 5.0)
            rc.check_eq(got(), b"subscribe\nkc\n1\n" + want, "redis-cli subscribe output")
        finally:
            proc.kill()
            proc.wait(5)


def check_python_redis(srv):
    if redis is None:
        print("  (python3-redis not installed: that part skipped)")
        return
    r = redis.Redis(host=rc.HOST, port=srv.port, socket_timeout=5, socket_connect_timeout=5)
    p = r.pubsub(ignore_subscribe_messages=True)
    try:
        p.subscribe("kp")
        p.get_message(timeout=1.0)  # the confirmation
        rc.check_eq(r.publish("kp", b"bin\x00\r\n\xff"), 1, "PUBLISH kp (python redis)")
        deadline = time.monotonic() + 5
        m = None
        while m is None and time.monotonic() < deadline:
            m = p.get_message(timeout=0.2)
        rc.check_eq(m and (m["channel"], m["data"]), (b"kp", b"bin\x00\r\n\xff"),
                    "message through python redis")
    finally:
        p.close()
        r.close()


def run_fallback(path, why, ioctls, workers="1"):
    flags = ["--kmod-device", path, "--workers", workers]
    with rc.Server(io="kmod", flags=flags) as srv:
        check_one_line(srv, path, why)
        with srv.conn() as ctl:
            check_backend(ctl, ioctls)
        check_raw_clients(srv)
        check_redis_cli(srv)
        check_python_redis(srv)
        rc.check_eq(srv.stop(), 0, "exit code after SIGTERM")


def test_missing_device():
    run_fallback(MISSING, "No such file or directory", 0)


def test_dev_null_is_not_the_module():
    run_fallback("/dev/null", "RCK_IOC_VERSION: Inappropriate ioctl for device", 1)


def test_regular_file_is_not_the_module():
    with tempfile.NamedTemporaryFile(prefix="rc-kmod-dev-") as f:
        run_fallback(f.name, "RCK_IOC_VERSION: Inappropriate ioctl for device", 1)


def test_two_workers_one_line():
    run_fallback(MISSING, "No such file or directory", 0, workers="2")


def test_settings():
    flags = ["--kmod-device", MISSING, "--kmod-zerocopy", "yes"]
    with rc.Server(io="kmod", flags=flags) as srv, srv.conn() as c:
        rc.check_eq(c.cmd("CONFIG", "GET", "kmod-*"),
                    [b"kmod-device", MISSING.encode(), b"kmod-zerocopy", b"yes"],
                    "CONFIG GET kmod-*")
        rc.check_eq(c.cmd("CONFIG", "GET", "io"), [b"io", b"kmod"], "CONFIG GET io (as set)")
        got = c.cmd("CONFIG", "SET", "kmod-device", "/dev/ringcast")
        rc.check(isinstance(got, rc.Error) and "immutable" in got, "CONFIG SET kmod-device",
                 "an immutable-config error", got)
    with rc.Server(io="uring") as srv, srv.conn() as c:
        rc.check_eq(c.cmd("CONFIG", "GET", "kmod-*"),
                    [b"kmod-device", b"/dev/ringcast", b"kmod-zerocopy", b"no"],
                    "CONFIG GET kmod-* defaults")
        rc.check_eq(kmod_lines(srv), [], "no kmod line when io is not kmod")


if __name__ == "__main__":
    if rc.is_redis():
        print("test_kmod_fallback: ringcast-only, skipped against redis")
        sys.exit(rc.SKIP)
    if rc.io_kind() != "uring" or rc.workers() != "1":
        print("test_kmod_fallback: runs once, with RINGCAST_IO=uring and one worker; skipped")
        sys.exit(rc.SKIP)
    if os.path.exists(MISSING):
        print("test_kmod_fallback: %s exists; skipped" % MISSING)
        sys.exit(rc.SKIP)
    rc.run_tests([test_missing_device, test_dev_null_is_not_the_module,
                  test_regular_file_is_not_the_module, test_two_workers_one_line,
                  test_settings])
