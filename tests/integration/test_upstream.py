"""test_upstream -- ringcastd edges in front of a real NATS cluster (docs/cluster.md).

Every NATS server here is a real nats-server process this test starts, on
free 127.0.0.1 ports, configured by flags (clustered with routes when there
are several); edges are ringcastd with `--upstream`; clients are redis-py.
What the NATS servers see is read from their monitoring endpoint (/connz with
subs=1: the subjects the edge's connection holds).

  - names:    a name NATS cannot carry fails SUBSCRIBE / PSUBSCRIBE / PUBLISH
              with an error, shard channels stay local, bad `upstream` values
              stop the server with a message (or, in a build without libnats,
              any `upstream` does);
  - down at start: the edge serves locally while NATS is absent, says so in
              INFO, connects when NATS appears, and sends the interest it
              gathered meanwhile;
  - interest: the first local subscriber subscribes upstream, the last one
              leaving (UNSUBSCRIBE or disconnect) unsubscribes; patterns map to
              NATS wildcards (quotes.* -> quotes.>, q.[AB].bid -> q.*.bid);
  - cluster:  three nats-server nodes, three edges each on another node,
              subscribers (channel and pattern) and publishers on every edge:
              every subscriber gets every message exactly once, in each
              publisher's order; PUBLISH counts local receivers; no edge sends
              upstream what it received from upstream;
  - failover: killing the node an edge is connected to keeps the edge's local
              pub/sub working; the edge reconnects to another node, keeps its
              interest, delivery across edges resumes (the messages lost
              during the switch are counted and printed: core NATS is
              at-most-once), INFO upstream and the log report the outage; the
              killed node restarts and rejoins the cluster.

The upstream does not depend on the I/O backend, so the cluster and failover
cases run once, under the uring backend; the others run under every backend.
Without nats-server or a build with libnats the file skips (exit 77), except
under CI=true, where that is a failure. Every wait is bounded in time and
every load loop in count; nothing asserts a duration.

SPDX-License-Identifier: BSD-3-Clause
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402

try:
    import redis
except ImportError:  # python3-redis comes with scripts/deps.sh
    redis = None

WAIT = 15.0  # seconds any single condition may take to come true


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(cond, why):
    """Skip when cond is false -- unless in CI, where the test must run."""
    if cond:
        return
    if in_ci():
        raise rc.Failure("CI=true but %s" % why)
    raise rc.Skip(why)


def nats_server_path():
    p = shutil.which("nats-server") or ("/usr/sbin/nats-server"
                                        if os.access("/usr/sbin/nats-server", os.X_OK) else None)
    need(p is not None, "nats-server is not installed (scripts/deps.sh installs it)")
    return p


_support = None


def upstream_compiled():
    """Does this ringcastd have the NATS upstream (INFO upstream_support)?"""
    global _support
    if _support is None:
        with rc.Server() as s, s.conn() as c:
            info = rc.info_sections(c.cmd("INFO", "upstream"))
            _support = info.get("upstream", {}).get("upstream_support") == "yes"
    return _support


def need_nats():
    need(redis is not None, "python3-redis is not installed")
    need(upstream_compiled(), "ringcastd was built without libnats (RINGCAST_NATS)")
    return nats_server_path()


def heavy_case():
    if rc.io_kind() != "uring":
        raise rc.Skip("backend-independent; runs under the uring backend only")


# ---------------------------------------------------------------- NATS servers

class Nats:
    """One nats-server on 127.0.0.1 (client, monitoring and cluster ports)."""

    def __init__(self, name, port=None, routes=(), cport=None):
        self.name = name
        self.port = port or rc.free_port()
        self.mport = rc.free_port()
        self.cport = cport
        self.routes = list(routes)
        self.proc = None
        self.logf = tempfile.NamedTemporaryFile(prefix="rc-nats-", suffix=".log", delete=False)
        self.start()

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def start(self):
        argv = [nats_server_path(), "-a", "127.0.0.1", "-p", str(self.port),
                "-m", str(self.mport), "-n", self.name]
        if self.cport:
            argv += ["--cluster_name", "rc", "--cluster", "nats://127.0.0.1:%d" % self.cport]
            if self.routes:
                argv += ["--routes", ",".join("nats://127.0.0.1:%d" % p for p in self.routes)]
        self.logf.seek(0)
        self.logf.truncate()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        ok = rc.wait_until(lambda: self.proc.poll() is None and self.monitor("varz"), WAIT)
        rc.check(ok, "nats-server %s started" % self.name, got=self.log()[-2000:])

    def monitor(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/%s" % (self.mport, path),
                                        timeout=2) as r:
                return json.loads(r.read().decode())
        except (OSError, ValueError):
            return None

    def edge_subs(self, run_id):
        """The subjects held by the edge whose run_id is given (None: not connected here)."""
        c = self.monitor("connz?subs=1")
        for conn in (c or {}).get("connections", []):
            if run_id in conn.get("name", ""):
                return sorted(conn.get("subscriptions_list") or [])
        return None

    def log(self):
        with open(self.logf.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill(self):
        """SIGKILL, by the PID of the process this test started."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def close(self):
        self.kill()
        self.logf.close()
        os.unlink(self.logf.name)


