"""test_differential -- byte-for-byte comparison of ringcastd with a real redis-server.

Each tests/integration/diff/*.txt script is run twice: against a
redis-server this test starts (127.0.0.1, free port) and against the server
under test. Every byte each connection receives is captured, step by step,
and the two transcripts must be identical; on a mismatch a unified diff of
the transcripts (one RESP line per row, escaped) is printed.

Script language (one step per line):

    # comment                  blank lines and lines starting with '#' are ignored
    sleep 0.05                 pause (seconds, at most 2), then collect bytes
    <conn> <CMD> [arg ...]     send one command as a RESP multibulk array on the
                               named connection (opened on first use; names are
                               any word but `sleep`). Words are split on spaces;
                               "double quotes" group words; inside and outside
                               quotes \\r \\n \\t \\0 \\\\ \\" \\xHH are escapes, so
                               binary channels and payloads can be written.
    <conn> RAW <bytes>         send the rest of the line as raw bytes, after the
                               same escapes (no CRLF is added): inline commands,
                               pipelines, malformed protocol, partial requests.
    <conn> CLOSE               the client closes that connection.
    <conn> ?shape <CMD> ...    send the command, but compare only the shape of
                               the reply (types, map keys, simple strings and
                               errors; bulk strings and integers become
                               <bulk>/<int>): for CLIENT ID, CLIENT LIST, INFO,
                               HELLO, whose values differ between servers.
    <conn> ?unordered <CMD> ...
                               send the command; its replies are compared as a
                               sequence with each reply's second element (the
                               channel or pattern) taken out, and those names
                               as a sorted list: Redis answers UNSUBSCRIBE and
                               PUNSUBSCRIBE without arguments in the order of
                               its hash table, which is not deterministic.
    <conn> expect-unknown <CMD> ...
                               a command Redis has but ringcastd deliberately
                               lacks (SET, GET, ...). Against Redis it is not
                               sent; the expected reply is Redis's unknown
                               command error for that command line. (When both
                               sides are redis-server, such steps are skipped.)

After every step the test reads from all open connections until none has
sent anything for QUIET seconds (or EOF), bounded at 2 s per step. A closed
connection shows as `<closed>` in the transcript. For the server under test
it waits only until it has the byte counts Redis sent plus a short grace.

The reference redis-server runs with `--databases 1`, like ringcastd's
single database, so `SELECT 1` is an error on both sides.

Environment: RINGCAST_TARGET=redis compares redis-server with a second
redis-server (validates the scripts); RINGCAST_DIFF=name runs one script;
RINGCAST_DIFF_QUIET overrides QUIET; RINGCAST_DIFF_SHOW=1 prints the
Redis transcripts.

SPDX-License-Identifier: BSD-3-Clause
"""

import difflib
import glob
import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402

QUIET = float(os.environ.get("RINGCAST_DIFF_QUIET", "0.1"))
GRACE = 0.02
STEP_MAX = 2.0
DIFF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diff")


# ---------------------------------------------------------------- script parsing

ESC = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\", '"': b'"', "'": b"'"}


def unescape(s):
    out = bytearray()
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            nx = s[i + 1]
            if nx in ESC:
                out += ESC[nx]
                i += 2
                continue
            if nx == "x" and len(s) >= i + 4 and all(c in "0123456789abcdefABCDEF"
                                                     for c in s[i + 2:i + 4]):
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
        out += ch.encode("utf-8")
        i += 1
    return bytes(out)


def split_words(line, where):
    words = []
    i = 0
    n = len(line)
    while i < n:
        if line[i] == " ":
            i += 1
            continue
        if line[i] == '"':
            j = i + 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            if j >= n:
                raise rc.Failure("%s: unbalanced quotes in %r" % (where, line))
            words.append(unescape(line[i + 1:j]))
            i = j + 1
        else:
            j = i
            while j < n and line[j] != " ":
                j += 1
            words.append(unescape(line[i:j]))
            i = j
    return words


