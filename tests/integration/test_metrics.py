"""test_metrics -- GET /metrics on the real ringcastd, read with curl and checked with promtool.

A real server with its HTTP port on; real clients make real traffic:
redis-py subscribers and a publisher, a `curl -N` Server-Sent Events
subscriber, UDP datagrams with a sequence gap and a duplicate, and a RESP
subscriber that never reads until the output limit drops it. Every value is
read back with `curl -s` and checked exactly where the traffic fixes it:

  - 200 with Content-Type `text/plain; version=0.0.4; charset=utf-8`;
  - messages published and deliveries move by exactly what was published
    (patterns count once more, as in Redis); bytes out cover what the
    subscribers read; syscalls_per_delivery is syscalls_total / deliveries;
  - connected clients by transport: the redis-py connections as "resp", the
    curl stream as "sse" while it runs and not after it ends; one publish
    to them all is encoded once per wire format (encodes_total by format);
  - the UDP source's gaps (a gauge: a late message fills one), reordered
    messages and duplicates, by source label;
  - the output-limit disconnect is counted;
  - `promtool check metrics` (Debian's prometheus package) finds nothing;
  - with requirepass, 401 without the password, 200 with it (Bearer or ?auth=).

Runs once, on the uring pass of the suite (skipped, exit 77, for epoll and
naive: the page is the same on every backend). Without curl or promtool it
skips, except under CI=true, where scripts/deps.sh --all installs them.

SPDX-License-Identifier: BSD-3-Clause
"""

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def need(tool):
    path = shutil.which(tool)
    if path:
        return path
    if os.environ.get("CI") == "true":
        raise rc.Failure("%s is missing (CI installs it: scripts/deps.sh --all)" % tool)
    raise rc.Skip("%s is not installed (scripts/deps.sh --all)" % tool)


def need_setup():
    if rc.is_redis():
        raise rc.Skip("/metrics is ringcast's own")
    if rc.io_kind() != "uring":
        raise rc.Skip("runs once, on the uring pass (the page is the same on every backend)")
    need("curl")
    need("promtool")


def scrape(port):
    """(headers, body) of GET /metrics, fetched with curl."""
    r = subprocess.run(["curl", "-s", "-S", "--max-time", "5", "-D", "-",
                        "http://127.0.0.1:%d/metrics" % port], capture_output=True, timeout=10)
    rc.check_eq(r.returncode, 0, "curl exit code (stderr %r)" % r.stderr)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {"status": lines[0]}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return headers, body.decode("utf-8")


def samples(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        rc.check(m, "a well-formed sample line", got=line)
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def metrics(port):
    return samples(scrape(port)[1])


def syscalls(m):
    return sum(v for k, v in m.items() if k.startswith("ringcast_syscalls_total{"))


def clients(m, transport):
    return m.get('ringcast_connected_clients{transport="%s"}' % transport)


def wait_metric(port, key, want, timeout=5.0):
    """Scrapes until sample key equals want (bounded); the last scrape."""
    last = {}

    def ok():
        last.clear()
        last.update(metrics(port))
        return last.get(key) == want

    rc.wait_until(ok, timeout, step=0.1)
    rc.check_eq(last.get(key), want, key)
    return dict(last)


def dgram(session, seq, msgs):
    """A UDP feed datagram (docs/udp.md): header, then (channel, payload) messages."""
    out = struct.pack(">BBHIQ", 1, 0, len(msgs), session, seq)
    for chan, payload in msgs:
        out += struct.pack(">H", len(chan)) + chan + struct.pack(">I", len(payload)) + payload
    return out


def udp_port(conn, name):
    info = rc.info_sections(conn.cmd("INFO", "sources"))["sources"]
    for v in info.values():
        fields = dict(kv.split("=", 1) for kv in v.split(",")) if "=" in v else {}
        if fields.get("name") == name:
            return int(fields["addr"].rsplit(":", 1)[1])
    raise rc.Failure("no UDP source %s in INFO sources" % name)


def test_content_type_and_promtool():
    need_setup()
    port = rc.free_port()
    with rc.Server(["--http-port", str(port)]) as srv:
        headers, body = scrape(port)
        rc.check(headers["status"].startswith("HTTP/1.1 200"), "status", "200", headers["status"])
        rc.check_eq(headers.get("content-type"), CONTENT_TYPE, "Content-Type")
        m = samples(body)
        with srv.conn() as c:
            info = rc.info_sections(c.cmd("INFO", "server"))["server"]
        key = 'ringcast_info{version="%s",io_backend="%s"}' % (info["ringcast_version"],
                                                               info["io_backend"])
        rc.check_eq(m.get(key), 1.0, key)
        r = subprocess.run(["promtool", "check", "metrics"], input=body.encode(),
                           capture_output=True, timeout=30)
        rc.check_eq((r.returncode, r.stdout + r.stderr), (0, b""), "promtool check metrics")


def test_password_required():
    """With requirepass, /metrics needs it: 401 without, 200 with Bearer or ?auth=."""
    need_setup()
    port = rc.free_port()
    with rc.Server(["--http-port", str(port), "--requirepass", "s3cret"]):
        url = "http://127.0.0.1:%d/metrics" % port

        def status(*args):
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                "--max-time", "5"] + list(args), capture_output=True, timeout=10)
            return r.stdout.decode()

        rc.check_eq(status(url), "401", "no password")
        rc.check_eq(status("-H", "Authorization: Bearer wrong", url), "401", "wrong password")
        rc.check_eq(status("-H", "Authorization: Bearer s3cret", url), "200", "Bearer password")
        rc.check_eq(status(url + "?auth=s3cret"), "200", "?auth= password")
        # The dashboard page itself holds no data and needs none.
        rc.check_eq(status("http://127.0.0.1:%d/" % port), "200", "the page")


