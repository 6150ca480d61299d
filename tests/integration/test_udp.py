"""test_udp -- UDP feed ingest: framing, sequence tracking, A/B arbitration, multicast.

Datagrams are built here from the layout in docs/udp.md (struct.pack, not
the server's encoder) and sent from plain Python sockets to a real ringcastd
started with `--udp-source <name> 127.0.0.1:0`; the bound port is read back
from INFO sources. Subscribers are ordinary RESP clients. Checked:

  - messages of one datagram and of many arrive once, in order, with their
    exact channel and payload bytes, and count in INFO like PUBLISHes;
  - malformed datagrams are counted and dropped, logged at most once a second,
    and never disturb the next good datagram;
  - per-source sequence tracking: duplicates dropped, gaps counted, a late
    message fills its gap, a new session restarts the count;
  - `udp-arbitrate a b`: two lines each losing different datagrams give
    every message exactly once;
  - ringcast-feed end to end, over UDP and over RESP;
  - multicast: the server in one network namespace joins a group on a veth
    interface, a sender in another namespace sends to the group (skipped
    when namespaces cannot be made: not root, no `ip`).

SPDX-License-Identifier: BSD-3-Clause
"""

import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402


def hdr(count, session, seq, version=1, flags=0):
    return struct.pack(">BBHIQ", version, flags, count, session, seq)


def msg(chan, payload):
    if isinstance(chan, str):
        chan = chan.encode()
    if isinstance(payload, str):
        payload = payload.encode()
    return struct.pack(">H", len(chan)) + chan + struct.pack(">I", len(payload)) + payload


def dgram(session, seq, msgs):
    return hdr(len(msgs), session, seq) + b"".join(msg(c, p) for c, p in msgs)


def need_ringcastd():
    if rc.is_redis():
        raise rc.Skip("UDP ingest is ringcast's own")


def sources(conn):
    """INFO sources as {name: {field: value}} plus the arbitration lines."""
    info = rc.info_sections(conn.cmd("INFO", "sources"))["sources"]
    out = {}
    for k, v in info.items():
        if k.rstrip("0123456789") in ("udp_source", "udp_arbitrate") and k[-1].isdigit():
            fields = dict(kv.split("=", 1) for kv in v.split(","))
            out[fields.get("name", k)] = fields
    return out


def udp_addr(conn, name):
    a = sources(conn)[name]["addr"]
    host, port = a.rsplit(":", 1)
    return host, int(port)


class Sender:
    def __init__(self, addr):
        self.addr = addr
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, data):
        self.sock.sendto(data, self.addr)

    def close(self):
        self.sock.close()