class Step:
    def __init__(self, lineno, text, conn=None, kind="cmd", args=None, data=b"", secs=0.0):
        self.lineno = lineno
        self.text = text
        self.conn = conn
        self.kind = kind      # cmd | raw | close | shape | unordered | unknown | sleep
        self.args = args or []
        self.data = data
        self.secs = secs


def load_script(path):
    steps = []
    name = os.path.basename(path)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            where = "%s:%d" % (name, lineno)
            head, _, rest = s.partition(" ")
            if head == "sleep":
                secs = float(rest)
                if not 0 <= secs <= 2:
                    raise rc.Failure("%s: sleep out of range" % where)
                steps.append(Step(lineno, s, kind="sleep", secs=secs))
                continue
            op, _, tail = rest.partition(" ")
            if not op:
                raise rc.Failure("%s: nothing to do for connection %s" % (where, head))
            if op == "RAW":
                steps.append(Step(lineno, s, head, "raw", data=unescape(tail)))
            elif op == "CLOSE":
                steps.append(Step(lineno, s, head, "close"))
            elif op == "?shape":
                steps.append(Step(lineno, s, head, "shape", split_words(tail, where)))
            elif op == "?unordered":
                steps.append(Step(lineno, s, head, "unordered", split_words(tail, where)))
            elif op == "expect-unknown":
                steps.append(Step(lineno, s, head, "unknown", split_words(tail, where)))
            else:
                steps.append(Step(lineno, s, head, "cmd", split_words(rest, where)))
    return steps


# ---------------------------------------------------------------- Redis error synthesis

def unknown_command_error(args):
    """Redis 7's reply to an unknown command line (networking/server.c): the
    name cut to 128 bytes, then quoted arguments while the list is shorter
    than 128 bytes, CR/LF mapped to spaces."""
    listed = b""
    for a in args[1:]:
        if len(listed) >= 128:
            break
        listed += b"'" + a[:128 - len(listed)] + b"' "
    msg = b"ERR unknown command '" + args[0][:128] + b"', with args beginning with: " + listed
    msg = msg.replace(b"\r", b" ").replace(b"\n", b" ")
    return b"-" + msg + b"\r\n"


# ---------------------------------------------------------------- running

def shape_of(v):
    if isinstance(v, rc.Status):
        return "+" + v
    if isinstance(v, rc.Error):
        return "-" + v
    if isinstance(v, bool):
        return "<bool>"
    if isinstance(v, int):
        return "<int>"
    if isinstance(v, float):
        return "<double>"
    if v is None:
        return "<nil>"
    if isinstance(v, bytes):
        return "<bulk>"
    if isinstance(v, rc.Push):
        return "push[" + ", ".join(shape_of(x) for x in v) + "]"
    if isinstance(v, list):
        return "[" + ", ".join(shape_of(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s: %s" % (k.decode("utf-8", "replace") if isinstance(k, bytes)
                                           else k, shape_of(x)) for k, x in v.items()) + "}"
    return type(v).__name__


def shape_bytes(data):
    out = []
    pos = 0
    try:
        while pos < len(data):
            v, pos = rc.parse(data, pos)
            out.append(shape_of(v))
    except (rc.Incomplete, ValueError, rc.Failure):
        out.append("<unparsable %r>" % bytes(data[pos:pos + 80]))
    return ("shape: " + " ; ".join(out)).encode()


def unordered_bytes(data):
    seq, names = [], []
    pos = 0
    try:
        while pos < len(data):
            v, pos = rc.parse(data, pos)
            if isinstance(v, list) and len(v) >= 2:
                names.append(v[1])
                v = type(v)(v[:1] + ["<name>"] + v[2:])
            seq.append(repr(v))
    except (rc.Incomplete, ValueError, rc.Failure):
        seq.append("<unparsable %r>" % bytes(data[pos:pos + 80]))
    return ("unordered: %s names %r" % (" ; ".join(seq), sorted(names, key=repr))).encode()


