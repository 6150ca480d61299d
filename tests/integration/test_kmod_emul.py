"""test_kmod_emul -- the kmod backend's send path against an emulated device.

This host cannot load the module, so kmod_emul.so (LD_PRELOAD, built with the
tests) answers the device's two ioctls by the contract of
include/ringcast_kmod.h: one non-blocking sendmsg per target, its result the
bytes the socket took or -errno. What is checked, with ringcastd --io kmod:

  - it runs on kmod (no fallback line, INFO io_backend:kmod) and real
    clients (redis-cli, python3-redis, raw sockets) get every message;
  - one ioctl per loop iteration however many subscribers: sys_ioctl never
    exceeds loop_iterations (+ the version probe), and 200 subscribers of a
    channel cost calls in the tens, not 200 per message;
  - a frame shared by every target of a call is in its buffer once: each
    call's buf_len is far below the bytes its targets receive;
  - a subscriber whose socket is full (partial sends, -EAGAIN) waits for
    POLLOUT without spinning, then receives everything in order;
  - kmod-zerocopy sets RCK_F_ZEROCOPY; a device that refuses whole calls
    makes the server say so once and send through io_uring instead;
  - two workers each open the device and each sends with it.

Runs once (integ.kmod_emul.uring), skipped where the emulator was not built.
The real module is tested in a VM by scripts/test-kmod.sh.

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

EMUL = os.environ.get("RINGCAST_KMOD_EMUL", "")
EAGAIN_FAIL = 22  # EINVAL: a call refused as a whole


def preload():
    """LD_PRELOAD for the server: the emulator (after libasan in a sanitized build,
    which must come first)."""
    libs = [EMUL]
    if os.environ.get("RINGCAST_SANITIZE", "") in ("1", "ON", "TRUE", "true"):
        out = subprocess.run(["ldd", rc.ringcastd_path()], capture_output=True, text=True).stdout
        libs = [ln.split("=>")[1].split()[0] for ln in out.splitlines()
                if "libasan" in ln and "=>" in ln] + libs
    return " ".join(libs)


class Emul:
    """A server on the emulated device, and the emulator's call log."""

    def __init__(self, flags=(), env=None, workers="1"):
        self.dir = tempfile.TemporaryDirectory(prefix="rc-kmod-emul-")
        self.dev = os.path.join(self.dir.name, "ringcast")
        self.logpath = os.path.join(self.dir.name, "calls.log")
        e = dict(os.environ, LD_PRELOAD=preload(), RC_KMOD_EMUL_DEVICE=self.dev,
                 RC_KMOD_EMUL_LOG=self.logpath)
        e.update(env or {})
        self.srv = rc.Server(io="kmod", env=e,
                             flags=["--kmod-device", self.dev, "--workers", workers] + list(flags))

    def calls(self):
        """[(ntargets, nslices, buf_len, wanted, sent, flags)] per RCK_IOC_SEND."""
        try:
            with open(self.logpath) as f:
                return [tuple(int(x) for x in ln.split()[1:]) for ln in f if ln.startswith("send")]
        except FileNotFoundError:
            return []

    def fanout(self):
        with self.srv.conn() as c:
            return rc.info_sections(c.cmd("INFO", "fanout")).get("fanout", {})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.srv.close()
        self.dir.cleanup()


def test_runs_on_kmod_and_delivers():
    with Emul() as em:
        lines = [ln for ln in em.srv.log().splitlines() if "kmod:" in ln or "using uring" in ln]
        rc.check_eq(lines, [], "log lines about falling back (none: it runs)")
        with em.srv.conn() as c:
            info = rc.info_sections(c.cmd("INFO", "server")).get("server", {})
        rc.check_eq(info.get("io_backend"), "kmod", "INFO server io_backend")
        subs = [em.srv.conn() for _ in range(20)]
        for s in subs:
            rc.check_eq(s.cmd("SUBSCRIBE", "k"), [b"subscribe", b"k", 1], "SUBSCRIBE k")
        with em.srv.conn() as pub:
            for i in range(100):
                rc.check_eq(pub.cmd("PUBLISH", "k", "m%d" % i), 20, "PUBLISH k m%d" % i)
        for n, s in enumerate(subs):
            for i in range(100):
                rc.check_eq(s.read(), [b"message", b"k", b"m%d" % i], "sub %d message %d" % (n, i))
            s.close()
        calls = em.calls()
        rc.check(len(calls) > 0, "RCK_IOC_SEND calls made", "> 0", len(calls))
        rc.check(all(c[5] == 0 for c in calls), "no RCK_F_ZEROCOPY by default")
        rc.check(all(c[3] == c[4] for c in calls), "every call fully taken (fast readers)")
        fan = em.fanout()
        rc.check_eq(fan.get("io_backend"), "kmod", "INFO fanout io_backend")
        rc.check(int(fan["sys_ioctl"]) >= len(calls) + 1, "sys_ioctl counts the calls and probe",
                 len(calls) + 1, fan["sys_ioctl"])
        rc.check_eq(fan.get("sys_sendmsg"), "0", "no sendmsg: clients' output went by ioctl")
        rc.check_eq(em.srv.stop(), 0, "exit code after SIGTERM")


