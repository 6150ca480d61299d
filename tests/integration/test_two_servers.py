"""test_two_servers -- two embedded servers in one process share nothing.

tests/integration/two_servers.c is compiled against the installed library
(`cmake --install` prefix, `pkg-config ringcast`, the public header only) and
runs two ringcast servers, each on its own thread. redis-py clients subscribe
to patterns on both. Checked:

  - a PUBLISH on one server reaches only that server's subscribers, and its
    reply counts only them; ringcast_publish() likewise;
  - PUBSUB NUMPAT on each counts only its own patterns;
  - after the first server is stopped and freed, the second keeps delivering
    to its pattern subscribers (this crashed when the pattern list was
    process-wide);
  - the process exits 0, with no sanitizer report.

The program is built with the sanitizer the library was built with: under
`make test-asan` with ASan+UBSan, under `make test-tsan` with ThreadSanitizer
(two loop threads and a publishing main thread: any state the servers share
shows up as a data race), so the same test checks both.

SPDX-License-Identifier: BSD-3-Clause
"""

import glob
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
except ImportError:  # python3-redis comes with scripts/deps.sh
    redis = None

QUIET = 0.3  # seconds a subscriber must stay silent to show it got nothing


def build_dir():
    return os.path.dirname(rc.ringcastd_path())


def sanitizer_flags():
    """The flags the program needs to link the library as it was built."""
    with open(os.path.join(build_dir(), "CMakeCache.txt")) as f:
        cache = f.read()
    if "RINGCAST_TSAN:BOOL=ON" in cache:
        return ["-fsanitize=thread", "-g"], "tsan"
    if "RINGCAST_SANITIZE:BOOL=ON" in cache:
        return ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"], "asan"
    if "RINGCAST_FUZZ:BOOL=ON" in cache:
        raise rc.Skip("a fuzzing build's archive does not link into a plain program")
    return [], "plain"


