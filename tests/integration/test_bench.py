"""test_bench -- ringcast-bench against the real server: the result line and its checks.

Runs the built ringcast-bench (next to $RINGCASTD, or $RINGCAST_BENCH) for
about two seconds against a ringcastd started by rchelper (or redis-server
with RINGCAST_TARGET=redis), parses its `RESULT {json}` line and asserts what
a correct server must give: deliveries happened, none out of order, none
duplicated, none skipped, none on the wrong channel, every PUBLISH reply equal
to the known receiver count, and -- at a fixed rate the server can surely
keep up with -- every expected delivery arrived. Also checks that the tool
refuses a non-loopback host. Every subprocess has a timeout.

With --proto sse and ws (ringcastd only) the subscribers are event streams
and WebSockets on the server's HTTP port while the publishers speak RESP;
the same runs must give the same clean accounting, and the server's own
encode counters must show that SSE events / WebSocket frames -- not RESP --
went out.

SPDX-License-Identifier: BSD-3-Clause
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402

RUN_TIMEOUT = 60


def bench_path():
    p = os.environ.get("RINGCAST_BENCH", "")
    if not p:
        p = os.path.join(os.path.dirname(rc.ringcastd_path()), "ringcast-bench")
    if not os.access(p, os.X_OK):
        raise rc.Failure("ringcast-bench not found at %s (build it, or set RINGCAST_BENCH)" % p)
    return p


def run_bench(args):
    """Runs ringcast-bench; returns (exit code, parsed RESULT dict or None, stdout, stderr)."""
    proc = subprocess.run([bench_path()] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    res = None
    if len(lines) == 1:
        try:
            res = json.loads(lines[0][len("RESULT "):])
        except ValueError as e:
            raise rc.Failure("RESULT line is not JSON (%s): %r" % (e, lines[0]))
    return proc.returncode, res, out, err


def check_clean(code, res, out, err):
    rc.check(res is not None, "exactly one RESULT line", "RESULT {...}", out + err)
    rc.check_eq(code, 0, "ringcast-bench exit code (stderr: %s)" % err.strip())
    rc.check("error" not in res, "no error in the result", None, res.get("error"))
    rc.check(res["deliveries"] > 0, "some deliveries", "> 0", res["deliveries"])
    rc.check(res["deliveries_per_sec"] > 0, "a delivery rate", "> 0", res["deliveries_per_sec"])
    for k in ("gaps", "dups", "reorders", "misrouted", "reply_mismatch"):
        rc.check_eq(res[k], 0, k)
    rc.check(res["published"] > 0, "some messages published", "> 0", res["published"])


def test_smoke_fixed_rate():
    """10 subscribers, one channel, 2 s at 5000 msg/s: every expected delivery arrives."""
    with rc.Server() as srv:
        code, res, out, err = run_bench([
            "--port", srv.port, "--subs", 10, "--channels", 1, "--pubs", 1, "--size", 128,
            "--rate", 5000, "--pipeline", 64, "--duration", 2, "--warmup", 0.3,
            "--server-pid", srv.proc.pid, "--label", "smoke", "--json-only"])
        check_clean(code, res, out, err)
        rc.check_eq(res["label"], "smoke", "label")
        rc.check_eq(res["subs"], 10, "subs")
        rc.check_eq(res["expected"], res["published"] * 10, "expected = published x 10 receivers")
        rc.check_eq(res["deliveries"], res["expected"], "every expected delivery arrived")
        rc.check_eq(res["lost"], 0, "lost")
        # about 5000 msg/s x 10 subscribers over ~2 s
        rc.check(20000 <= res["window_deliveries"] <= 200000, "window deliveries near the rate",
                 "about 100000", res["window_deliveries"])
        rc.check(res["server_cpu_s"] is not None and res["server_cpu_s"] >= 0,
                 "server CPU from /proc", ">= 0", res["server_cpu_s"])
        rc.check(res["server_rss_kb"] is not None and res["server_rss_kb"] > 0,
                 "server RSS from /proc", "> 0", res["server_rss_kb"])
        rc.check(res["lat_p50_us"] is not None and
                 0 < res["lat_p50_us"] <= res["lat_p99_us"] <= res["lat_max_us"],
                 "latency percentiles ordered", "0 < p50 <= p99 <= max",
                 (res["lat_p50_us"], res["lat_p99_us"], res["lat_max_us"]))
        rc.check(srv.alive(), "server still running")


def test_max_rate_patterns_many_publishers():
    """Max rate, 3 publishers, 30 subscribers over 4 channels by pattern: order holds."""
    with rc.Server() as srv:
        code, res, out, err = run_bench([
            "--port", srv.port, "--subs", 30, "--channels", 4, "--psubscribe", "--pubs", 3,
            "--size", 64, "--pipeline", 16, "--duration", 1, "--warmup", 0.2, "--json-only"])
        check_clean(code, res, out, err)
        rc.check(res["psubscribe"] is True, "pattern mode reported")
        rc.check(res["deliveries"] <= res["expected"], "no more deliveries than expected",
                 "<= %d" % res["expected"], res["deliveries"])


def test_idle_reports_memory():
    """--idle: subscribers connect and subscribe, nothing is published, RSS is reported."""
    with rc.Server() as srv:
        code, res, out, err = run_bench([
            "--port", srv.port, "--subs", 50, "--channels", 5, "--idle", "--duration", 0.2,
            "--server-pid", srv.proc.pid, "--json-only"])
        rc.check(res is not None, "one RESULT line", "RESULT {...}", out + err)
        rc.check_eq(code, 0, "exit code (stderr: %s)" % err.strip())
        rc.check_eq(res["idle"], True, "idle")
        rc.check_eq(res["published"], 0, "published")
        rc.check_eq(res["deliveries"], 0, "deliveries")
        rc.check(res["server_rss_kb"] and res["server_rss_kb"] > 0, "RSS", "> 0",
                 res["server_rss_kb"])


def http_server():
    """A ringcastd with its HTTP port on a free port (the helper turns it off by default)."""
    if rc.is_redis():
        raise rc.Skip("the HTTP port (SSE, WebSocket) is ringcast's own")
    hport = rc.free_port()
    srv = rc.Server(flags=["--http-port", str(hport)])
    srv.hport = hport
    return srv


def encodes(srv):
    """INFO fanout's encodes_<format> counters."""
    with srv.conn() as conn:
        sec = rc.info_sections(conn.cmd("INFO", "fanout"))["fanout"]
    return {k[len("encodes_"):]: int(v) for k, v in sec.items() if k.startswith("encodes_")}