class Cluster:
    def __init__(self, n):
        cports = [rc.free_port() for _ in range(n)]
        self.nodes = []
        try:
            for i in range(n):
                others = [p for j, p in enumerate(cports) if j != i]
                self.nodes.append(Nats("n%d" % (i + 1), routes=others, cport=cports[i]))
            self.wait_routes()
        except BaseException:
            self.close()
            raise

    def wait_routes(self, nodes=None):
        want = len(self.nodes) - 1
        for nd in nodes or self.nodes:
            ok = rc.wait_until(lambda: (nd.monitor("routez") or {}).get("num_routes", 0) >= want,
                               WAIT)
            rc.check(ok, "node %s has routes to the %d others" % (nd.name, want),
                     got=nd.monitor("routez"))

    def close(self):
        for nd in self.nodes:
            nd.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- edges

def edge(urls, *flags):
    return rc.Server(flags=["--upstream", ",".join(urls), "--loglevel", "verbose"] + list(flags))


def upinfo(srv):
    with srv.conn() as c:
        return rc.info_sections(c.cmd("INFO", "upstream")).get("upstream", {})


def run_id(srv):
    with srv.conn() as c:
        return rc.info_sections(c.cmd("INFO", "server"))["server"]["run_id"]


def client(srv):
    return redis.Redis(host=rc.HOST, port=srv.port, socket_timeout=5)


class Sub:
    """A redis-py subscriber collecting message payloads."""

    def __init__(self, srv, channels=(), patterns=()):
        self.r = client(srv)
        self.p = self.r.pubsub()
        if channels:
            self.p.subscribe(*channels)
        if patterns:
            self.p.psubscribe(*patterns)
        self.got = []
        self.confirmed = 0
        self.want_confirm = len(channels) + len(patterns)

    def pump(self, timeout=0.05):
        """Reads what has arrived; returns how many messages came."""
        n = 0
        while True:
            m = self.p.get_message(timeout=timeout)
            if m is None:
                return n
            if m["type"] in ("subscribe", "psubscribe"):
                self.confirmed += 1
            elif m["type"] in ("message", "pmessage"):
                self.got.append(m["data"])
                n += 1
            timeout = 0.0

    def ready(self):
        rc.wait_until(lambda: self.pump() is not None and self.confirmed >= self.want_confirm,
                      WAIT)
        rc.check(self.confirmed >= self.want_confirm, "subscriptions confirmed")

    def close(self):
        self.p.close()
        self.r.close()


def wait_subjects(node, rid, want, what):
    ok = rc.wait_until(lambda: node.edge_subs(rid) == sorted(want), WAIT)
    rc.check(ok, what, sorted(want), node.edge_subs(rid))


# ---------------------------------------------------------------- tests

