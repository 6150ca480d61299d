"""test_embed -- the embeddable library: examples/feed_handler and the installed package.

examples/feed_handler embeds the engine through include/ringcast.h only:
worker threads call ringcast_publish() while the main thread runs the loop.
Checked here with a real RESP client:

  - quotes published from four threads reach a pattern subscriber, every
    channel's updates in order with none lost or repeated (each channel has
    one publishing thread, and the payload counts its updates);
  - the inbox batches wake-ups: fewer eventfd writes than messages;
  - RESP clients work as with ringcastd (PUBLISH from a client, INFO);
  - SIGTERM stops the loop from a signal handler, output is flushed, exit 0;
  - a bad setting is refused with ringcast_config_error()'s text;
  - `cmake --install` + pkg-config --static: the example compiles and links
    against the installed header, static archive and ringcast.pc alone, and
    runs.

SPDX-License-Identifier: BSD-3-Clause
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402


def build_dir():
    return os.path.dirname(rc.ringcastd_path())


def example_path():
    p = os.path.join(build_dir(), "feed_handler")
    if not os.access(p, os.X_OK):
        raise rc.Failure("examples/feed_handler not built next to ringcastd: %s" % p)
    return p


class Handler:
    """A running feed_handler; reads its stdout lines with a deadline."""

    def __init__(self, exe, args):
        self.buf = b""
        self.proc = subprocess.Popen([exe, "--port", "0", "--set", "io", rc.io_kind(),
                                      "--set", "loglevel", "warning"] + args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        line = self.line(10)
        rc.check(line.startswith("listening on 127.0.0.1:"), "feed_handler prints its port", None,
                 line)
        self.port = int(line.rsplit(":", 1)[1])

    def line(self, timeout):
        line, self.buf = rc.proc_line(self.proc, self.buf, timeout, "feed_handler")
        return line

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=10)
            out = self.buf + out
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise rc.Failure("feed_handler did not stop on SIGTERM")
        return self.proc.returncode, out.decode(), err.decode()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def test_threads_publish_in_order():
    if rc.is_redis():
        raise rc.Skip("the library is ringcast's own")
    threads, symbols, count = 4, 12, 1500
    h = Handler(example_path(), ["--threads", str(threads), "--symbols", str(symbols),
                                 "--rate", "1000", "--count", str(count)])
    try:
        with rc.Conn(h.port) as sub, rc.Conn(h.port) as c:
            rc.check_eq(sub.cmd("PSUBSCRIBE", "quotes.*"), [b"psubscribe", b"quotes.*", 1],
                        "pattern subscription")
            per = {}
            last = count * threads // symbols  # each symbol's final update number
            deadline = time.monotonic() + 20
            while (len(per) < symbols or any(v[-1] < last for v in per.values())):
                if time.monotonic() > deadline:
                    raise rc.Failure("timed out; last updates %r"
                                     % {k: v[-1] for k, v in per.items()})
                m = sub.read(timeout=10)
                rc.check_eq(m[0], b"pmessage", "message kind")
                q = json.loads(m[3])
                rc.check_eq(m[2], b"quotes." + q["sym"].encode(), "channel of the quote")
                per.setdefault(q["sym"], []).append(q["n"])
            for sym, ns in per.items():
                rc.check_eq(ns, list(range(ns[0], last + 1)),
                            "%s: consecutive updates up to %d" % (sym, last))
            rc.check_eq(h.line(10), "published %d" % (threads * count), "workers done")
            rc.check_eq(c.cmd("PUBLISH", "quotes.ZZZ", "from resp"), 1, "PUBLISH from a client")
            rc.check_eq(sub.read()[3], b"from resp", "RESP message to the subscriber")
            info = rc.info_sections(c.cmd("INFO", "fanout"))["fanout"]
            rc.check(info["io_backend"] in (rc.io_kind(), "epoll"),
                     "backend chosen through ringcast_config_set", rc.io_kind(),
                     info["io_backend"])
        code, out, err = h.stop()
        rc.check_eq(code, 0, "exit code after SIGTERM (stderr %r)" % err[-500:])
        stats = dict(kv.split("=") for kv in out.strip().splitlines()[-1].split()[1:])
        rc.check_eq(int(stats["inbox_messages"]), threads * count, "messages through the inbox")
        rc.check(int(stats["inbox_wakeups"]) < int(stats["inbox_messages"]),
                 "wake-ups batched (fewer eventfd writes than messages)", "< messages", stats)
        rc.check(int(stats["published"]) >= threads * count + 1, "published counter", None, stats)
    finally:
        h.kill()


def test_bad_setting_refused():
    if rc.is_redis():
        raise rc.Skip("the library is ringcast's own")
    r = subprocess.run([example_path(), "--set", "no-such-setting", "1"], capture_output=True,
                       timeout=10)
    rc.check_eq(r.returncode, 2, "exit code")
    rc.check(b"Bad directive" in r.stderr, "ringcast_config_error() text", "Bad directive",
             r.stderr)
    r = subprocess.run([example_path(), "--set", "maxclients", "lots"], capture_output=True,
                       timeout=10)
    rc.check_eq(r.returncode, 2, "exit code")
    rc.check(b"couldn't be parsed into an integer" in r.stderr, "value error text", None,
             r.stderr)


def test_installed_package_builds_example():
    if rc.is_redis():
        raise rc.Skip("the library is ringcast's own")
    if rc.io_kind() != "epoll":
        raise rc.Skip("backend-independent; runs once (with epoll)")
    with open(os.path.join(build_dir(), "CMakeCache.txt")) as f:
        cache = f.read()
    if "RINGCAST_SANITIZE:BOOL=ON" in cache or "RINGCAST_FUZZ:BOOL=ON" in cache:
        raise rc.Skip("an instrumented archive does not link into a plain program")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc or not shutil.which("pkg-config"):
        raise rc.Skip("needs a C compiler and pkg-config")
    src = os.environ.get("RINGCAST_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
    prefix = tempfile.mkdtemp(prefix="rc-install-")
    try:
        r = subprocess.run(["cmake", "--install", build_dir(), "--prefix", prefix],
                           capture_output=True, timeout=120)
        rc.check_eq(r.returncode, 0, "cmake --install (%r)" % r.stderr[-500:])
        pcs = glob.glob(os.path.join(prefix, "**", "ringcast.pc"), recursive=True)
        rc.check_eq(len(pcs), 1, "one ringcast.pc installed")
        rc.check(os.path.exists(os.path.join(prefix, "include", "ringcast.h")), "header installed")
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]))
        # The static archive: --static adds its dependencies (liburing, pthreads),
        # and -l:libringcast.a keeps the linker from taking the shared library
        # installed next to it (tests/package/test_package.py links that one).
        r = subprocess.run(["pkg-config", "--static", "--cflags", "--libs", "ringcast"],
                           capture_output=True, env=env, timeout=30)
        rc.check_eq(r.returncode, 0, "pkg-config ringcast (%r)" % r.stderr)
        flags = r.stdout.decode().split()
        rc.check(not any("src/lib" in f for f in flags), "no source-tree paths", None, flags)
        rc.check("-luring" in flags, "liburing listed for static linking", "-luring", flags)
        flags = ["-l:libringcast.a" if f == "-lringcast" else f for f in flags]
        exe = os.path.join(prefix, "feed_handler")
        r = subprocess.run([cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o", exe,
                            os.path.join(src, "examples", "feed_handler.c")] + flags,
                           capture_output=True, timeout=120)
        rc.check_eq(r.returncode, 0, "example builds from the installed package (%r)"
                    % r.stderr[-1500:])
        h = Handler(exe, ["--threads", "1", "--symbols", "1", "--rate", "0", "--count", "10"])
        try:
            rc.check_eq(h.line(10), "published 10", "installed build runs")
            code, out, err = h.stop()
            rc.check_eq(code, 0, "exit code (stderr %r)" % err[-300:])
        finally:
            h.kill()
        r = subprocess.run(["readelf", "-d", exe], capture_output=True, timeout=30)
        rc.check(b"libringcast.so" not in r.stdout, "archive linked in, not the shared library",
                 None, r.stdout.decode())
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


if __name__ == "__main__":
    if rc.workers() != "1":
        print("%s: the embedded library runs one worker whatever RINGCAST_WORKERS says; "
              "runs in the RINGCAST_WORKERS=1 pass only, skipped" % os.path.basename(__file__))
        sys.exit(rc.SKIP)
    rc.run_tests([test_threads_publish_in_order, test_bad_setting_refused,
                  test_installed_package_builds_example])
