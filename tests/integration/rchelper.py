"""rchelper -- shared harness for the ringcastd integration tests.

Starts a server on a free 127.0.0.1 port and waits until it answers PING,
speaks RESP2/RESP3 over plain sockets (every socket has a timeout), and runs
a file's test functions, printing what was expected and what came.

Which server: RINGCAST_TARGET=redis runs the tests against a real
redis-server (to validate the tests themselves; ringcast-only checks are
skipped, see `is_redis()`); otherwise RINGCASTD names the ringcastd binary,
RINGCAST_IO the backend (uring|epoll|naive) passed as `--io`, and
RINGCAST_WORKERS (default 1) the number of loop threads passed as `--workers`
(unless the test's own flags set `--workers`).

Exit codes of a test file: 0 pass, 1 fail, 77 skipped (cannot run here).

SPDX-License-Identifier: BSD-3-Clause
"""

import os
import shutil
import signal
import select
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
HOST = "127.0.0.1"
READY_TIMEOUT = 10.0
SOCK_TIMEOUT = 5.0


class Skip(Exception):
    """Raised by a test that cannot run here (exit 77 if nothing else ran)."""


class Failure(AssertionError):
    pass


def target():
    return "redis" if os.environ.get("RINGCAST_TARGET", "") == "redis" else "ringcastd"


def is_redis():
    return target() == "redis"


def io_kind():
    return os.environ.get("RINGCAST_IO", "epoll")


def workers():
    """The `--workers` a Server passes to ringcastd (RINGCAST_WORKERS, default "1")."""
    return os.environ.get("RINGCAST_WORKERS", "") or "1"


