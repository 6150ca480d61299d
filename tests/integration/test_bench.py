"""test_bench -- ringcast-bench against the real server: the result line and its checks.

Runs the built ringcast-bench (next to $RINGCASTD, or $RINGCAST_BENCH) for
about two seconds against a ringcastd started by rchelper (or redis-server
with RINGCAST_TARGET=redis), parses its `RESULT {json}` line and asserts what
a correct server must give: deliveries happened, none out of order, none
duplicated, none skipped, none on the wrong channel, every PUBLISH reply equal
to the known receiver count, and -- at a fixed rate the server can surely
keep up with -- every expected delivery arrived. Also checks that the tool
refuses a non-loopback host. Every subprocess has a timeout.

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
                  test_idle_reports_memory, test_refuses_non_loopback_host,
                  test_reports_refused_connection])