def test_one_call_per_tick_and_shared_frames_once():
    with Emul(flags=["--tick-us", "2000"]) as em:
        subs = [rc.raw_subscriber(em.srv.port, b"wide") for _ in range(200)]
        payload = b"x" * 400
        frame = rc.message_frame(b"wide", payload)
        with em.srv.conn() as pub:
            before = em.fanout()
            for _ in range(20):
                rc.check_eq(pub.cmd("PUBLISH", "wide", payload), 200, "PUBLISH wide")
            for s in subs:
                got = b""
                while len(got) < 20 * len(frame):
                    chunk = s.recv(1 << 16)
                    rc.check(chunk, "subscriber still connected")
                    got += chunk
                rc.check_eq(got, frame * 20, "20 frames, in order")
            after = em.fanout()
        ioctls = int(after["sys_ioctl"]) - int(before["sys_ioctl"])
        iters = int(after["loop_iterations"]) - int(before["loop_iterations"])
        rc.check(ioctls <= iters, "at most one ioctl per loop iteration", "<= %d" % iters, ioctls)
        rc.check(ioctls < 20 * 200 // 10, "calls do not grow with subscribers x messages",
                 "< 400", ioctls)
        big = [c for c in em.calls() if c[0] >= 50]
        rc.check(big, "calls with 50 targets or more", "some", em.calls()[-5:])
        for c in big:
            # Every target of such a call gets the same frames: the buffer
            # holds them once, not once per target.
            rc.check(c[2] * 10 <= c[3], "shared frames copied once per call",
                     "buf_len <= wanted/10", c)
        for s in subs:
            s.close()


def test_full_socket_waits_without_spinning():
    size, count = 16000, 400
    with Emul(flags=["--client-output-buffer-limit", "pubsub 0 0 0"]) as em:
        slow = rc.raw_subscriber(em.srv.port, b"slow", rcvbuf=4096)
        with em.srv.conn() as pub:
            for i in range(count):
                rc.check_eq(pub.cmd("PUBLISH", "slow", rc.seq_payload(i, size)), 1, "PUBLISH")
            # The subscriber reads nothing: its socket is full and the rest queued.
            cpu0 = em.srv.cpu_seconds()
            time.sleep(1.0)
            cpu = em.srv.cpu_seconds() - cpu0
            rc.check(cpu < 0.3, "server idle while the socket is full (no retry loop)",
                     "< 0.3 s CPU in 1 s", cpu)
            ioctls0 = int(em.fanout()["sys_ioctl"])
            time.sleep(0.3)
            rc.check(int(em.fanout()["sys_ioctl"]) - ioctls0 <= 2,
                     "no ioctls for a socket that is still full")
        calls = em.calls()
        rc.check(any(c[4] < c[3] for c in calls), "a partial send or -EAGAIN happened",
                 "sent < wanted in some call", calls[-3:])
        want = b"".join(rc.message_frame(b"slow", rc.seq_payload(i, size)) for i in range(count))
        got = b""
        slow.settimeout(10)
        while len(got) < len(want):
            chunk = slow.recv(1 << 16)
            rc.check(chunk, "slow subscriber still connected", got=len(got))
            got += chunk
        rc.check(got == want, "every message, in order, none twice", len(want), len(got))
        slow.close()