def ringcastd_path():
    p = os.environ.get("RINGCASTD", "")
    if not p:
        src = os.environ.get("RINGCAST_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
        raise Failure("RINGCASTD is not set (expected the path of the ringcastd binary; "
                      "RINGCAST_SRC=%s)" % src)
    if not os.access(p, os.X_OK):
        raise Failure("RINGCASTD=%s is not an executable file" % p)
    return p


def redis_server_path():
    p = shutil.which("redis-server")
    if not p:
        raise Skip("redis-server is not installed")
    return p


def free_port():
    """A port that was free a moment ago (bind 127.0.0.1:0, read it, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


# ---------------------------------------------------------------- failures

def check(cond, what, expected=None, got=None):
    if cond:
        return
    msg = what
    if expected is not None or got is not None:
        msg += "\n    expected: %r\n    got:      %r" % (expected, got)
    raise Failure(msg)


def check_eq(got, expected, what):
    check(got == expected, what, expected, got)


# ---------------------------------------------------------------- servers

class Server:
    """One server process (ringcastd or redis-server) on 127.0.0.1.

    flags: ringcastd-style settings, e.g. ["--requirepass", "pw"]; both servers
    take the same `--name value` form. Output (stdout+stderr) goes to a file
    readable with .log(). Use as a context manager or call stop().
    ringcastd gets `--workers $RINGCAST_WORKERS` unless flags set --workers or
    pass_workers is False (the server then picks its own default)."""

    def __init__(self, flags=(), config_file=None, port=None, kind=None, io=None,
                 wait=True, env=None, pass_port=True, preexec=None, argv_prefix=None,
                 pass_workers=True):
        self.kind = kind or target()
        self.pass_workers = pass_workers
        self.preexec = preexec          # run in the child before exec (e.g. set rlimits)
        self.argv_prefix = list(argv_prefix or [])  # e.g. ["ip", "netns", "exec", "ns"]
        self.flags = list(flags)
        self.config_file = config_file
        self.fixed_port = port
        self.pass_port = pass_port  # False: the config file sets the port (fixed_port)
        self.io = io or io_kind()
        self.proc = None
        self.port = None
        self.env = env
        self.logf = tempfile.NamedTemporaryFile(prefix="rc-%s-" % self.kind, suffix=".log",
                                                delete=False)
        self.start(wait)

    def argv(self, port):
        if self.kind == "redis":
            argv = [redis_server_path()]
            if self.config_file:
                argv.append(self.config_file)
            if port is not None:
                argv += ["--port", str(port)]
            argv += ["--bind", HOST, "--save", "", "--appendonly", "no"]
            # redis-server has no --io; drop ringcast-only flags
            fl = list(self.flags)
            out = []
            i = 0
            while i < len(fl):
                if fl[i] in ("--io", "--tick-us", "--tick-bytes", "--so-sndbuf", "--http-port",
                             "--workers"):
                    i += 2
                    continue
                out.append(fl[i])
                i += 1
            return argv + out
        argv = [ringcastd_path()]
        if self.config_file:
            argv.append(self.config_file)
        if port is not None:
            argv += ["--port", str(port)]
        argv += ["--bind", HOST, "--io", self.io]
        if "--http-port" not in self.flags:
            # The HTTP port is on by default (8380); tests that run in parallel
            # must not all try to take it, so it is off unless a test asks.
            argv += ["--http-port", "0"]
        if self.pass_workers and "--workers" not in self.flags:
            argv += ["--workers", workers()]
        return argv + self.flags

    def start(self, wait=True):
        last = ""
        for attempt in range(5):
            port = self.fixed_port if self.fixed_port is not None else free_port()
            self.logf.seek(0)
            self.logf.truncate()
            self.proc = subprocess.Popen(self.argv_prefix +
                                         self.argv(port if self.pass_port else None),
                                         stdin=subprocess.DEVNULL,
                                         stdout=self.logf, stderr=subprocess.STDOUT,
                                         env=self.env, preexec_fn=self.preexec)
            self.port = port
            if not wait:
                return
            ok, why = self.wait_ready()
            if ok:
                return
            last = why
            log = self.log()
            self.kill()
            if self.fixed_port is None and "in use" in log.lower():
                continue  # another test took the port between our probe and the bind
            break
        raise Failure("%s did not become ready: %s\n--- server output ---\n%s"
                      % (self.kind, last, self.log()[-4000:]))

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        why = "timeout"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, "exited with code %d" % self.proc.returncode
            try:
                with socket.create_connection((HOST, self.port), timeout=1.0) as s:
                    s.settimeout(1.0)
                    s.sendall(b"*1\r\n$4\r\nPING\r\n")
                    data = b""
                    while not data.endswith(b"\r\n") and len(data) < 1000:
                        chunk = s.recv(1000)
                        if not chunk:
                            break
                        data += chunk
                    if data.startswith(b"+PONG") or data.startswith(b"-NOAUTH"):
                        return True, ""
                    why = "PING answered %r" % data
            except OSError as e:
                why = str(e)
            time.sleep(0.02)
        return False, why

    def log(self):
        try:
            with open(self.logf.name, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Sends sig and waits; returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def close(self, check_log=False):
        """Kills the server. check_log: fail if its log has a sanitizer report
        (ASan, UBSan, TSan print theirs when they happen)."""
        self.kill()
        report = None
        if check_log and self.kind != "redis":
            text = self.log()
            for mark in ("ThreadSanitizer", "AddressSanitizer", "runtime error:"):
                at = text.find(mark)
                if at >= 0:
                    report = text[max(0, at - 200):at + 3000]
                    break
        try:
            os.unlink(self.logf.name)
        except OSError:
            pass
        self.logf.close()
        if report is not None:
            raise Failure("sanitizer report in the server's log:\n%s" % report)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(check_log=exc[0] is None)

    def conn(self, **kw):
        return Conn(self.port, **kw)

    @property
    def pid(self):
        return self.proc.pid

    def fds(self):
        """Number of open descriptors of the server process."""
        return proc_fds(self.proc.pid)

    def rss_kb(self):
        return proc_rss_kb(self.proc.pid)

    def cpu_seconds(self):
        return proc_cpu_seconds(self.proc.pid)

    def ping(self, timeout=5.0):
        """True if a fresh connection gets +PONG (or -NOAUTH) to PING."""
        try:
            with Conn(self.port, timeout=timeout) as c:
                r = c.cmd("PING")
                return r == "PONG" or (isinstance(r, Error) and r.startswith("NOAUTH"))
        except (OSError, Failure):
            return False


# ---------------------------------------------------------------- /proc probes

def proc_fds(pid):
    """Open file descriptors of pid (len of /proc/PID/fd)."""
    return len(os.listdir("/proc/%d/fd" % pid))


def proc_rss_kb(pid):
    """Resident set size of pid in KiB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Failure("no VmRSS for pid %d" % pid)


def proc_cpu_seconds(pid):
    """User + system CPU time pid has used, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def baseline(srv):
    """(fds, rss_kb) of an idle server, after a PING round trip has settled."""
    check(srv.ping(), "the server answers PING")
    time.sleep(0.2)  # let the server close the probe connection
    return srv.fds(), srv.rss_kb()


def sanitized():
    """True when the server under test is an ASan/UBSan build (RINGCAST_SANITIZE=1).
    AddressSanitizer keeps freed memory in quarantine, so RSS says nothing about
    leaks there; LeakSanitizer checks them at exit instead."""
    return os.environ.get("RINGCAST_SANITIZE") == "1"


def check_recovered(srv, base, rss_slack_kb=8192, timeout=5.0, what=""):
    """The server is alive, answers PING, and its descriptor count and RSS are
    back near base (as returned by baseline()) within timeout."""
    check(srv.alive(), "%sthe server is still running" % what,
          got=srv.log()[-2000:] if not srv.alive() else None)
    check(srv.ping(), "%sthe server still answers PING" % what)
    fds = wait_until(lambda: srv.fds() <= base[0] and srv.fds(), timeout)
    check(fds, "%sopen descriptors back to the baseline" % what, base[0], srv.fds())
    if sanitized():
        return
    rss = wait_until(lambda: srv.rss_kb() <= base[1] + rss_slack_kb and srv.rss_kb(), timeout)
    check(rss, "%sRSS back near the baseline (+%d KiB allowed)" % (what, rss_slack_kb),
          base[1], srv.rss_kb())


def wait_until(cond, timeout, step=0.05):
    """Polls cond() until it is true or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


# ---------------------------------------------------------------- RESP

class Status(str):
    """+simple string"""


class Error(str):
    """-error string"""


class Push(list):
    """RESP3 >push"""


class Verbatim(bytes):
    pass


class Incomplete(Exception):
    pass


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def parse(buf, pos=0):
    """Parses one reply from buf at pos. Returns (value, newpos) or raises Incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete()
    t = buf[pos:pos + 1]
    line = bytes(buf[pos + 1:end])
    pos = end + 2
    if t == b"+":
        return Status(line.decode("utf-8", "replace")), pos
    if t == b"-":
        return Error(line.decode("utf-8", "replace")), pos
    if t == b":":
        return int(line), pos
    if t == b"_":
        return None, pos
    if t == b",":
        return float(line), pos
    if t == b"#":
        return line == b"t", pos
    if t == b"(":
        return int(line), pos
    if t in (b"$", b"=", b"!"):
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise Incomplete()
        v = bytes(buf[pos:pos + n])
        if t == b"!":
            v = Error(v.decode("utf-8", "replace"))
        elif t == b"=":
            v = Verbatim(v)
        return v, pos + n + 2
    if t in (b"*", b">", b"~"):
        n = int(line)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            v, pos = parse(buf, pos)
            items.append(v)
        if t == b">":
            return Push(items), pos
        return items, pos
    if t in (b"%", b"|"):
        n = int(line)
        d = {}
        for _ in range(n):
            k, pos = parse(buf, pos)
            v, pos = parse(buf, pos)
            if isinstance(k, list):
                k = tuple(k)
            d[k] = v
        if t == b"|":
            return parse(buf, pos)  # attributes precede the real reply
        return d, pos
    raise Failure("bad RESP type byte %r in %r" % (t, bytes(buf[pos - len(line) - 3:pos + 40])))


class Conn:
    """A blocking RESP client connection with a timeout."""

    def __init__(self, port, timeout=SOCK_TIMEOUT, host=HOST):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        self.timeout = timeout

    def send(self, data):
        self.sock.sendall(data)

    def send_cmd(self, *args):
        self.sock.sendall(encode(*args))

    def read(self, timeout=None):
        """Reads one reply (blocking up to timeout)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                v, pos = parse(self.buf)
                del self.buf[:pos]
                return v
            except Incomplete:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("timed out waiting for a reply (have %r)" % bytes(self.buf[:200]))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise Failure("timed out waiting for a reply (have %r)" % bytes(self.buf[:200]))
            if not chunk:
                raise Failure("connection closed while waiting for a reply (have %r)"
                              % bytes(self.buf[:200]))
            self.buf += chunk

    def cmd(self, *args):
        self.send_cmd(*args)
        return self.read()

    def read_reply_raw(self, timeout=None):
        """Reads one reply and returns its exact bytes (for byte-for-byte comparisons)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                _, pos = parse(self.buf)
                raw = bytes(self.buf[:pos])
                del self.buf[:pos]
                return raw
            except Incomplete:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("timed out waiting for a reply (have %r)" % bytes(self.buf[:200]))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise Failure("timed out waiting for a reply (have %r)" % bytes(self.buf[:200]))
            if not chunk:
                raise Failure("connection closed while waiting for a reply (have %r)"
                              % bytes(self.buf[:200]))
            self.buf += chunk

    def read_raw(self, quiet=0.1, limit=1 << 20, maxtime=3.0):
        """Reads bytes until nothing came for `quiet` seconds (or EOF).
        Returns (bytes, eof)."""
        out = bytes(self.buf)
        self.buf.clear()
        deadline = time.monotonic() + maxtime
        eof = False
        while len(out) < limit and time.monotonic() < deadline:
            self.sock.settimeout(quiet)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                eof = True
                break
            if not chunk:
                eof = True
                break
            out += chunk
        self.sock.settimeout(self.timeout)
        return out, eof

    def expect_closed(self, timeout=2.0):
        """True if the peer closes the connection within timeout (data before is ignored)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def seq_payload(seq, size):
    """A size-byte payload that starts with its sequence number ("seq:00000042:ppp...")."""
    head = b"seq:%08d:" % seq
    return head + b"p" * (size - len(head))


def message_frame(chan, payload):
    """The RESP2 message frame a channel subscriber receives for payload."""
    return b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(chan), chan,
                                                                     len(payload), payload)