def read_messages(sub, n, timeout=5.0):
    """Reads n pub/sub messages; returns [(channel, payload)]."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise rc.Failure("got %d of %d messages: %r" % (len(out), n, out[-5:]))
        m = sub.read(timeout=left)
        if m[0] == b"message":
            out.append((m[1], m[2]))
        elif m[0] == b"pmessage":
            out.append((m[2], m[3]))
    return out


def expect_quiet(sub, quiet=0.3):
    data, _ = sub.read_raw(quiet=quiet, maxtime=quiet + 0.5)
    rc.check_eq(data, b"", "no further message")


def wait_for(cond, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise rc.Failure("timed out waiting for " + what)


def test_unicast_messages():
    need_ringcastd()
    with rc.Server(["--udp-source", "a", "127.0.0.1:0"]) as srv, srv.conn() as sub, \
            srv.conn() as c:
        rc.check_eq(sub.cmd("SUBSCRIBE", "quotes.AAPL"), [b"subscribe", b"quotes.AAPL", 1],
                    "subscribed")
        sub.cmd("SUBSCRIBE", "quotes.MSFT")
        tx = Sender(udp_addr(c, "a"))
        binary = bytes(range(256))
        tx.send(dgram(1, 1, [("quotes.AAPL", "187.42"), ("quotes.MSFT", binary),
                             ("quotes.NONE", "nobody"), ("quotes.AAPL", "")]))
        got = read_messages(sub, 3)
        rc.check_eq(got, [(b"quotes.AAPL", b"187.42"), (b"quotes.MSFT", binary),
                          (b"quotes.AAPL", b"")], "one datagram, three delivered messages")
        # many datagrams, many messages each, in order
        want = []
        for d in range(50):
            ms = [("quotes.AAPL", "p%d.%d" % (d, k)) for k in range(10)]
            want += [(b"quotes.AAPL", p.encode()) for _, p in ms]
            tx.send(dgram(1, 5 + d * 10, ms))
        rc.check_eq(read_messages(sub, 500), want, "500 messages in order")
        expect_quiet(sub)
        st = sources(c)["a"]
        rc.check_eq((st["datagrams"], st["messages"], st["published"], st["malformed"],
                     st["gaps"], st["duplicates"]), ("51", "504", "504", "0", "0", "0"),
                    "INFO sources counters")
        fan = rc.info_sections(c.cmd("INFO", "fanout"))["fanout"]
        rc.check(int(fan["messages_published"]) >= 504, "UDP messages count as published",
                 ">= 504", fan["messages_published"])
        rc.check(int(fan["sys_recvmmsg"]) >= 1, "recvmmsg is counted", ">= 1",
                 fan["sys_recvmmsg"])
        rc.check(int(fan["sys_recvmmsg"]) <= 51, "at most one recvmmsg per datagram", "<= 51",
                 fan["sys_recvmmsg"])
        # RESP PUBLISH and UDP share channels and subscribers
        rc.check_eq(c.cmd("PUBLISH", "quotes.AAPL", "resp"), 1, "PUBLISH reaches the subscriber")
        rc.check_eq(read_messages(sub, 1), [(b"quotes.AAPL", b"resp")], "RESP message")
        tx.close()


def test_malformed_dropped():
    need_ringcastd()
    with rc.Server(["--udp-source", "a", "127.0.0.1:0"]) as srv, srv.conn() as sub, \
            srv.conn() as c:
        sub.cmd("SUBSCRIBE", "ch")
        tx = Sender(udp_addr(c, "a"))
        good = dgram(1, 1, [("ch", "x")])
        bad = [
            b"",
            b"\x01",
            good[:15],
            b"\x02" + good[1:],                       # version
            good[:1] + b"\x01" + good[2:],           # flags
            good + b"\x00",                          # trailing byte
            hdr(2, 1, 1) + msg("ch", "x"),           # count too high
            hdr(1, 1, 1) + msg("", "x"),             # empty channel
            hdr(1, 1, 1) + struct.pack(">H", 9) + b"ch",                       # channel cut
            hdr(1, 1, 1) + struct.pack(">H", 2) + b"ch" + b"\xff\xff\xff\xff",  # payload cut
            hdr(2, 1, 2 ** 64 - 1) + msg("ch", "x") + msg("ch", "y"),       # seq overflow
            os.urandom(1000),
        ]
        for _ in range(5):
            for b in bad:
                tx.send(b)
        tx.send(good)
        rc.check_eq(read_messages(sub, 1), [(b"ch", b"x")], "the good datagram after 60 bad")
        expect_quiet(sub)
        st = sources(c)["a"]
        rc.check_eq(st["malformed"], str(5 * len(bad)), "malformed datagrams counted")
        rc.check_eq(st["published"], "1", "nothing of them published")
        lines = [ln for ln in srv.log().splitlines() if "malformed datagram" in ln]
        rc.check(1 <= len(lines) <= 2, "malformed datagrams logged at most once a second",
                 "1 or 2 lines", lines)
        rc.check(srv.alive(), "server alive")


def test_sequence_gaps_duplicates():
    need_ringcastd()
    with rc.Server(["--udp-source", "a", "127.0.0.1:0"]) as srv, srv.conn() as sub, \
            srv.conn() as c:
        sub.cmd("SUBSCRIBE", "s")
        tx = Sender(udp_addr(c, "a"))
        for seq in (1, 2, 3, 3, 2, 6, 5, 9):
            tx.send(dgram(77, seq, [("s", str(seq))]))
            time.sleep(0.01)  # keep the order the test means (loopback keeps it anyway)
        got = [p for _, p in read_messages(sub, 6)]
        rc.check_eq(got, [b"1", b"2", b"3", b"6", b"5", b"9"], "duplicates dropped, late ones kept")
        expect_quiet(sub)
        st = sources(c)["a"]
        # missing: 4, 7, 8 (5 filled late)
        rc.check_eq((st["duplicates"], st["gaps"], st["reordered"], st["next_seq"]),
                    ("2", "3", "1", "10"), "duplicates, gaps, reordered, next_seq")
        # a datagram of several messages overlapping what was seen
        tx.send(dgram(77, 8, [("s", "8"), ("s", "9"), ("s", "10")]))
        rc.check_eq([p for _, p in read_messages(sub, 2)], [b"8", b"10"], "overlap: only new ones")
        # heartbeat announcing 20: 11..19 are a gap
        tx.send(hdr(0, 77, 20))
        tx.send(dgram(77, 20, [("s", "20")]))
        rc.check_eq(read_messages(sub, 1), [(b"s", b"20")], "after the heartbeat")
        st = sources(c)["a"]
        rc.check_eq(st["gaps"], str(2 + 9), "heartbeat gap counted")
        # the sender restarts: new session, seq from 1 again
        tx.send(dgram(78, 1, [("s", "new1")]))
        rc.check_eq(read_messages(sub, 1), [(b"s", b"new1")], "new session accepted")
        # a late datagram of the old session is stale
        tx.send(dgram(77, 21, [("s", "old")]))
        tx.send(dgram(78, 2, [("s", "new2")]))
        rc.check_eq(read_messages(sub, 1), [(b"s", b"new2")], "old session dropped")
        st = sources(c)["a"]
        rc.check_eq((st["resets"], st["stale"]), ("1", "1"), "resets and stale")


def test_ab_arbitration():
    need_ringcastd()
    flags = ["--udp-source", "a", "127.0.0.1:0", "--udp-source", "b", "127.0.0.1:0",
             "--udp-arbitrate", "a", "b"]
    with rc.Server(flags) as srv, srv.conn() as sub, srv.conn() as c:
        sub.cmd("SUBSCRIBE", "ab")
        ta, tb = Sender(udp_addr(c, "a")), Sender(udp_addr(c, "b"))
        rnd = random.Random(7)
        n = 300
        lost_a = {s for s in range(1, n + 1) if s % 7 == 0}
        lost_b = {s for s in range(1, n + 1) if s % 11 == 0}
        both = lost_a & lost_b
        for s in range(1, n + 1):
            pair = [(ta, s not in lost_a), (tb, s not in lost_b)]
            rnd.shuffle(pair)  # either line may be first
            for tx, ok in pair:
                if ok:
                    tx.send(dgram(9, s, [("ab", str(s))]))
        want = [str(s).encode() for s in range(1, n + 1) if s not in both]
        got = [p for _, p in read_messages(sub, len(want))]
        rc.check_eq(sorted(got, key=int), want, "every message once (order across lines may vary)")
        rc.check_eq(len(set(got)), len(got), "no duplicates")
        expect_quiet(sub)
        st = sources(c)
        arb = st["udp_arbitrate0"]
        rc.check_eq(arb["sources"], "a|b", "pair")
        rc.check_eq(arb["published"], str(len(want)), "pair published")
        rc.check_eq(arb["gaps"], str(len(both)), "gaps only where both lines lost")
        rc.check_eq(int(arb["duplicates"]), 2 * n - len(lost_a) - len(lost_b) - len(want),
                    "the second copies are duplicates")
        rc.check_eq(int(st["a"]["gaps"]), len(lost_a), "line a's own gaps")
        rc.check_eq(int(st["b"]["gaps"]), len(lost_b), "line b's own gaps")
        rc.check_eq(int(st["a"]["published"]) + int(st["b"]["published"]), len(want),
                    "published split between the lines")


def test_bad_udp_config():
    need_ringcastd()
    for flags, text in ((["--udp-source", "a", "127.0.0.1"], "udp-source"),
                        (["--udp-source", "a", "127.0.0.1:1", "--udp-arbitrate", "a", "zz"],
                         "no udp-source named 'zz'"),
                        (["--udp-source", "a", "0.0.0.0:0", "group", "239.1.1.1", "iface",
                          "nosuchif0"], "Could not open UDP source 'a'")):
        srv = rc.Server(flags, wait=False)
        try:
            try:
                srv.proc.wait(5)
            except subprocess.TimeoutExpired:
                raise rc.Failure("server with %r did not exit" % flags)
            rc.check_eq(srv.proc.returncode, 1, "exit code for %r" % flags)
            rc.check(text in srv.log(), "error names the problem", text, srv.log()[-300:])
        finally:
            srv.close()


def feed_path():
    p = os.path.join(os.path.dirname(rc.ringcastd_path()), "ringcast-feed")
    if not os.access(p, os.X_OK):
        raise rc.Failure("ringcast-feed not built next to ringcastd: %s" % p)
    return p


def check_quotes(msgs, nsym):
    per = {}
    for ch, p in msgs:
        q = json.loads(p)
        rc.check_eq(ch, b"quotes." + q["sym"].encode(), "channel matches the symbol")
        rc.check(q["bid"] < q["ask"], "bid below ask", None, q)
        per.setdefault(q["sym"], []).append(q["n"])
    rc.check_eq(len(per), nsym, "every symbol quoted")
    for sym, ns in per.items():
        rc.check_eq(ns, list(range(1, len(ns) + 1)), "updates of %s in order, none lost" % sym)


def test_feed_simulator_udp_and_resp():
    need_ringcastd()
    with rc.Server(["--udp-source", "demo", "127.0.0.1:0"]) as srv, srv.conn() as sub, \
            srv.conn() as c:
        rc.check_eq(sub.cmd("PSUBSCRIBE", "quotes.*"), [b"psubscribe", b"quotes.*", 1], "psub")
        host, port = udp_addr(c, "demo")
        r = subprocess.run([feed_path(), "--udp", "%s:%d" % (host, port), "--symbols", "5",
                            "--rate", "1000000", "--count", "300", "--batch", "8", "--seed", "1"],
                           capture_output=True, timeout=30)
        rc.check_eq(r.returncode, 0, "feed exit code (stderr %r)" % r.stderr)
        check_quotes(read_messages(sub, 300), 5)
        st = sources(c)["demo"]
        rc.check_eq((st["published"], st["gaps"]), ("300", "0"), "all 300 through UDP")
        rc.check(int(st["datagrams"]) < 300, "messages batched into datagrams", "< 300",
                 st["datagrams"])
        r = subprocess.run([feed_path(), "--resp", "127.0.0.1:%d" % srv.port, "--sources", "2",
                            "--symbols", "4", "--rate", "5000", "--count", "200", "--prefix",
                            "quotes.r"], capture_output=True, timeout=30)
        rc.check_eq(r.returncode, 0, "feed over RESP exit code (stderr %r)" % r.stderr)
        got = read_messages(sub, 200)
        check_quotes([(ch.replace(b"quotes.r", b"quotes."), p) for ch, p in got], 4)
        expect_quiet(sub)


# ---------------------------------------------------------------- multicast

def sh(*argv):
    return subprocess.run(list(argv), capture_output=True, timeout=20)


SUBSCRIBER = r"""
import socket, sys, time
port, chan, n = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(chan), chan))
buf = b""
deadline = time.monotonic() + 10
while buf.count(b"\r\n") < 6 and time.monotonic() < deadline:
    buf += s.recv(65536)
