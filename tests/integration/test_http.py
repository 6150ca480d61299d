"""test_http -- the HTTP port: Server-Sent Events, WebSocket, errors, with real clients.

The real ringcastd on 127.0.0.1 with its HTTP port on, and clients nobody
here wrote: `curl -N` for event streams and plain requests, Debian's
python3-websockets for WebSocket, python3-redis (redis-py) for RESP.

  - SSE: subscribe confirmations, message and pmessage events, a payload that
    is not UTF-8 sent as data_b64; keep-alive between plain requests;
  - WebSocket: JSON commands mirror Redis's (replies, errors, pushes);
  - one publish to a channel with RESP, SSE and WebSocket subscribers (two of
    each) reaches all six, encoded exactly once per format (INFO fanout's
    encodes_<format> counters);
  - SSE resume: with a history rule, a reconnect with Last-Event-ID gets
    exactly the missed messages, in order; one too far behind gets "resync";
  - bad input: a malformed upgrade gets 400, a wrong Origin 403, a missing
    password 401, an oversized frame a 1009 close, a malformed request 400, a
    huge head 431 -- and the server goes on serving everyone else;
  - http-idle-timeout: an idle keep-alive connection is closed and a head
    trickled in byte by byte gets 408, while an event stream stays.

SPDX-License-Identifier: BSD-3-Clause
"""

import asyncio
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402

try:
    import redis
    import websockets
except ImportError:  # python3-redis, python3-websockets: scripts/deps.sh
    redis = websockets = None


def need_tools():
    if rc.is_redis():
        raise rc.Skip("the HTTP port is ringcast's own")
    missing = [n for n, ok in (("python3-redis", redis), ("python3-websockets", websockets),
                               ("curl", shutil.which("curl"))) if not ok]
    if missing:
        if os.environ.get("CI"):
            raise rc.Failure("missing under CI: %s (scripts/deps.sh installs them)" % missing)
        raise rc.Skip("needs " + ", ".join(missing))


def server(extra=()):
    hport = rc.free_port()
    srv = rc.Server(flags=["--http-port", str(hport)] + list(extra))
    srv.hport = hport
    return srv