def test_counters_follow_real_traffic():
    need_setup()
    import redis

    port = rc.free_port()
    flags = ["--http-port", str(port), "--udp-source", "feed", "127.0.0.1:0",
             "--client-output-buffer-limit", "pubsub 256kb 0 0", "--so-sndbuf", "65536"]
    with rc.Server(flags) as srv:
        r = redis.Redis(host=rc.HOST, port=srv.port, socket_timeout=5)
        p1 = r.pubsub()
        p1.subscribe("quotes.A")
        p2 = r.pubsub()
        p2.psubscribe("quotes.*")
        for p in (p1, p2):
            msg = p.get_message(timeout=5)
            rc.check(msg and msg["type"] in ("subscribe", "psubscribe"), "confirmation", got=msg)
        r.ping()
        # Three redis-py connections (publisher, two pubsub); the readiness
        # probe of the harness closes on its own.
        before = wait_metric(port, 'ringcast_connected_clients{transport="resp"}', 3.0)
        rc.check_eq(clients(before, "sse"), 0.0, "no SSE client yet")

        n, payload = 25, b"x" * 100
        for i in range(n):
            rc.check_eq(r.publish("quotes.A", payload), 2, "PUBLISH receivers")
        got = 0
        deadline = time.monotonic() + 10
        while got < 2 * n and time.monotonic() < deadline:
            for p in (p1, p2):
                msg = p.get_message(timeout=0.1)
                if msg and msg["type"] in ("message", "pmessage"):
                    rc.check_eq(msg["data"], payload, "payload")
                    got += 1
        rc.check_eq(got, 2 * n, "messages the subscribers read")
        after = metrics(port)
        d = lambda k: after[k] - before[k]  # noqa: E731
        rc.check_eq(d("ringcast_messages_published_total"), float(n), "published delta")
        rc.check_eq(d("ringcast_deliveries_total"), 2.0 * n, "deliveries delta")
        rc.check(d("ringcast_net_output_bytes_total") >= 2 * n * len(payload),
                 "bytes out cover the payloads read", ">= %d" % (2 * n * len(payload)),
                 d("ringcast_net_output_bytes_total"))
        rc.check(d("ringcast_net_input_bytes_total") >= n * len(payload),
                 "bytes in cover the PUBLISHes", ">= %d" % (n * len(payload)),
                 d("ringcast_net_input_bytes_total"))
        ratio = syscalls(after) / after["ringcast_deliveries_total"]
        rc.check(abs(after["ringcast_syscalls_per_delivery"] - ratio) <= 1e-6 * ratio,
                 "syscalls_per_delivery = syscalls / deliveries", ratio,
                 after["ringcast_syscalls_per_delivery"])
        rc.check(syscalls(after) > syscalls(before), "syscalls counted")
        rc.check_eq(after["ringcast_channels"], 1.0, "channels")
        rc.check_eq(after["ringcast_patterns"], 1.0, "patterns")

        # An SSE subscriber (curl -N): counted as "sse" while it streams.
        sse = subprocess.Popen(["curl", "-s", "-N", "--max-time", "30",
                                "http://127.0.0.1:%d/events?channel=quotes.A" % port],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            m0 = wait_metric(port, 'ringcast_connected_clients{transport="sse"}', 1.0)
            rc.check_eq(r.publish("quotes.A", b"to-sse"), 3, "PUBLISH reaches the SSE client")
            m1 = metrics(port)
            # Encoded once per format present: an SSE event, and two RESP2
            # frames (the channel's message and the pattern's pmessage).
            enc = lambda f: m1['ringcast_encodes_total{format="%s"}' % f] - \
                m0['ringcast_encodes_total{format="%s"}' % f]  # noqa: E731
            rc.check_eq([enc("resp2"), enc("resp3"), enc("sse"), enc("ws")], [2.0, 0.0, 1.0, 0.0],
                        "encodes by format for one publish")
        finally:
            sse.terminate()
            sse.wait(5)
        wait_metric(port, 'ringcast_connected_clients{transport="sse"}', 0.0)

        # UDP: seq 1, 2, then 5 (3 and 4 missing), then 2 again (a duplicate);
        # then 3 arrives late and fills one gap (gaps is a gauge: it falls).
        c = srv.conn()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            dst = (rc.HOST, udp_port(c, "feed"))
            for seq in (1, 2, 5, 2):
                u.sendto(dgram(77, seq, [(b"quotes.U", b"u%d" % seq)]), dst)
            m = wait_metric(port, 'ringcast_udp_datagrams_total{source="feed"}', 4.0)
            rc.check_eq(m.get('ringcast_udp_gaps{source="feed"}'), 2.0, "UDP gaps")
            rc.check_eq(m.get('ringcast_udp_duplicates_total{source="feed"}'), 1.0,
                        "UDP duplicates")
            rc.check_eq(m.get('ringcast_udp_published_total{source="feed"}'), 3.0,
                        "UDP published")
            u.sendto(dgram(77, 3, [(b"quotes.U", b"u3")]), dst)
        finally:
            u.close()
        m = wait_metric(port, 'ringcast_udp_datagrams_total{source="feed"}', 5.0)
        rc.check_eq(m.get('ringcast_udp_gaps{source="feed"}'), 1.0, "UDP gaps after a late one")
        rc.check_eq(m.get('ringcast_udp_reordered_total{source="feed"}'), 1.0, "UDP reordered")
        rc.check_eq(m.get('ringcast_udp_published_total{source="feed"}'), 4.0, "UDP published")

        # A subscriber that never reads: dropped by the output limit, and counted.
        rc.check_eq(m["ringcast_output_limit_disconnects_total"], 0.0, "no disconnect yet")
        stalled = socket.create_connection((rc.HOST, srv.port), timeout=5)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(rc.encode("SUBSCRIBE", "bulk"))
        try:
            rc.check(rc.wait_until(lambda: r.pubsub_numsub("bulk") == [(b"bulk", 1)], 5),
                     "the stalled client subscribed")
            big = b"b" * 65536
            deadline = time.monotonic() + 20
            for _ in range(400):
                if r.publish("bulk", big) == 0 or time.monotonic() > deadline:
                    break  # the stalled client is gone
            m = wait_metric(port, "ringcast_output_limit_disconnects_total", 1.0)
        finally:
            stalled.close()

        # The final scrape, with every labelled family populated, passes promtool.
        _, body = scrape(port)
        res = subprocess.run(["promtool", "check", "metrics"], input=body.encode(),
                             capture_output=True, timeout=30)
        rc.check_eq((res.returncode, res.stdout + res.stderr), (0, b""),
                    "promtool check metrics")
        for p in (p1, p2):
            p.close()
        r.close()
        c.close()


if __name__ == "__main__":
    rc.run_tests([test_content_type_and_promtool, test_password_required,
                  test_counters_follow_real_traffic])