def render(data):
    """Bytes -> readable lines, one per CRLF-terminated piece."""
    lines = []
    for piece in data.split(b"\r\n"):
        lines.append(piece)
    if lines and lines[-1] == b"":
        lines.pop()
        lines = [x + b"\r\n" for x in lines]
    else:
        lines = [x + b"\r\n" for x in lines[:-1]] + [lines[-1]]
    out = []
    for ln in lines:
        r = repr(ln)[2:-1]
        out.append(r)
    return out


class Run:
    """One script against one server; produces the transcript."""

    def __init__(self, port, label, hints=None, skip_unknown=False):
        self.port = port
        self.label = label
        self.conns = {}
        self.dead = set()           # connections closed (by either side)
        self.sel = selectors.DefaultSelector()
        self.hints = hints          # per step: {conn: (nbytes, closed)} from the reference
        self.step_got = []          # per step: {conn: (nbytes, closed)}
        self.skip_unknown = skip_unknown
        self.reference = hints is None

    def conn(self, name):
        if name not in self.conns:
            s = socket.create_connection((rc.HOST, self.port), timeout=rc.SOCK_TIMEOUT)
            s.setblocking(False)
            self.conns[name] = s
            self.sel.register(s, selectors.EVENT_READ, name)
        return self.conns[name]

    def send(self, name, data):
        """Sends data; returns an error text instead of raising, so that the
        transcript (and the diff) shows where things went wrong."""
        s = self.conn(name)
        s.settimeout(rc.SOCK_TIMEOUT)
        try:
            s.sendall(data)
        except OSError as e:
            return "<send failed: %s>" % e.__class__.__name__
        finally:
            s.setblocking(False)
        return None

    def close(self, name):
        self.dead.add(name)
        s = self.conns.pop(name, None)
        if s is not None:
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()

    def collect(self, idx):
        got = {}
        closed = set()
        hint = self.hints[idx] if self.hints is not None else None
        start = last = time.monotonic()
        while True:
            now = time.monotonic()
            if now - start > STEP_MAX:
                break
            quiet = QUIET
            if hint is not None and all(len(got.get(c, b"")) >= n and
                                        (c in closed) == cl for c, (n, cl) in hint.items()):
                quiet = GRACE
            if now - last >= quiet:
                break
            if not self.sel.get_map():
                break
            for key, _ in self.sel.select(timeout=quiet - (now - last)):
                name = key.data
                try:
                    chunk = key.fileobj.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    got.setdefault(name, bytearray()).extend(chunk)
                else:
                    closed.add(name)
                    got.setdefault(name, bytearray())
                    self.close(name)
                last = time.monotonic()
        return got, closed

    def run(self, steps):
        lines = []
        for idx, st in enumerate(steps):
            lines.append("== %s   (line %d)" % (st.text, st.lineno))
            synth = {}
            err = None
            if st.conn is not None and st.conn in self.dead:
                if self.reference:
                    raise rc.Failure("script bug, line %d: %s is already closed on Redis"
                                     % (st.lineno, st.conn))
                lines.append("%s| <not sent: the connection is closed>" % st.conn)
                self.step_got.append({})
                continue
            if st.kind == "sleep":
                time.sleep(st.secs)
            elif st.kind == "close":
                self.close(st.conn)
            elif st.kind == "raw":
                err = self.send(st.conn, st.data)
            elif st.kind == "unknown" and self.skip_unknown:
                lines.append("   (skipped: expect-unknown with redis on both sides)")
                self.step_got.append({})
                continue
            elif st.kind == "unknown" and self.reference:
                self.conn(st.conn)
                synth[st.conn] = unknown_command_error(st.args)
            else:
                err = self.send(st.conn, rc.encode(*st.args))
            if err:
                lines.append("%s| %s" % (st.conn, err))
            got, closed = self.collect(idx)
            for c, b in synth.items():
                got[c] = bytearray(b) + got.get(c, bytearray())
            self.step_got.append({c: (len(got[c]), c in closed) for c in got})
            for c in sorted(got):
                data = bytes(got[c])
                if st.kind == "shape" and c == st.conn and data:
                    lines.append("%s| %s" % (c, shape_bytes(data).decode()))
                elif st.kind == "unordered" and c == st.conn and data:
                    lines.append("%s| %s" % (c, unordered_bytes(data).decode()))
                else:
                    for ln in render(data):
                        lines.append("%s| %s" % (c, ln))
                if c in closed:
                    lines.append("%s| <closed>" % c)
        return lines

    def finish(self):
        for name in list(self.conns):
            self.close(name)
        self.sel.close()