class Program:
    """The running two_servers binary; one command and one answer at a time."""

    def __init__(self, exe, env):
        self.buf = b""
        self.proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        words = self.line(20).split()
        rc.check(len(words) == 3 and words[0] == "ports", "the program prints two ports", None,
                 words)
        self.ports = int(words[1]), int(words[2])

    def line(self, timeout):
        try:
            line, self.buf = rc.proc_line(self.proc, self.buf, timeout, "two_servers")
        except rc.Failure as e:
            try:
                self.proc.wait(timeout=5)  # stdout closed: the program is exiting
            except subprocess.TimeoutExpired:
                raise e
            err = self.proc.stderr.read().decode(errors="replace")
            raise rc.Failure("%s (exit %d; stderr: %s)" % (e, self.proc.returncode, err[-3000:]))
        return line

    def do(self, cmd, timeout=20):
        self.proc.stdin.write(cmd.encode() + b"\n")
        self.proc.stdin.flush()
        rc.check_eq(self.line(timeout), "ok " + cmd, "the program's answer to %r" % cmd)

    def finish(self):
        try:
            out, err = self.proc.communicate(input=b"quit\n", timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise rc.Failure("two_servers did not exit after quit")
        return self.proc.returncode, (self.buf + out).decode(), err.decode(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def next_message(ps, timeout):
    """The next pmessage/message on a redis-py PubSub, or None after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = ps.get_message(timeout=max(0.01, deadline - time.monotonic()))
        if m and m["type"] in ("message", "pmessage"):
            return m
    return None


def expect(ps, pattern, channel, data, what):
    m = next_message(ps, 10)
    rc.check(m is not None, "%s: a message arrives" % what, data, None)
    rc.check_eq((m["type"], m["pattern"], m["channel"], m["data"]),
                ("pmessage", pattern, channel, data), what)


def expect_nothing(ps, what):
    m = next_message(ps, QUIET)
    rc.check(m is None, "%s: nothing arrives" % what, None, m)


def test_two_servers_share_nothing():
    if rc.is_redis():
        raise rc.Skip("the library is ringcast's own")
    if redis is None:
        raise rc.Skip("needs python3-redis")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc or not shutil.which("pkg-config"):
        raise rc.Skip("needs a C compiler and pkg-config")
    san, mode = sanitizer_flags()
    src = os.environ.get("RINGCAST_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
    prefix = tempfile.mkdtemp(prefix="rc-two-")
    prog = None
    try:
        r = subprocess.run(["cmake", "--install", build_dir(), "--prefix", prefix],
                           capture_output=True, timeout=120)
        rc.check_eq(r.returncode, 0, "cmake --install (%r)" % r.stderr[-500:])
        pcs = glob.glob(os.path.join(prefix, "**", "ringcast.pc"), recursive=True)
        rc.check_eq(len(pcs), 1, "one ringcast.pc installed")
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]))
        r = subprocess.run(["pkg-config", "--cflags", "--libs", "--static", "ringcast"],
                           capture_output=True, env=env, timeout=30)
        rc.check_eq(r.returncode, 0, "pkg-config ringcast (%r)" % r.stderr)
        # The archive, explicitly: it is what the sanitizer builds instrument.
        flags = ["-l:libringcast.a" if f == "-lringcast" else f for f in r.stdout.decode().split()]
        exe = os.path.join(prefix, "two_servers")
        r = subprocess.run([cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-pthread"] + san
                           + ["-o", exe, os.path.join(src, "tests", "integration", "two_servers.c")]
                           + flags, capture_output=True, timeout=120)
        rc.check_eq(r.returncode, 0, "two_servers builds from the installed package (%r)"
                    % r.stderr[-1500:])
        penv = dict(os.environ, RINGCAST_IO=rc.io_kind(),
                    TSAN_OPTIONS="halt_on_error=1 exitcode=66",
                    ASAN_OPTIONS="detect_leaks=1:abort_on_error=1")
        prog = Program(exe, penv)
        p1, p2 = prog.ports
        rc.check(p1 != p2, "two ports", None, (p1, p2))
        c1 = redis.Redis(host=rc.HOST, port=p1, socket_timeout=10)
        c2 = redis.Redis(host=rc.HOST, port=p2, socket_timeout=10)
        s1, s2 = c1.pubsub(), c2.pubsub()
        s1.psubscribe("news.*")
        s2.psubscribe("news.*", "sport.*")
        for ps, n in ((s1, 1), (s2, 2)):
            for _ in range(n):
                m = ps.get_message(timeout=10)
                rc.check(m and m["type"] == "psubscribe", "psubscribe confirmed", None, m)
        rc.check_eq(c1.execute_command("PUBSUB", "NUMPAT"), 1, "server 1 counts its own pattern")
        rc.check_eq(c2.execute_command("PUBSUB", "NUMPAT"), 2, "server 2 counts its own patterns")

        rc.check_eq(c1.publish("news.a", "one"), 1, "PUBLISH on server 1 counts its subscriber")
        expect(s1, b"news.*", b"news.a", b"one", "server 1's subscriber")
        rc.check_eq(c2.publish("news.b", "two"), 1, "PUBLISH on server 2 counts its subscriber")
        expect(s2, b"news.*", b"news.b", b"two", "server 2's subscriber")
        expect_nothing(s1, "server 1's subscriber, after a publish on server 2")
        prog.do("pub 1 news.c three")
        expect(s1, b"news.*", b"news.c", b"three", "ringcast_publish on server 1")
        expect_nothing(s2, "server 2's subscriber, after ringcast_publish on server 1")

        prog.do("stop 1")
        try:
            c1.ping()
            raise rc.Failure("server 1 still answers after stop and free")
        except redis.exceptions.ConnectionError:
            pass
        rc.check_eq(c2.publish("sport.x", "four"), 1, "server 2 after server 1 was freed")
        expect(s2, b"sport.*", b"sport.x", b"four", "server 2's pattern subscriber after the free")
        prog.do("pub 2 news.d five")
        expect(s2, b"news.*", b"news.d", b"five", "ringcast_publish on server 2 after the free")
        rc.check_eq(c2.execute_command("PUBSUB", "NUMPAT"), 2, "server 2's patterns intact")
        s1.close()
        s2.close()
        c1.close()
        c2.close()
        code, out, err = prog.finish()
        rc.check_eq(code, 0, "exit code (%s build; stderr %r)" % (mode, err[-3000:]))
        rc.check("WARNING: ThreadSanitizer" not in err and "ERROR: AddressSanitizer" not in err
                 and "runtime error" not in err, "no sanitizer report (%s)" % mode, None,
                 err[-3000:])
        print("    %s build, io=%s: isolated, and server 2 delivered after server 1 was freed"
              % (mode, rc.io_kind()), flush=True)
    finally:
        if prog:
            prog.kill()
        shutil.rmtree(prefix, ignore_errors=True)


if __name__ == "__main__":
    if rc.workers() != "1":
        print("%s: the embedded library runs one worker whatever RINGCAST_WORKERS says; "
              "runs in the RINGCAST_WORKERS=1 pass only, skipped" % os.path.basename(__file__))
        sys.exit(rc.SKIP)
    rc.run_tests([test_two_servers_share_nothing])