def refused(*flags):
    """Runs ringcastd with flags; returns its output, checking it exits 1."""
    argv = [rc.ringcastd_path(), "--port", "0", "--http-port", "0"] + list(flags)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    rc.check_eq(p.returncode, 1, "ringcastd %s exits 1" % " ".join(flags))
    return out


def test_bad_settings():
    """Bad upstream values stop ringcastd with one clear line (or: no libnats)."""
    if not upstream_compiled():
        out = refused("--upstream", "nats://127.0.0.1:4222")
        rc.check("without NATS support" in out, "the message says NATS is not compiled in",
                 "without NATS support", out)
        return
    out = refused("--upstream", "http://127.0.0.1:4222")
    rc.check("nats://host:port" in out, "a bad URL is explained", "nats://host:port", out)
    out = refused("--upstream", "nats://127.0.0.1:1", "--upstream-creds", "/nonexistent/x.creds")
    rc.check("upstream" in out and "x.creds" in out, "an unreadable credentials file is named",
             "x.creds", out)


def test_names_and_down_at_start():
    need_nats()
    port = rc.free_port()
    # max-name-len raised so that the upstream's own 1024-byte bound is the one hit.
    with edge(["nats://127.0.0.1:%d" % port], "--max-name-len", "4096") as e:
        # NATS is not there: the edge serves locally and says so.
        info = upinfo(e)
        rc.check(info["upstream_state"] in ("connecting", "reconnecting", "disconnected"),
                 "INFO upstream while NATS is absent", "connecting", info["upstream_state"])
        rc.check_eq(info["upstream_outage_in_progress"], "1", "the outage is in progress")
        rc.check("not reachable yet" in e.log(), "the log says NATS is not reachable",
                 got=e.log()[-1500:])
        r = client(e)
        for cmd, why in ((("SUBSCRIBE", "ok.a", "bad name"), "spaces"),
                         (("SUBSCRIBE", "a..b"), "empty token"),
                         (("SUBSCRIBE", "quotes.*"), "wildcards"),
                         (("PSUBSCRIBE", "my q.*"), "spaces"),
                         (("PUBLISH", "bad name", "x"), "spaces"),
                         (("PUBLISH", "x" * 1025, "x"), "1024 bytes")):
            try:
                r.execute_command(*cmd)
                raise rc.Failure("%s %r was accepted" % (cmd[0], cmd[1][:40]))
            except redis.ResponseError as ex:
                rc.check("cannot be carried upstream" in str(ex) and why in str(ex),
                         "%s %r fails with a clear error" % (cmd[0], cmd[1][:40]), why, str(ex))
        # The refused SUBSCRIBE changed nothing, not even its good first name.
        rc.check_eq(r.pubsub_numsub("ok.a"), [(b"ok.a", 0)], "a refused SUBSCRIBE subscribed none")
        # Shard channels are local to the edge: any name goes.
        rc.check_eq(r.execute_command("SPUBLISH", "bad name", "x"), 0, "SPUBLISH is local")
        # Local pub/sub works with NATS down; PUBLISH counts local receivers.
        s = Sub(e, channels=["q.AAPL"], patterns=["q.[AB]*", "q.[AB].bid"])
        s.ready()
        rc.check_eq(r.publish("q.AAPL", "local"), 2, "PUBLISH counts the local receivers")
        rc.wait_until(lambda: s.pump() is not None and len(s.got) >= 2, WAIT)
        rc.check_eq(s.got, [b"local", b"local"], "local delivery while NATS is down")

        # NATS appears: the edge connects and sends the interest it gathered.
        n = Nats("late", port=port)
        try:
            ok = rc.wait_until(lambda: upinfo(e)["upstream_state"] == "connected", WAIT)
            rc.check(ok, "the edge connects once NATS is up", "connected", upinfo(e))
            rid = run_id(e)
            wait_subjects(n, rid, ["q.AAPL", "q.>", "q.*.bid"],
                          "the subjects the edge holds upstream")
            info = upinfo(e)
            rc.check_eq(info["upstream_subscriptions"], "3", "INFO counts them")
            rc.check_eq(info["upstream_outage_in_progress"], "0", "the outage is over")
            rc.check(int(info["upstream_last_outage_start_ms"]) > 0, "the outage's start is kept",
                     got=info)
            rc.check("upstream: connected to nats://127.0.0.1:%d" % port in e.log(),
                     "the log says where it connected", got=e.log()[-1500:])
            # A message from another edge reaches all three subscriptions once each.
            with edge([n.url]) as e2:
                rc.wait_until(lambda: upinfo(e2)["upstream_state"] == "connected", WAIT)
                r2 = client(e2)
                for i in range(200):  # bounded: until the first one arrives
                    r2.publish("q.AAPL", "warm")
                    if s.pump(0.05):
                        break
                rc.check(b"warm" in s.got, "a message from another edge arrives", got=s.got[-5:])
                s.pump(0.3)
                s.got.clear()
                rc.check_eq(r2.publish("q.AAPL", "remote"), 0,
                            "PUBLISH on an edge without local subscribers counts 0")
                rc.wait_until(lambda: s.pump() is not None and len(s.got) >= 2, WAIT)
                s.pump(0.3)
                rc.check_eq(s.got, [b"remote"] * 2,
                            "once per matching local subscription (q.AAPL and q.[AB]*)")
                # The edge holds q.AAPL and q.> (both match): NATS sends two
                # copies, the edge publishes one.
                dup = int(upinfo(e)["upstream_in_duplicates"])
                rc.check(dup >= 1, "the copy of the overlapping subscription was dropped",
                         ">= 1", dup)
                r2.close()
            # It received from upstream on libnats's threads: a clean stop (and
            # under a sanitizer, no report) says the hand-over is sound.
            rc.check_eq(e.stop(), 0, "the edge exits 0 on SIGTERM")
            rc.check("Sanitizer" not in e.log(), "no sanitizer report", got=e.log()[-3000:])
        finally:
            s.close()
            r.close()
            n.close()