def wait_clean(port, label):
    """Waits until the server has no channels or patterns left (bounded)."""
    deadline = time.monotonic() + 3
    last = None
    with rc.Conn(port) as c:
        while time.monotonic() < deadline:
            last = (c.cmd("PUBSUB", "NUMPAT"), c.cmd("PUBSUB", "CHANNELS"),
                    c.cmd("PUBSUB", "SHARDCHANNELS"))
            if last == (0, [], []):
                return
            time.sleep(0.01)
    raise rc.Failure("%s: subscriptions left over after a script: %r" % (label, last))


def make_test(path, ref_server, sut_server, sut_label):
    name = os.path.basename(path)
    both_redis = rc.is_redis()

    def test():
        steps = load_script(path)
        rc.check(any(st.kind != "sleep" for st in steps), "%s: empty script" % name)
        ref = Run(ref_server.port, "redis-server", skip_unknown=both_redis)
        try:
            ref_lines = ref.run(steps)
        finally:
            ref.finish()
        sut = Run(sut_server.port, sut_label, hints=ref.step_got, skip_unknown=both_redis)
        try:
            sut_lines = sut.run(steps)
        finally:
            sut.finish()
        wait_clean(ref_server.port, "redis-server")
        wait_clean(sut_server.port, sut_label)
        if os.environ.get("RINGCAST_DIFF_SHOW"):
            print("\n".join(ref_lines))
        if ref_lines != sut_lines:
            diff = difflib.unified_diff(ref_lines, sut_lines, "redis-server", sut_label,
                                        lineterm="", n=4)
            raise rc.Failure("%s: transcripts differ (- redis-server, + %s):\n%s"
                             % (name, sut_label, "\n".join(diff)))
    test.__name__ = "diff_" + name[:-4]
    return test


def test_unknown_error_format(ref_server):
    """The synthesized unknown-command error matches what Redis really says."""
    def test():
        cases = [[b"nosuchcmd"], [b"NoSuch", b"a", b"b"], [b"x" * 200, b"y" * 100, b"z" * 100],
                 [b"foo", b"a\r\nb", b""], [b"cmd", b"a" * 70, b"b" * 70, b"c"]]
        with rc.Conn(ref_server.port) as c:
            for args in cases:
                c.send_cmd(*args)
                got, _ = c.read_raw(quiet=0.05)
                rc.check_eq(got, unknown_command_error(args),
                            "redis unknown command error for %r" % args[:3])
    test.__name__ = "unknown_error_format"
    return test


def main():
    paths = sorted(glob.glob(os.path.join(DIFF_DIR, "*.txt")))
    only = os.environ.get("RINGCAST_DIFF")
    if only:
        paths = [p for p in paths if only in os.path.basename(p)]
    if not paths:
        print("no scripts in %s" % DIFF_DIR)
        sys.exit(1)
    try:
        rc.redis_server_path()
    except rc.Skip as e:
        print("cannot run: %s" % e)
        sys.exit(rc.SKIP)
    # ringcastd has one database (pub/sub ignores databases anyway): the
    # reference Redis gets the same, so SELECT 1 errors on both sides.
    ref = rc.Server(kind="redis", flags=["--databases", "1"])
    try:
        sut = rc.Server(flags=["--databases", "1"] if rc.is_redis() else [])
        try:
            label = "redis-server(2)" if rc.is_redis() else "ringcastd"
            tests = [test_unknown_error_format(ref)]
            tests += [make_test(p, ref, sut, label) for p in paths]
            rc.run_tests(tests)
        finally:
            sut.close()
    finally:
        ref.close()


if __name__ == "__main__":
    main()