def raw_subscriber(port, chan, rcvbuf=None, timeout=5):
    """A plain socket subscribed to chan (confirmation read and checked); rcvbuf
    shrinks its receive buffer, for a subscriber that falls behind."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((HOST, port))
    s.sendall(encode("SUBSCRIBE", chan))
    want = b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(chan), chan)
    got = b""
    while len(got) < len(want):
        chunk = s.recv(len(want) - len(got))
        if not chunk:
            break
        got += chunk
    check_eq(got, want, "subscribe confirmation")
    return s


def proc_line(proc, buf, timeout, who):
    """The next line proc printed on stdout, and the bytes after it.

    Reads the raw fd into buf (what is left from the last call): a buffered
    readline() could swallow a second line that select() then never reports."""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise Failure("%s printed no line within %.0fs (have %r)" % (who, timeout, buf))
        chunk = os.read(fd, 4096)
        if not chunk:
            raise Failure("%s closed stdout (have %r)" % (who, buf))
        buf += chunk
    line, rest = buf.split(b"\n", 1)
    return line.decode().strip(), rest


def server_workers(port):
    """How many workers the server on port runs (INFO server `workers`; 1 for redis-server).

    With more than one, ringcastd keeps one order per channel, not one order
    across channels (docs/design.md, "Workers"), and encodes a message once
    per wire format on each worker with receivers: tests check those."""
    c = Conn(port)
    try:
        text = c.cmd("INFO", "server")
    finally:
        c.close()
    return int(info_sections(text).get("server", {}).get("workers", "1"))


def channel_owner(conn, chan):
    """Which worker of a --workers N server owns chan: the one whose INFO workers
    `owned_publishes` grows when conn publishes a probe message on it."""
    def owned():
        sec = info_sections(conn.cmd("INFO", "workers").decode()).get("workers", {})
        return {int(k[6:]): int(dict(x.split("=") for x in v.split(","))["owned_publishes"])
                for k, v in sec.items()}
    before = owned()
    conn.cmd("PUBLISH", chan, "probe")
    after = owned()
    won = [w for w in after if after[w] > before.get(w, 0)]
    check_eq(len(won), 1, "one worker stamped the probe publish of %r" % chan)
    return won[0]


def info_sections(text):
    """Parses INFO text into {section: {field: value}} (section names lower-case)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out = {}
    cur = None
    for line in text.split("\r\n"):
        if line.startswith("# "):
            cur = line[2:].strip().lower()
            out[cur] = {}
        elif line and cur is not None and ":" in line:
            k, v = line.split(":", 1)
            out[cur][k] = v
    return out