def test_interest_follows_subscribers():
    need_nats()
    n = Nats("solo")
    hport = rc.free_port()
    try:
        with edge([n.url], "--http-port", str(hport)) as e:
            rc.wait_until(lambda: upinfo(e)["upstream_state"] == "connected", WAIT)
            rid = run_id(e)
            wait_subjects(n, rid, [], "no interest before any subscriber")
            a = Sub(e, channels=["news.x"])
            a.ready()
            wait_subjects(n, rid, ["news.x"], "the first subscriber subscribes upstream")
            b = Sub(e, channels=["news.x"], patterns=["quotes.*"])
            b.ready()
            wait_subjects(n, rid, ["news.x", "quotes.>"],
                          "a second subscriber adds no second subscription")
            # /metrics says the same as NATS does.
            with urllib.request.urlopen("http://%s:%d/metrics" % (rc.HOST, hport),
                                        timeout=5) as resp:
                metrics = resp.read().decode()
            rc.check("\nringcast_upstream_subscriptions 2\n" in metrics
                     and "\nringcast_upstream_connected 1\n" in metrics,
                     "/metrics: the upstream connected, holding two subscriptions", None,
                     [l for l in metrics.splitlines() if "upstream" in l])
            a.p.unsubscribe("news.x")
            a.pump(0.2)
            time.sleep(0.2)
            rc.check_eq(n.edge_subs(rid), ["news.x", "quotes.>"],
                        "news.x stays while one local subscriber is left")
            b.p.punsubscribe("quotes.*")
            wait_subjects(n, rid, ["news.x"], "the last pattern subscriber leaving unsubscribes")
            b.close()  # disconnect without unsubscribing
            wait_subjects(n, rid, [], "a disconnect of the last subscriber unsubscribes")
            rc.check_eq(upinfo(e)["upstream_subscriptions"], "0", "INFO agrees")
            a.close()
            # A clean stop while connected and holding interest: exit 0 (under
            # ASan, also no leak and no error report from libnats's threads).
            keep = Sub(e, channels=["news.y"], patterns=["news.*"])
            keep.ready()
            wait_subjects(n, rid, ["news.y", "news.>"], "interest held at the stop")
            rc.check_eq(e.stop(), 0, "SIGTERM: ringcastd exits 0")
            rc.check("Sanitizer" not in e.log(), "no sanitizer report", got=e.log()[-3000:])
            keep.close()
    finally:
        n.close()