def check_http_run(srv, proto, args, subs):
    """Runs ringcast-bench with --proto proto against srv's HTTP port at a fixed rate and
    asserts clean, complete accounting and that the server encoded for that format."""
    before = encodes(srv)
    code, res, out, err = run_bench(["--proto", proto, "--port", srv.port,
                                     "--http-port", srv.hport, "--subs", subs] + args)
    check_clean(code, res, out, err)
    rc.check_eq(res["proto"], proto, "proto reported")
    rc.check_eq(res["http_port"], srv.hport, "http_port reported")
    rc.check_eq(res["payload"], "text", "payload form")
    rc.check_eq(res["deliveries"], res["expected"], "every expected delivery arrived")
    rc.check_eq(res["lost"], 0, "lost")
    after = encodes(srv)
    fmt = "sse" if proto == "sse" else "ws"
    # every published message was encoded once in the subscribers' format...
    rc.check(after.get(fmt, 0) - before.get(fmt, 0) >= res["published"],
             "an %s encoding per published message" % fmt, ">= %d" % res["published"],
             (before, after))
    # ...and none for RESP subscribers, as there were none
    for resp in ("resp2", "resp3"):
        rc.check_eq(after.get(resp, 0) - before.get(resp, 0), 0, "%s encodings" % resp)
    return res