# ---------------------------------------------------------------- runner

def run_tests(tests, name=None):
    """Runs each function in tests; prints results; exits 0/1/77."""
    name = name or os.path.basename(sys.argv[0])
    print("%s: target=%s io=%s workers=%s" % (name, target(), io_kind(), workers()), flush=True)
    failed, skipped, passed = [], [], []
    t0 = time.monotonic()
    only = os.environ.get("RINGCAST_ONLY")
    for fn in tests:
        if only and only not in fn.__name__:
            continue
        t1 = time.monotonic()
        try:
            fn()
        except Skip as e:
            skipped.append(fn.__name__)
            print("SKIP %s: %s" % (fn.__name__, e), flush=True)
            continue
        except Exception as e:  # noqa: BLE001 -- report every kind of failure
            failed.append(fn.__name__)
            print("FAIL %s (%.2fs): %s" % (fn.__name__, time.monotonic() - t1, e), flush=True)
            if not isinstance(e, Failure):
                traceback.print_exc()
            continue
        passed.append(fn.__name__)
        print("ok   %s (%.2fs)" % (fn.__name__, time.monotonic() - t1), flush=True)
    print("%s: %d passed, %d failed, %d skipped in %.1fs" %
          (name, len(passed), len(failed), len(skipped), time.monotonic() - t0), flush=True)
    if failed:
        print("failed: " + " ".join(failed), flush=True)
        sys.exit(1)
    if skipped and not passed:
        sys.exit(SKIP)
    sys.exit(0)