def test_cluster_exactly_once_in_order():
    need_nats()
    heavy_case()
    N = 300  # messages per publishing edge
    with Cluster(3) as cl:
        edges = [edge([nd.url]) for nd in cl.nodes]
        subs, pubs = [], []
        try:
            for e in edges:
                rc.wait_until(lambda: upinfo(e)["upstream_state"] == "connected", WAIT)
            # Every edge: a channel subscriber and a pattern subscriber (the
            # edge then holds t.seq and t.>, overlapping upstream).
            for e in edges:
                subs.append(Sub(e, channels=["t.seq"]))
                subs.append(Sub(e, patterns=["t.*"]))
            for s in subs:
                s.ready()
            pubs = [client(e) for e in edges]
            # Warm up until every subscriber hears every edge: interest has
            # reached every node of the cluster.
            for _ in range(200):
                for i, p in enumerate(pubs):
                    p.publish("t.seq", "warm%d" % i)
                for s in subs:
                    s.pump(0.01)
                if all(all(("warm%d" % i).encode() in s.got for i in range(3)) for s in subs):
                    break
            for s in subs:
                rc.check(all(("warm%d" % i).encode() in s.got for i in range(3)),
                         "every subscriber hears every edge before the run",
                         got=sorted(set(s.got)))
            time.sleep(0.3)
            for s in subs:
                s.pump(0.1)
                s.got.clear()
            out_before = [int(upinfo(e)["upstream_out_msgs"]) for e in edges]
            for k in range(N):
                for i, p in enumerate(pubs):
                    n = p.publish("t.seq", "e%d:%d" % (i, k))
                    if k == 0:
                        rc.check_eq(n, 2, "PUBLISH counts the two local subscribers only")
                if k % 50 == 0:
                    for s in subs:
                        s.pump(0)
            want = 3 * N
            rc.wait_until(lambda: all(s.pump(0.01) is not None and len(s.got) >= want
                                      for s in subs), 30)
            for s in subs:
                s.pump(0.2)
            for si, s in enumerate(subs):
                per = {0: [], 1: [], 2: []}
                for m in s.got:
                    i, k = m.decode().lstrip("e").split(":")
                    per[int(i)].append(int(k))
                for i in range(3):
                    rc.check_eq(per[i], list(range(N)),
                                "subscriber %d: edge %d's messages exactly once, in order"
                                % (si, i))
            for i, e in enumerate(edges):
                info = upinfo(e)
                rc.check_eq(int(info["upstream_out_msgs"]) - out_before[i], N,
                            "edge %d sent upstream only what was published on it" % i)
                rc.check_eq(info["upstream_in_dropped"], "0", "edge %d dropped nothing" % i)
                print("edge %d: in_msgs=%s in_delivered=%s in_duplicates=%s in_wakeups=%s" % (
                    i, info["upstream_in_msgs"], info["upstream_in_delivered"],
                    info["upstream_in_duplicates"], info["upstream_in_wakeups"]))
        finally:
            for s in subs:
                s.close()
            for p in pubs:
                p.close()
            for e in edges:
                e.close()