def test_real_clients():
    with Emul() as em:
        cli = shutil.which("redis-cli")
        if cli:
            with tempfile.NamedTemporaryFile(prefix="rc-cli-") as out:
                proc = subprocess.Popen([cli, "-h", rc.HOST, "-p", str(em.srv.port),
                                         "subscribe", "kc"], stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT)
                try:
                    with em.srv.conn() as ctl:
                        rc.check(rc.wait_until(
                            lambda: ctl.cmd("PUBSUB", "NUMSUB", "kc")[1] == 1, 5.0),
                            "redis-cli subscribed")
                        rc.check_eq(ctl.cmd("PUBLISH", "kc", "hello"), 1, "PUBLISH kc")
                    want = b"subscribe\nkc\n1\nmessage\nkc\nhello\n"

                    def got():
                        # By name: seeking the child's file description
                        # would move where redis-cli writes.
                        with open(out.name, "rb") as f:
                            return f.read()
                    rc.wait_until(lambda: got() == want, 5.0)
                    rc.check_eq(got(), want, "redis-cli subscribe output")
                finally:
                    proc.kill()
                    proc.wait(5)
        if redis is not None:
            r = redis.Redis(host=rc.HOST, port=em.srv.port, socket_timeout=5)
            p = r.pubsub(ignore_subscribe_messages=True)
            p.subscribe("kp")
            p.get_message(timeout=1.0)
            rc.check_eq(r.publish("kp", b"bin\x00\xff"), 1, "PUBLISH kp")
            m = None
            deadline = time.monotonic() + 5
            while m is None and time.monotonic() < deadline:
                m = p.get_message(timeout=0.2)
            rc.check_eq(m and m["data"], b"bin\x00\xff", "python redis message")
            p.close()
            r.close()


def test_zerocopy_flag():
    with Emul(flags=["--kmod-zerocopy", "yes"]) as em, em.srv.conn() as sub:
        sub.cmd("SUBSCRIBE", "z")
        with em.srv.conn() as pub:
            pub.cmd("PUBLISH", "z", "one")
        rc.check_eq(sub.read(), [b"message", b"z", b"one"], "message")
        rc.check(em.calls() and all(c[5] == 1 for c in em.calls()),
                 "every call has RCK_F_ZEROCOPY", None, em.calls())


def test_calls_refused_whole_fall_back_to_uring_sends():
    with Emul(env={"RC_KMOD_EMUL_FAIL": str(EAGAIN_FAIL)}) as em, em.srv.conn() as sub:
        sub.cmd("SUBSCRIBE", "f")
        with em.srv.conn() as pub:
            for i in range(10):
                rc.check_eq(pub.cmd("PUBLISH", "f", "m%d" % i), 1, "PUBLISH f")
        for i in range(10):
            rc.check_eq(sub.read(), [b"message", b"f", b"m%d" % i], "message %d" % i)
        lines = [ln for ln in em.srv.log().splitlines() if "RCK_IOC_SEND" in ln]
        rc.check_eq(len(lines), 1, "one line about the refused call (%r)" % lines)
        rc.check("sending through io_uring" in lines[0], "the line says what happens", None,
                 lines[0])
        rc.check(int(em.fanout()["sys_io_uring_enter"]) > 0, "io_uring in use")


def test_two_workers_each_open_the_device():
    with Emul(workers="2") as em:
        subs = [em.srv.conn() for _ in range(8)]  # dealt to both workers
        for s in subs:
            s.cmd("SUBSCRIBE", "w")
        with em.srv.conn() as pub:
            for i in range(20):
                rc.check_eq(pub.cmd("PUBLISH", "w", "m%d" % i), 8, "PUBLISH w")
        for s in subs:
            for i in range(20):
                rc.check_eq(s.read(), [b"message", b"w", b"m%d" % i], "message %d" % i)
            s.close()
        with em.srv.conn() as c:
            text = c.cmd("INFO", "workers")
        rc.check(b"worker1" in text or b"worker_1" in text or text.count(b"syscalls=") == 2,
                 "INFO workers lists two workers", None, text)
        fan = em.fanout()
        rc.check(int(fan["sys_ioctl"]) >= 2 + 2, "both workers probed and sent", ">= 4",
                 fan["sys_ioctl"])


if __name__ == "__main__":
    if rc.is_redis():
        print("test_kmod_emul: ringcast-only, skipped against redis")
        sys.exit(rc.SKIP)
    if rc.io_kind() != "uring" or rc.workers() != "1":
        print("test_kmod_emul: runs once, with RINGCAST_IO=uring and one worker; skipped")
        sys.exit(rc.SKIP)
    if not EMUL or not os.path.exists(EMUL):
        print("test_kmod_emul: the emulator (RINGCAST_KMOD_EMUL) was not built; skipped")
        sys.exit(rc.SKIP)
    rc.run_tests([test_runs_on_kmod_and_delivers, test_one_call_per_tick_and_shared_frames_once,
                  test_full_socket_waits_without_spinning, test_real_clients, test_zerocopy_flag,
                  test_calls_refused_whole_fall_back_to_uring_sends,
                  test_two_workers_each_open_the_device])
