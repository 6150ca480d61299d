"""test_fanout -- many subscribers, several publishers: every message exactly once, in order.

200 subscriber connections over 20 channels (`ch.0`..`ch.19`); a third of
them subscribe by pattern (`ch.1*`, `ch.?`, `ch.[0-4]`, `ch.1[5-9]`), some
of those also by channel, so they receive a channel message twice. Four
publishers send 10,000 messages in total (payload `pubid:seq`, channel a
deterministic function of both), pipelined 100 at a time. The expected
receivers of each channel are computed here (fnmatch for these simple
patterns); the test asserts that every PUBLISH reply equals that count and
that each subscription sees, per publisher, exactly the expected sequence
numbers in order: none missing, duplicated, reordered or misrouted. All
sockets are non-blocking under one selector loop, bounded by a 60 s deadline.

SPDX-License-Identifier: BSD-3-Clause
"""

import fnmatch
import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402

NSUBS = 200
NCHAN = 20
NPUB = 4
NMSG = 10000
BATCH = 100
DEADLINE = 60.0
PATTERNS = ["ch.1*", "ch.?", "ch.[0-4]", "ch.1[5-9]"]
CHANNELS = ["ch.%d" % i for i in range(NCHAN)]


def channel_of(pub, seq):
    return (seq * 7 + pub * 5 + seq // 13) % NCHAN


def plan():
    """Subscriptions per subscriber: list of (kind, name) with kind 'c' or 'p'."""
    subs = []
    for i in range(NSUBS):
        if i % 3 == 0:
            s = [("p", PATTERNS[(i // 3) % len(PATTERNS)])]
            if i % 6 == 0:
                # also a channel the pattern matches: that channel arrives twice
                ch = [c for c in CHANNELS if fnmatch.fnmatchcase(c, s[0][1])]
                s.append(("c", ch[i % len(ch)]))
        else:
            s = [("c", CHANNELS[i % NCHAN])]
            if i % 2 == 0:
                other = CHANNELS[(i * 7 + 3) % NCHAN]
                if other != s[0][1]:
                    s.append(("c", other))
        subs.append(s)
    return subs


def split_frames(buf, pos):
    """Parses complete RESP2 arrays of bulk strings / integers from buf[pos:].
    Returns (frames, newpos); a frame is a list of bytes/int."""
    frames = []
    n = len(buf)
    while pos < n:
        if buf[pos] != 42:  # '*'
            raise rc.Failure("expected an array, got %r" % buf[pos:pos + 60])
        e = buf.find(b"\r\n", pos)
        if e < 0:
            break
        cnt = int(buf[pos + 1:e])
        p = e + 2
        items = []
        ok = True
        for _ in range(cnt):
            if p >= n:
                ok = False
                break
            e = buf.find(b"\r\n", p)
            if e < 0:
                ok = False
                break
            t = buf[p]
            if t == 36:  # '$'
                ln = int(buf[p + 1:e])
                if e + 2 + ln + 2 > n:
                    ok = False
                    break
                items.append(buf[e + 2:e + 2 + ln])
                p = e + 2 + ln + 2
            elif t == 58:  # ':'
                items.append(int(buf[p + 1:e]))
                p = e + 2
            else:
                raise rc.Failure("unexpected RESP type in %r" % buf[p:p + 60])
        if not ok:
            break
        frames.append(items)
        pos = p
    return frames, pos


def parse_ints(buf, pos):
    """Parses ':N\\r\\n' replies. Returns (ints, newpos)."""
    out = []
    n = len(buf)
    while pos < n:
        e = buf.find(b"\r\n", pos)
        if e < 0:
            break
        if buf[pos] != 58:
            raise rc.Failure("publisher expected an integer reply, got %r" % buf[pos:e + 2])
        out.append(int(buf[pos + 1:e]))
        pos = e + 2
    return out, pos


class Sub:
    def __init__(self, idx, subs, port):
        self.idx = idx
        self.subs = subs
        self.sock = socket.create_connection((rc.HOST, port), timeout=rc.SOCK_TIMEOUT)
        self.buf = b""
        self.confirmed = 0
        self.got = {}   # (kind, name) -> [list of seq per publisher]
        self.count = 0
        self.errors = []
        for s in subs:
            self.got[s] = [[] for _ in range(NPUB)]

    def feed(self, data):
        self.buf += data
        frames, pos = split_frames(self.buf, 0)
        self.buf = self.buf[pos:]
        for f in frames:
            kind = f[0]
            if kind == b"message":
                key = ("c", f[1].decode())
                chan, payload = f[1], f[2]
            elif kind == b"pmessage":
                key = ("p", f[1].decode())
                chan, payload = f[2], f[3]
            elif kind in (b"subscribe", b"psubscribe"):
                self.confirmed += 1
                continue
            else:
                self.errors.append("unexpected frame %r" % f[:4])
                continue
            lst = self.got.get(key)
            try:
                pub, seq = (int(x) for x in payload.split(b":"))
            except ValueError:
                self.errors.append("bad payload %r" % payload)
                continue
            if lst is None or not 0 <= pub < NPUB:
                self.errors.append("message for %r not subscribed (payload %r)" % (key, payload))
                continue
            if chan != CHANNELS[channel_of(pub, seq)].encode():
                self.errors.append("payload %r arrived on %r, published on %s"
                                   % (payload, chan, CHANNELS[channel_of(pub, seq)]))
            lst[pub].append(seq)
            self.count += 1


def run_fanout(server):
    multi = not rc.is_redis() and rc.server_workers(server.port) > 1
    subs_plan = plan()
    npat = sum(1 for s in subs_plan if s[0][0] == "p")
    rc.check(npat * 3 >= NSUBS, "at least a third pattern subscribers (%d)" % npat)
    # expected receivers per channel and expected sequences per (sub, key, pub)
    receivers = [0] * NCHAN
    for s in subs_plan:
        for kind, name in s:
            for ci, c in enumerate(CHANNELS):
                if (kind == "c" and c == name) or (kind == "p" and fnmatch.fnmatchcase(c, name)):
                    receivers[ci] += 1
    per_pub = NMSG // NPUB
    sel = selectors.DefaultSelector()
    subs, pubs = [], []
    try:
        for i, plan_i in enumerate(subs_plan):
            sub = Sub(i, plan_i, server.port)
            subs.append(sub)
            req = b""
            for kind, name in plan_i:
                req += rc.encode("SUBSCRIBE" if kind == "c" else "PSUBSCRIBE", name)
            sub.sock.sendall(req)
            sub.sock.setblocking(False)
            sel.register(sub.sock, selectors.EVENT_READ, sub)
        deadline = time.monotonic() + DEADLINE
        want_conf = sum(len(s) for s in subs_plan)

        def pump(timeout):
            for key, _ in sel.select(timeout):
                obj = key.data
                try:
                    data = key.fileobj.recv(262144)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    raise rc.Failure("connection error: %s" % e)
                if not data:
                    raise rc.Failure("server closed a %s connection unexpectedly (log: %s)"
                                     % ("subscriber" if isinstance(obj, Sub) else "publisher",
                                        server.log()[-1500:]))
                obj.feed(data)

        while sum(s.confirmed for s in subs) < want_conf:
            if time.monotonic() > deadline:
                raise rc.Failure("only %d of %d subscription confirmations arrived"
                                 % (sum(s.confirmed for s in subs), want_conf))
            pump(0.5)

        class Pub:
            def __init__(self, pid):
                self.pid = pid
                self.sock = socket.create_connection((rc.HOST, server.port),
                                                     timeout=rc.SOCK_TIMEOUT)
                self.next = 0
                self.pending = []     # expected counts of outstanding replies
                self.buf = b""
                self.replies = 0
                self.bad = []

            def send_batch(self):
                n = min(BATCH, per_pub - self.next)
                req = []
                for seq in range(self.next, self.next + n):
                    ci = channel_of(self.pid, seq)
                    req.append(rc.encode("PUBLISH", CHANNELS[ci], "%d:%d" % (self.pid, seq)))
                    self.pending.append((seq, receivers[ci]))
                self.next += n
                self.sock.settimeout(rc.SOCK_TIMEOUT)
                self.sock.sendall(b"".join(req))
                self.sock.setblocking(False)

            def feed(self, data):
                self.buf += data
                vals, pos = parse_ints(self.buf, 0)
                self.buf = self.buf[pos:]
                for v in vals:
                    if not self.pending:
                        raise rc.Failure("publisher %d: reply %d without a request"
                                         % (self.pid, v))
                    seq, want = self.pending.pop(0)
                    if v != want and len(self.bad) < 5:
                        self.bad.append("seq %d on %s: PUBLISH replied %d, expected %d"
                                        % (seq, CHANNELS[channel_of(self.pid, seq)], v, want))
                    self.replies += 1
                if not self.pending and self.next < per_pub:
                    self.send_batch()

        for p in range(NPUB):
            pub = Pub(p)
            pubs.append(pub)
            pub.sock.setblocking(False)
            sel.register(pub.sock, selectors.EVENT_READ, pub)
        for pub in pubs:
            pub.send_batch()
        total_expected = 0
        for p in range(NPUB):
            for seq in range(per_pub):
                total_expected += receivers[channel_of(p, seq)]
        t0 = time.monotonic()
        while True:
            got = sum(s.count for s in subs)
            if all(p.replies == per_pub for p in pubs) and got >= total_expected:
                break
            if time.monotonic() > deadline:
                raise rc.Failure("deadline: publishers got %s of %d replies each; subscribers "
                                 "got %d of %d deliveries"
                                 % ([p.replies for p in pubs], per_pub, got, total_expected))
            pump(0.5)
        took = time.monotonic() - t0
        # anything extra (duplicates) shows up within a short drain
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            pump(0.05)
        errors = []
        for p in pubs:
            errors += ["publisher %d: %s" % (p.pid, b) for b in p.bad]
        for sub in subs:
            errors += ["subscriber %d: %s" % (sub.idx, e) for e in sub.errors[:3]]
            for (kind, name), lists in sub.got.items():
                for p in range(NPUB):
                    want = [seq for seq in range(per_pub) if
                            (kind == "c" and CHANNELS[channel_of(p, seq)] == name) or
                            (kind == "p" and fnmatch.fnmatchcase(CHANNELS[channel_of(p, seq)],
                                                                 name))]
                    got = lists[p]
                    if got != want and multi and kind == "p" and sorted(got) == want:
                        # Workers keep each channel's order, not one order
                        # across the channels a pattern matches.
                        chans = {CHANNELS[channel_of(p, q)] for q in want}
                        if all([q for q in got if CHANNELS[channel_of(p, q)] == ch] ==
                               [q for q in want if CHANNELS[channel_of(p, q)] == ch]
                               for ch in chans):
                            continue
                    if got != want:
                        ws, gs = set(want), set(got)
                        errors.append(
                            "subscriber %d %s %s from publisher %d: expected %d messages, got "
                            "%d (missing %s, unexpected %s, duplicates %d, in order: %s)"
                            % (sub.idx, "channel" if kind == "c" else "pattern", name, p,
                               len(want), len(got), sorted(ws - gs)[:5], sorted(gs - ws)[:5],
                               len(got) - len(gs), got == sorted(got)))
        if errors:
            raise rc.Failure("%d problems; first ones:\n  %s"
                             % (len(errors), "\n  ".join(errors[:15])))
        print("    %d messages, %d deliveries in %.2fs (%.0f deliveries/s)"
              % (NMSG, total_expected, took, total_expected / max(took, 1e-6)), flush=True)
        return total_expected
    finally:
        sel.close()
        for s in subs:
            s.sock.close()
        for p in pubs:
            p.sock.close()


def fanout_counters(port):
    with rc.Conn(port) as c:
        info = c.cmd("INFO", "fanout")
    sec = rc.info_sections(info).get("fanout")
    rc.check(sec is not None, "INFO fanout has no fanout section: %r" % info[:300])
    return int(sec["messages_published"]), int(sec["deliveries"]), sec


def test_fanout():
    with rc.Server() as s:
        before = None if rc.is_redis() else fanout_counters(s.port)
        total = run_fanout(s)
        rc.check(s.alive(), "server died during the fan-out test:\n%s" % s.log()[-2000:])
        if before is not None:
            deadline = time.monotonic() + 3
            after = fanout_counters(s.port)
            while after[1] - before[1] < total and time.monotonic() < deadline:
                time.sleep(0.05)
                after = fanout_counters(s.port)
            rc.check_eq(after[0] - before[0], NMSG, "INFO fanout messages_published delta")
            rc.check_eq(after[1] - before[1], total, "INFO fanout deliveries delta")
            print("    INFO fanout: %s" % " ".join("%s=%s" % kv for kv in sorted(after[2].items())),
                  flush=True)


if __name__ == "__main__":
    rc.run_tests([test_fanout])