def test_failover():
    need_nats()
    heavy_case()
    with Cluster(3) as cl:
        n1, n2 = cl.nodes[0], cl.nodes[1]
        # f.* is sequenced on edge A: after its outage, its subscribers are told.
        a = edge([n1.url], "--mdata-rule", "f.* seq")  # discovers n2 and n3 from the cluster
        b = edge([n2.url])
        subs = []
        try:
            for e in (a, b):
                rc.wait_until(lambda: upinfo(e)["upstream_state"] == "connected", WAIT)
            local = Sub(a, channels=["f.x"])
            remote = Sub(b, channels=["f.x"])
            subs += [local, remote]
            local.ready()
            remote.ready()
            pa = client(a)
            rid_a = run_id(a)
            for _ in range(200):
                pa.publish("f.x", "warm")
                if remote.pump(0.05):
                    break
            rc.check(b"warm" in remote.got, "delivery across edges before the kill")
            local.pump(0.2)
            remote.pump(0.2)
            local.got.clear()
            remote.got.clear()

            n1.kill()
            # Local pub/sub on edge A keeps working at once.
            rc.check_eq(pa.publish("f.x", "during"), 1, "local PUBLISH with the node gone")
            rc.wait_until(lambda: local.pump() is not None and b"during" in local.got, WAIT)
            rc.check(b"during" in local.got, "the local subscriber gets it", got=local.got)

            def moved():
                i = upinfo(a)
                return (i["upstream_state"] == "connected" and
                        int(i["upstream_reconnects"]) >= 1 and
                        i["upstream_connected_to"] != n1.url and i)
            info = rc.wait_until(moved, WAIT)
            rc.check(info, "edge A reconnected to another node", "connected elsewhere", upinfo(a))
            rc.check(int(info["upstream_disconnects"]) >= 1, "INFO counts the disconnect",
                     got=info)
            rc.check(int(info["upstream_last_outage_start_ms"]) > 0, "INFO keeps the outage time",
                     got=info)
            # Messages published elsewhere while A was away never reached it:
            # its subscriber of the sequenced channel is told, on the notice channel.
            rc.wait_until(lambda: local.pump() is not None and
                          any(m.startswith(b"upstream-gap") for m in local.got), WAIT)
            rc.check(any(m.startswith(b"upstream-gap outage_ms=") for m in local.got),
                     "edge A's subscriber of a sequenced channel told of the gap", None,
                     local.got[-5:])
            rc.check("start a new epoch after the outage" in a.log(), "and the log says so",
                     got=a.log()[-2000:])
            node = next(nd for nd in cl.nodes[1:] if nd.url == info["upstream_connected_to"])
            wait_subjects(node, rid_a, ["f.x"], "edge A's interest is held by its new node")
            rc.check("lost the connection" in a.log() and "reconnected to" in a.log(),
                     "the log reports the outage", got=a.log()[-2000:])

            # Delivery across edges resumes. A numbered stream: nothing twice,
            # in order, the tail complete; the gap (if any) is counted.
            M = 400
            for k in range(M):
                pa.publish("f.x", "s%d" % k)
                if k % 50 == 0:
                    remote.pump(0)
            rc.wait_until(lambda: remote.pump(0.01) is not None and
                          b"s%d" % (M - 1) in remote.got, WAIT)
            remote.pump(0.2)
            got = [int(m[1:]) for m in remote.got if m.startswith(b"s")]
            rc.check(got == sorted(set(got)), "no duplicate and no reordering after failover",
                     got=got[:20])
            rc.check(got and got[-1] == M - 1, "delivery resumed to the last message",
                     M - 1, got[-5:])
            print("failover: %d of %d messages published after the switch arrived "
                  "(%d lost); 'during' was published while edge A was disconnected"
                  % (len(got), M, M - len(got)))

            # The killed node restarts and rejoins the cluster.
            n1.start()
            cl.wait_routes([n1])
            rc.check(b.alive() and a.alive(), "both edges still run")
            code = a.stop()
            rc.check(code == 0, "edge A exits 0 on SIGTERM after the failover", 0,
                     "%r; its log ends: %s" % (code, a.log()[-3000:]))
            rc.check("Sanitizer" not in a.log(), "no sanitizer report", got=a.log()[-3000:])
        finally:
            for s in subs:
                s.close()
            a.close()
            b.close()


if __name__ == "__main__":
    rc.run_tests([test_bad_settings, test_names_and_down_at_start,
                  test_interest_follows_subscribers, test_cluster_exactly_once_in_order,
                  test_failover])