class Stream:
    """`curl -N` on an event stream, read line by line with deadlines."""

    def __init__(self, url, headers=()):
        argv = ["curl", "-s", "-N", "--max-time", "30"]
        for h in headers:
            argv += ["-H", h]
        self.proc = subprocess.Popen(argv + [url], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.buf = b""

    def event(self, timeout=10):
        """The next event as a dict of its fields (id, event, data parsed as JSON)."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise rc.Failure("no event within %.0fs (have %r)" % (timeout, self.buf[-300:]))
            chunk = os.read(fd, 65536)
            if not chunk:
                raise rc.Failure("the event stream ended (have %r)" % self.buf[-300:])
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n\n", 1)
        ev = {}
        for line in raw.decode().split("\n"):
            k, _, v = line.partition(": ")
            ev[k] = json.loads(v) if k == "data" else v
        return ev

    def quiet(self, secs=0.3):
        fd = self.proc.stdout.fileno()
        if b"\n\n" in self.buf or select.select([fd], [], [], secs)[0]:
            return False
        return True

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def curl(url, *args):
    r = subprocess.run(["curl", "-s", "-i", "--max-time", "10"] + list(args) + [url],
                       capture_output=True, timeout=20)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None
    return status, head.decode(errors="replace"), body


def encodes(port):
    with rc.Conn(port) as conn:
        sec = rc.info_sections(conn.cmd("INFO", "fanout"))["fanout"]
    return {k[len("encodes_"):]: int(v) for k, v in sec.items() if k.startswith("encodes_")}


def test_sse_events():
    need_tools()
    with server() as srv:
        base = "http://%s:%d" % (rc.HOST, srv.hport)
        st, head, body = curl(base + "/healthz")
        rc.check_eq((st, body), (200, b"ok\n"), "GET /healthz")
        # Keep-alive: curl reuses the connection for the second request.
        r = subprocess.run(["curl", "-s", "-v", "--max-time", "10", base + "/healthz",
                            base + "/healthz"], capture_output=True, timeout=20)
        rc.check(b"Re-using existing connection" in r.stderr, "HTTP/1.1 keep-alive", None,
                 r.stderr[-500:])
        s = Stream(base + "/events?channel=news&pattern=n%2A")
        try:
            rc.check_eq(s.event(), {"event": "subscribe", "data": {"channel": "news", "count": 1}},
                        "subscribe confirmation")
            rc.check_eq(s.event(), {"event": "psubscribe", "data": {"pattern": "n*", "count": 2}},
                        "psubscribe confirmation")
            c = redis.Redis(host=rc.HOST, port=srv.port, socket_timeout=10)
            rc.check_eq(c.publish("news", 'hi "there"\n'), 2, "receivers: channel and pattern")
            rc.check_eq(s.event(), {"event": "message",
                                    "data": {"channel": "news", "data": 'hi "there"\n'}},
                        "message event (JSON-escaped payload)")
            rc.check_eq(s.event(), {"event": "pmessage", "data": {
                "pattern": "n*", "channel": "news", "data": 'hi "there"\n'}}, "pmessage event")
            c.publish("nb", b"\xff\x00\xfe")
            rc.check_eq(s.event(), {"event": "pmessage", "data": {
                "pattern": "n*", "channel": "nb", "data_b64": "/wD+"}}, "non-UTF-8 payload as base64")
            c.publish("other", "x")
            rc.check(s.quiet(), "nothing for a channel not subscribed", None, s.buf)
            clients = c.execute_command("CLIENT", "LIST").decode()
            rc.check("sub=1 psub=1" in clients, "CLIENT LIST shows the stream's subscriptions",
                     None, clients)
            c.close()
        finally:
            s.close()
        st, _, body = curl(base + "/events")
        rc.check_eq(st, 400, "GET /events without channels")
        st, _, body = curl(base + "/events?channel=" + "x" * 1025)
        rc.check_eq(st, 400, "a channel name longer than max-name-len (1024)")


def ws_run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_websocket_commands():
    need_tools()
    with server() as srv:
        url = "ws://%s:%d/ws" % (rc.HOST, srv.hport)

        async def go():
            async with websockets.connect(url) as a, websockets.connect(url) as b:
                await a.send(json.dumps(["SUBSCRIBE", "q.a", "q.b"]))
                rc.check_eq(json.loads(await a.recv()), ["subscribe", "q.a", 1], "subscribe 1")
                rc.check_eq(json.loads(await a.recv()), ["subscribe", "q.b", 2], "subscribe 2")
                await a.send(json.dumps(["PSUBSCRIBE", "q.*"]))
                rc.check_eq(json.loads(await a.recv()), ["psubscribe", "q.*", 3], "psubscribe")
                await b.send(json.dumps(["PUBLISH", "q.a", "1.5"]))
                rc.check_eq(json.loads(await b.recv()), 2, "PUBLISH reply counts receivers")
                got = sorted([json.loads(await a.recv()), json.loads(await a.recv())])
                rc.check_eq(got, [["message", "q.a", "1.5"], ["pmessage", "q.*", "q.a", "1.5"]],
                            "message and pmessage pushes")
                await b.send(json.dumps(["PING"]))
                rc.check_eq(json.loads(await b.recv()), "PONG", "PING")
                await b.send(json.dumps(["ECHO", "é ✓"]))
                rc.check_eq(json.loads(await b.recv()), "é ✓", "UTF-8 through ECHO")
                await b.send(json.dumps(["NOPE"]))
                rc.check_eq(json.loads(await b.recv()),
                            {"error": "ERR unknown command 'NOPE', with args beginning with: "},
                            "Redis's error text")
                await b.send(json.dumps(["PUBLISH", "q.a"]))
                rc.check_eq(json.loads(await b.recv()),
                            {"error": "ERR wrong number of arguments for 'publish' command"},
                            "arity error")
                await b.send("PUBLISH q.a x")
                r = json.loads(await b.recv())
                rc.check("error" in r and "Protocol error" in r["error"],
                         "text that is not a JSON array", None, r)
                await a.send(json.dumps(["UNSUBSCRIBE"]))
                got = [json.loads(await a.recv()) for _ in range(2)]
                rc.check_eq(sorted(got), [["unsubscribe", "q.a", 2], ["unsubscribe", "q.b", 1]]
                            if got[0][1] == "q.a" else sorted(got), "unsubscribe all")
                await b.send(json.dumps(["QUIT"]))
                rc.check_eq(json.loads(await b.recv()), "OK", "QUIT")
                try:
                    await asyncio.wait_for(b.recv(), 5)
                    raise rc.Failure("no close after QUIT")
                except websockets.ConnectionClosed as e:
                    rc.check_eq(e.code, 1000, "close code after QUIT")
        ws_run(go())


def ws_raw_upgrade(port):
    sk = socket.create_connection((rc.HOST, port), timeout=10)
    sk.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sk.recv(4096)
        rc.check(chunk, "upgrade response", None, head)
        head += chunk
    rc.check(head.startswith(b"HTTP/1.1 101 "), "101 Switching Protocols", None, head)
    # RFC 6455's own example key and accept value.
    rc.check(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, "accept key", None,
             head)
    return sk, head.split(b"\r\n\r\n", 1)[1]


def test_websocket_frames():
    need_tools()
    with server() as srv:
        url = "ws://%s:%d/ws" % (rc.HOST, srv.hport)

        async def go():
            async with websockets.connect(url) as w:
                # A message in three fragments, reassembled into one command.
                await w.send(iter(['["ECH', 'O","frag', 'mented"]']))
                rc.check_eq(json.loads(await w.recv()), "fragmented", "fragmented message")
                pong = await w.ping(b"abc")
                await asyncio.wait_for(pong, 10)  # the server's pong echoes our payload
                await w.send(b"\x00\x01")
                try:
                    await asyncio.wait_for(w.recv(), 10)
                    raise rc.Failure("a binary message got a reply")
                except websockets.ConnectionClosed as e:
                    rc.check_eq(e.code, 1003, "close code for a binary message")
        ws_run(go())
        # A client frame without a mask breaks RFC 6455: close 1002.
        sk, rest = ws_raw_upgrade(srv.hport)
        with sk:
            sk.sendall(b"\x81\x06[\"PING\"]")
            data = rest
            while len(data) < 4:
                chunk = sk.recv(4096)
                if not chunk:
                    break
                data += chunk
            rc.check(data[:1] == b"\x88" and data[2:4] == b"\x03\xea", "close 1002 for an unmasked frame",
                     None, data[:20])


def test_one_encoding_per_format():
    need_tools()
    with server() as srv:
        base = "http://%s:%d" % (rc.HOST, srv.hport)
        url = "ws://%s:%d/ws" % (rc.HOST, srv.hport)
        ctl = redis.Redis(host=rc.HOST, port=srv.port, socket_timeout=10)
        resp = []
        for _ in range(2):
            ps = redis.Redis(host=rc.HOST, port=srv.port, socket_timeout=10).pubsub()
            ps.subscribe("mix")
            rc.check_eq(ps.get_message(timeout=10)["type"], "subscribe", "RESP subscribe")
            resp.append(ps)
        sse = [Stream(base + "/events?channel=mix") for _ in range(2)]
        try:
            for s in sse:
                rc.check_eq(s.event()["event"], "subscribe", "SSE subscribe")

            async def go():
                async with websockets.connect(url) as w1, websockets.connect(url) as w2:
                    for w in (w1, w2):
                        await w.send(json.dumps(["SUBSCRIBE", "mix"]))
                        rc.check_eq(json.loads(await w.recv()), ["subscribe", "mix", 1],
                                    "WS subscribe")
                    before = encodes(srv.port)
                    rc.check_eq(ctl.publish("mix", "one payload"), 6, "six receivers")
                    after = encodes(srv.port)
                    for w in (w1, w2):
                        rc.check_eq(json.loads(await w.recv()), ["message", "mix", "one payload"],
                                    "WS subscriber receives")
                    return before, after
            before, after = ws_run(go())
            for ps in resp:
                m = ps.get_message(timeout=10)
                rc.check_eq((m["type"], m["data"]), ("message", b"one payload"), "RESP receives")
            for s in sse:
                rc.check_eq(s.event()["data"], {"channel": "mix", "data": "one payload"},
                            "SSE receives")
            diff = {k: after[k] - before[k] for k in after}
            nw = rc.server_workers(srv.port)
            if nw == 1:
                rc.check_eq(diff, {"resp2": 1, "resp3": 0, "sse": 1, "ws": 1},
                            "encoded once per format present (two subscribers each)")
            else:
                # Once per format on each worker holding some of its subscribers.
                rc.check(all(1 <= diff[f] <= nw for f in ("resp2", "sse", "ws"))
                         and diff["resp3"] == 0,
                         "encoded once per format present on each worker", got=diff)
        finally:
            for s in sse:
                s.close()
            for ps in resp:
                ps.close()
            ctl.close()


def test_sse_resume():
    need_tools()
    with server(["--mdata-rule", "hist.* history=5"]) as srv:
        base = "http://%s:%d/events?channel=hist.a" % (rc.HOST, srv.hport)
        c = redis.Redis(host=rc.HOST, port=srv.port, socket_timeout=10)
        s = Stream(base)
        try:
            rc.check_eq(s.event()["event"], "subscribe", "subscribed")
            for i in range(3):
                c.publish("hist.a", "m%d" % i)
            evs = [s.event() for _ in range(3)]
            rc.check_eq([e["data"]["data"] for e in evs], ["m0", "m1", "m2"], "live events")
            ids = [e["id"] for e in evs]
            epoch = ids[0].split("-")[0]
            rc.check_eq(ids, ["%s-%d" % (epoch, n) for n in (1, 2, 3)], "ids are epoch-seq")
        finally:
            s.close()
        # Missed while away: m3, m4.
        for i in (3, 4):
            c.publish("hist.a", "m%d" % i)
        s = Stream(base, ["Last-Event-ID: " + ids[-1]])
        try:
            rc.check_eq(s.event()["event"], "subscribe", "subscribed again")
            got = [s.event() for _ in range(2)]
            rc.check_eq([(e["id"], e["data"]["data"]) for e in got],
                        [("%s-4" % epoch, "m3"), ("%s-5" % epoch, "m4")],
                        "exactly the missed messages")
            rc.check(s.quiet(), "nothing more (no duplicate)", None, s.buf)
            c.publish("hist.a", "m5")
            rc.check_eq(s.event()["data"]["data"], "m5", "live again after the replay")
        finally:
            s.close()
        # Too far behind: the history holds 5; resuming from seq 0 of 6 cannot be exact.
        s = Stream(base, ["Last-Event-ID: %s-0" % epoch])
        try:
            rc.check_eq(s.event()["event"], "subscribe", "subscribed")
            e = s.event()
            rc.check_eq((e["event"], e["data"]["channel"], e["data"]["seq"]), ("resync", "hist.a", 6),
                        "resync event when the history does not reach back")
        finally:
            s.close()
        c.close()


def test_bad_input():
    need_tools()
    with server(["--requirepass", "s3cret", "--ws-max-frame", "4kb"]) as srv:
        base = "http://%s:%d" % (rc.HOST, srv.hport)
        url = "ws://%s:%d/ws" % (rc.HOST, srv.hport)
        keep = Stream(base + "/events?channel=keep&auth=s3cret")
        try:
            rc.check_eq(keep.event()["event"], "subscribe", "a healthy subscriber")
            st, head, _ = curl(base + "/ws", "-H", "Authorization: Bearer s3cret")
            rc.check_eq(st, 400, "GET /ws without an upgrade")
            st, head, _ = curl(base + "/ws?auth=s3cret", "-H", "Upgrade: websocket", "-H",
                               "Connection: Upgrade", "-H", "Sec-WebSocket-Version: 13", "-H",
                               "Sec-WebSocket-Key: not-base64")
            rc.check_eq(st, 400, "malformed Sec-WebSocket-Key")
            st, head, _ = curl(base + "/events?channel=x")
            rc.check_eq(st, 401, "event stream without the password")
            rc.check("WWW-Authenticate: Bearer" in head, "401 names the scheme", None, head)
            st, _, _ = curl(base + "/events?channel=x&auth=wrong", "--max-time", "2")
            rc.check_eq(st, 401, "wrong password")
            st, _, _ = curl(base + "/nope", "-X", "POST")
            rc.check_eq(st, 405, "POST")
            st, _, _ = curl(base + "/x", "-H", "X-Big: " + "a" * 20000)
            rc.check_eq(st, 431, "head larger than http-max-request")
            with socket.create_connection((rc.HOST, srv.hport), timeout=10) as sk:
                sk.sendall(b"GARBAGE\r\n\r\n")
                rc.check(sk.recv(100).startswith(b"HTTP/1.1 400"), "malformed request line",
                         None, None)

            async def go():
                try:
                    async with websockets.connect(url):
                        raise rc.Failure("WebSocket without the password was accepted")
                except websockets.InvalidStatusCode as e:
                    rc.check_eq(e.status_code, 401, "WebSocket without the password")
                try:
                    async with websockets.connect(url + "?auth=s3cret",
                                                  origin="http://evil.example"):
                        raise rc.Failure("a foreign Origin was accepted")
                except websockets.InvalidStatusCode as e:
                    rc.check_eq(e.status_code, 403, "WebSocket from a foreign Origin")
                hdr = {"Authorization": "Bearer s3cret"}
                async with websockets.connect(url, extra_headers=hdr,
                                              origin="http://%s:%d" % (rc.HOST, srv.hport)) as w:
                    await w.send(json.dumps(["PING"]))
                    rc.check_eq(json.loads(await w.recv()), "PONG", "same-origin WebSocket")
                    await w.send(json.dumps(["PUBLISH", "keep", "x" * 8000]))
                    try:
                        await asyncio.wait_for(w.recv(), 10)
                        raise rc.Failure("an oversized message got a reply")
                    except websockets.ConnectionClosed as e:
                        rc.check_eq(e.code, 1009, "close code for a message over ws-max-frame")
            ws_run(go())
            c = redis.Redis(host=rc.HOST, port=srv.port, password="s3cret", socket_timeout=10)
            rc.check_eq(c.publish("keep", "still here"), 1, "the healthy subscriber is counted")
            rc.check_eq(keep.event()["data"]["data"], "still here", "and still receives")
            c.close()
        finally:
            keep.close()
        rc.check(srv.proc.poll() is None, "the server is still running", None, None)


def test_idle_timeout():
    """http-idle-timeout: idle keep-alive and trickled heads go, streams stay."""
    need_tools()
    with server(["--http-idle-timeout", "1"]) as srv:
        base = "http://%s:%d" % (rc.HOST, srv.hport)
        s = Stream(base + "/events?channel=stay")
        idle = socket.create_connection((rc.HOST, srv.hport), timeout=10)
        slow = socket.create_connection((rc.HOST, srv.hport), timeout=10)
        try:
            rc.check_eq(s.event()["event"], "subscribe", "an event stream")
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            rc.check(idle.recv(4096).startswith(b"HTTP/1.1 200"), "a keep-alive request", None,
                     None)
            # A head trickled in a byte every 0.2 s: activity does not renew the clock.
            slow.sendall(b"GET /healthz HTTP/1.1\r\n")
            slow.setblocking(False)
            got, deadline = b"", time.monotonic() + 8
            while time.monotonic() < deadline and b"\r\n\r\n" not in got:
                try:
                    slow.send(b"X")
                except OSError:
                    pass
                time.sleep(0.2)
                try:
                    got += slow.recv(4096)
                except BlockingIOError:
                    pass
            rc.check(got.startswith(b"HTTP/1.1 408"), "408 for a head that never completes",
                     None, got[:80])
            idle.settimeout(8)
            rc.check_eq(idle.recv(4096), b"", "the idle keep-alive connection is closed")
            c = redis.Redis(host=rc.HOST, port=srv.port, socket_timeout=10)
            rc.check_eq(c.publish("stay", "still"), 1, "the event stream outlived the timeout")
            rc.check_eq(s.event()["data"]["data"], "still", "and still receives")
            c.close()
        finally:
            s.close()
            idle.close()
            slow.close()


if __name__ == "__main__":
    rc.run_tests([test_sse_events, test_websocket_commands, test_websocket_frames,
                  test_one_encoding_per_format,
                  test_sse_resume, test_bad_input, test_idle_timeout])