print("READY", flush=True)
buf = buf.split(b"\r\n", 6)[6] if buf.count(b"\r\n") >= 6 else b""
while buf.count(b"message") < n and time.monotonic() < deadline:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
sys.stdout.write(buf.decode("latin-1"))
"""

SENDER = r"""
import socket, struct, sys
group, port, src, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for i in range(1, n + 1):
    m = b"mc.test"
    p = b"tick-%d" % i
    d = struct.pack(">BBHIQ", 1, 0, 1, 5, i) + struct.pack(">H", len(m)) + m + \
        struct.pack(">I", len(p)) + p
    s.sendto(d, (group, port))
"""


def test_multicast_between_namespaces():
    need_ringcastd()
    if os.geteuid() != 0 or not shutil.which("ip"):
        raise rc.Skip("needs root and iproute2 to create network namespaces")
    tag = "%d" % (os.getpid() % 100000)
    ns_a, ns_b = "rcmcA" + tag, "rcmcB" + tag
    va, vb = "rcva" + tag, "rcvb" + tag
    group, uport, tport, n = "239.77.0.1", 5999, 6390, 20
    logf = tempfile.NamedTemporaryFile(prefix="rc-mcast-", suffix=".log", delete=False)
    server = sub = None
    try:
        steps = [["ip", "netns", "add", ns_a], ["ip", "netns", "add", ns_b],
                 ["ip", "link", "add", va, "netns", ns_a, "type", "veth", "peer", "name", vb,
                  "netns", ns_b],
                 ["ip", "-n", ns_a, "addr", "add", "10.77.0.1/24", "dev", va],
                 ["ip", "-n", ns_b, "addr", "add", "10.77.0.2/24", "dev", vb],
                 ["ip", "-n", ns_a, "link", "set", va, "up"],
                 ["ip", "-n", ns_b, "link", "set", vb, "up"],
                 ["ip", "-n", ns_a, "link", "set", "lo", "up"],
                 ["ip", "-n", ns_b, "link", "set", "lo", "up"]]
        for st in steps:
            r = sh(*st)
            if r.returncode != 0:
                raise rc.Skip("cannot build the namespaces (%s: %s)"
                              % (" ".join(st), r.stderr.decode().strip()))
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns_b, rc.ringcastd_path(), "--port", str(tport), "--bind",
             "127.0.0.1", "--io", rc.io_kind(), "--udp-source", "m", "0.0.0.0:%d" % uport,
             "group", group, "iface", vb], stdout=logf, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)

        def log():
            with open(logf.name, "rb") as f:
                return f.read().decode("utf-8", "replace")
        wait_for(lambda: "Ready to accept" in log() or server.poll() is not None,
                 "the server in %s" % ns_b, 10)
        rc.check(server.poll() is None, "server runs in the namespace", None, log())
        rc.check("UDP source 'm' on 0.0.0.0:%d, group %s on %s" % (uport, group, vb) in log(),
                 "joined the group on the veth", None, log())
        sub = subprocess.Popen(["ip", "netns", "exec", ns_b, "/usr/bin/python3", "-c", SUBSCRIBER,
                                str(tport), "mc.test", str(n)], stdout=subprocess.PIPE)
        rc.check_eq(sub.stdout.readline().strip(), b"READY", "subscriber ready")
        r = sh("ip", "netns", "exec", ns_a, "/usr/bin/python3", "-c", SENDER, group, str(uport),
               "10.77.0.1", str(n))
        rc.check_eq(r.returncode, 0, "sender in %s (%r)" % (ns_a, r.stderr))
        out, _ = sub.communicate(timeout=15)
        got = [ln for ln in out.decode("latin-1").split("\r\n") if ln.startswith("tick-")]
        rc.check_eq(got, ["tick-%d" % i for i in range(1, n + 1)],
                    "multicast messages from the other namespace")
    finally:
        if sub and sub.poll() is None:
            sub.kill()
            sub.wait(5)
        if server and server.poll() is None:
            server.terminate()
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
        for ns in (ns_a, ns_b):
            sh("ip", "netns", "del", ns)
        logf.close()
        os.unlink(logf.name)


BACKLOG = 65536  # RC_OWNER_BACKLOG (worker.h)


def test_owner_backlog_drops():
    """With two workers the UDP feed is read on worker 0, and a message on a
    channel worker 1 owns is posted there. A feed faster than the owner can
    handle must not grow the owner's inbox without bound: past BACKLOG posts
    waiting, the reader drops the message, counts it (INFO sources
    backlog_drops, /metrics) and logs it, rate-limited. The owner is made
    slow on purpose: 2,000 pattern subscriptions, which it matches for every
    message it stamps; the reader only hashes and posts. The feed sends 3 x
    BACKLOG messages as fast as a Python loop can."""
    need_ringcastd()
    if rc.workers() != "1":
        raise rc.Skip("starts its own 2-worker server (runs in the 1-worker pass)")
    with rc.Server(["--workers", "2", "--udp-source", "a", "127.0.0.1:0"]) as srv, \
            srv.conn(timeout=30) as c, srv.conn(timeout=30) as psub:
        chan = next(n for n in ("bk.%d" % i for i in range(64))
                    if rc.channel_owner(c, n) == 1)
        npat = 2000
        psub.send(b"".join(rc.encode("PSUBSCRIBE", "zz%d*q*[xy]*" % i) for i in range(npat)))
        for i in range(npat):
            psub.read(timeout=30)
        rc.wait_until(lambda: c.cmd("PUBSUB", "NUMPAT") == npat, 10)
        tx = Sender(udp_addr(c, "a"))
        per, total = 50, 3 * BACKLOG
        payload = b"x" * 16
        body = msg(chan, payload) * per
        head = struct.pack(">BBHI", 1, 0, per, 7)
        for seq in range(1, total + 1, per):
            tx.send(head + struct.pack(">Q", seq) + body)
        tx.close()
        total = len(range(1, total + 1, per)) * per

        def settled():
            st = sources(c)["a"]
            done = int(st["published"]) + int(st["backlog_drops"])
            return done == int(st["messages"]) and st

        st = rc.wait_until(lambda: settled(), 30)
        rc.check(st, "the reader accounted for every message it received",
                 "published + backlog_drops == messages", sources(c)["a"])
        drops, got = int(st["backlog_drops"]), int(st["messages"])
        print("    owner backlog: %d of %d messages received, %d dropped, %d published"
              % (got, total, drops, int(st["published"])))
        rc.check(got > 2 * BACKLOG, "the reader received most of the feed", "> %d" % (2 * BACKLOG),
                 got)
        rc.check(drops > 0, "messages past the owner's backlog were dropped", "> 0", drops)
        # Up to the backlog, less the few other posts (INFO's gathers,
        # subscription counts) that wait in the same inbox.
        rc.check(int(st["published"]) >= BACKLOG - 1024,
                 "messages were queued to the owner up to the backlog", ">= %d" % (BACKLOG - 1024),
                 st["published"])
        log = srv.log()
        lines = log.count("posts waiting")
        rc.check(1 <= lines <= 40, "the drops are logged, at most about once a second",
                 "1..40 lines", lines)
        rc.check("the worker that owns the channel has %d posts waiting" % BACKLOG in log,
                 "the log line says why", got=log[-1500:])
        # The server still answers while the owner works through its backlog.
        rc.check_eq(c.cmd("PING"), "PONG", "PING while the owner catches up")


if __name__ == "__main__":
    rc.run_tests([test_unicast_messages, test_malformed_dropped, test_sequence_gaps_duplicates,
                  test_ab_arbitration, test_bad_udp_config, test_feed_simulator_udp_and_resp,
                  test_multicast_between_namespaces, test_owner_backlog_drops])