def test_sse_fixed_rate():
    """--proto sse: 10 event streams on one channel, 2 s at 5000 msg/s, all delivered."""
    with http_server() as srv:
        res = check_http_run(srv, "sse", [
            "--channels", 1, "--pubs", 1, "--size", 128, "--rate", 5000, "--duration", 2,
            "--warmup", 0.3, "--server-pid", srv.proc.pid, "--json-only"], 10)
        rc.check_eq(res["expected"], res["published"] * 10, "expected = published x 10")
        rc.check(20000 <= res["window_deliveries"] <= 200000, "window deliveries near the rate",
                 "about 100000", res["window_deliveries"])
        rc.check(res["lat_p50_us"] is not None and 0 < res["lat_p50_us"] <= res["lat_max_us"],
                 "latency measured", "0 < p50 <= max", (res["lat_p50_us"], res["lat_max_us"]))
        rc.check(srv.alive(), "server still running")


def test_ws_fixed_rate():
    """--proto ws: 10 WebSockets on one channel, 2 s at 5000 msg/s, all delivered."""
    with http_server() as srv:
        res = check_http_run(srv, "ws", [
            "--channels", 1, "--pubs", 1, "--size", 128, "--rate", 5000, "--duration", 2,
            "--warmup", 0.3, "--server-pid", srv.proc.pid, "--json-only"], 10)
        rc.check_eq(res["expected"], res["published"] * 10, "expected = published x 10")
        rc.check(20000 <= res["window_deliveries"] <= 200000, "window deliveries near the rate",
                 "about 100000", res["window_deliveries"])
        rc.check(srv.alive(), "server still running")


def test_http_patterns_many_publishers_sizes():
    """sse and ws by pattern, 3 publishers over 4 channels, at sizes that give each WebSocket
    length form (7-bit, 16-bit, 64-bit): complete and in order."""
    with http_server() as srv:
        for proto in ("sse", "ws"):
            for size, rate in ((44, 3000), (4096, 3000), (70000, 300)):
                check_http_run(srv, proto, [
                    "--channels", 4, "--psubscribe", "--pubs", 3, "--size", size,
                    "--rate", rate, "--pipeline", 16, "--duration", 0.5, "--warmup", 0.2,
                    "--json-only"], 12)


def test_http_bad_setups():
    """Too small a --size for the text header is refused; a --http-port that is a RESP port
    fails setup at once with what it answered, not after the 20 s setup limit."""
    code, res, out, err = run_bench(["--proto", "ws", "--port", 6379, "--size", 43])
    rc.check_eq(code, 2, "exit code for --size 43 with --proto ws")
    rc.check("at least 44" in err, "a clear error", "--size must be at least 44 ...", err)
    with http_server() as srv:
        for proto in ("sse", "ws"):
            code, res, out, err = run_bench(["--proto", proto, "--port", srv.port,
                                             "--http-port", srv.port, "--subs", 2,
                                             "--duration", 1, "--json-only"])
            rc.check_eq(code, 1, "exit code when --http-port is the RESP port")
            rc.check(res is not None and "error" in res, "RESULT carries an error", "error", out)
            rc.check("does not speak HTTP" in err, "stderr says why", "does not speak HTTP",
                     err)
            rc.check("setup timed out" not in (res or {}).get("error", ""), "failed at once",
                     "setup failed", res)


def test_refuses_non_loopback_host():
    code, res, out, err = run_bench(["--host", "192.0.2.1", "--port", 6379, "--duration", 1])
    rc.check_eq(code, 2, "exit code for a non-loopback host")
    rc.check(res is None, "no RESULT line", None, out)
    rc.check("non-loopback" in err, "a clear error", "refusing non-loopback host ...", err)


def test_reports_refused_connection():
    port = rc.free_port()  # nothing listens there
    code, res, out, err = run_bench(["--port", port, "--subs", 2, "--duration", 1, "--json-only"])
    rc.check_eq(code, 1, "exit code when the server is not there")
    rc.check(res is not None and "error" in res, "RESULT carries an error", "error", out)
    rc.check("connect failed" in err, "stderr says why", "connect failed", err)


if __name__ == "__main__":
    rc.run_tests([test_smoke_fixed_rate, test_max_rate_patterns_many_publishers,
                  test_idle_reports_memory, test_sse_fixed_rate, test_ws_fixed_rate,
                  test_http_patterns_many_publishers_sizes, test_http_bad_setups,
                  test_refuses_non_loopback_host, test_reports_refused_connection])
