#!/usr/bin/python3
"""bench/report.py -- turns bench/run.sh's JSONL into the tables and chart of BENCHMARKS.md.

Reads one results file (default: the most recently written bench/results/*.jsonl), takes the
median of every figure per (server, scenario) over the runs, and rewrites the part of
BENCHMARKS.md between the markers <!-- report:begin --> and <!-- report:end -->: the machine
and load, the target ratios of ringcastd (io_uring) against Redis with pass/fail, one table per
scenario with the exact commands, the ceiling table, and a gnuplot chart (PNG next to the
results file). The prose around the markers is left alone. Standard library only.

Usage: bench/report.py [results.jsonl] [--md BENCHMARKS.md] [--no-chart]
       bench/report.py --workers [results-workers.jsonl]

--workers: prints (to stdout; BENCHMARKS.md is left alone) the markdown tables of a
bench/workers.sh file (default: the newest bench/results/*-workers.jsonl), one per scenario,
with the exact commands. (--workers-line FILE LABEL: workers.sh's progress line of one run.)

SPDX-License-Identifier: BSD-3-Clause
"""
import json
import os
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- report:begin -->"
END = "<!-- report:end -->"
SERVERS = ["redis", "nats", "uring", "epoll", "naive", "uring-tick"]
SERVER_NAMES = {"redis": "redis-server 7", "nats": "nats-server", "uring": "ringcastd uring",
                "epoll": "ringcastd epoll", "naive": "ringcastd naive",
                "uring-tick": "ringcastd uring tick-us 500"}
SCENARIOS = ["A", "B", "C", "D", "D1k", "E", "M"]
SCENARIO_TEXT = {
    "A": "1 channel, 100 subscribers, 1 publisher, 128 B, max rate, pipeline 64",
    "B": "as A with 1,000 subscribers",
    "C": "100 channels x 10 subscribers, 4 publishers, 128 B, max rate",
    "D": "as A at a fixed 20,000 msg/s",
    "D1k": "as A at a fixed 1,000 msg/s",
    "E": "as A with 4 KiB messages",
    "M": "10,000 idle subscribers: server RSS",
}
ORDER_FIELDS = ["gaps", "dups", "reorders", "misrouted", "lost"]


def load(path):
    """Returns (meta records, cmd records by label, results by (server, scen), ceilings)."""
    metas, cmds, results, ceilings = [], {}, {}, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            kind = rec.get("kind")
            if kind == "meta":
                metas.append(rec)
            elif kind == "cmd":
                cmds[rec["label"]] = rec
            elif kind == "ceiling":
                ceilings.append(rec)
            elif "deliveries_per_sec" in rec and rec.get("label", "").count("/") == 2:
                server, scen, _run = rec["label"].split("/")
                results.setdefault((server, scen), []).append(rec)
    return metas, cmds, results, ceilings


def med(recs, field, scale=1.0):
    vals = [r[field] * scale for r in recs if r.get(field) is not None]
    return statistics.median(vals) if vals else None


def summarize(recs):
    """Medians (and worst-case correctness counts) over one (server, scenario)'s runs."""
    s = {"runs": len(recs), "errors": sum(1 for r in recs if r.get("error"))}
    s["dps"] = med(recs, "deliveries_per_sec")
    s["pps"] = med(recs, "publish_per_sec")
    s["ns"] = med(recs, "cpu_s_per_million", 1000.0)  # s per 1e6 deliveries -> ns each
    s["sys"] = med(recs, "syscalls_per_delivery")
    s["p50"] = med(recs, "lat_p50_us")
    s["p99"] = med(recs, "lat_p99_us")
    s["p999"] = med(recs, "lat_p999_us")
    s["rss_sub"] = med(recs, "server_rss_per_sub_bytes")
    s["rss_before"] = med(recs, "server_rss_before_kb")
    s["rss"] = med(recs, "server_rss_kb")
    s["server_util"] = statistics.median(
        [r["server_cpu_s"] / r["duration"] for r in recs
         if r.get("server_cpu_s") is not None and r.get("duration")] or [0])
    s["bench_util"] = statistics.median(
        [r["bench_sub_cpu_s"] / r["duration"] for r in recs
         if r.get("bench_sub_cpu_s") is not None and r.get("duration")] or [0])
    for f in ORDER_FIELDS:
        s[f] = max((r.get(f) or 0) for r in recs)
    # A run that lost, reordered or never delivered messages measured something
    # else than the scenario: every target it touches is INVALID, never met.
    s["invalid"] = sum(1 for r in recs if invalid_reason(r))
    return s


def invalid_reason(r):
    """Why one RESULT cannot count (empty string: it can)."""
    bad = [f"{f} {r[f]:,}" for f in ORDER_FIELDS if r.get(f)]
    if r.get("expected") is not None and r.get("deliveries") is not None \
            and r["deliveries"] != r["expected"]:
        bad.append(f"undelivered {r['expected'] - r['deliveries']:,}")
    return ", ".join(bad)


def fmt_num(v, digits=0):
    if v is None:
        return "n/a"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fmt_sys(v):
    if v is None:
        return "n/a"
    return f"{v:.5f}" if v >= 0.0001 else f"{v:.1e}"


def fmt_ratio(v):
    return "n/a" if v is None else f"{v:.2f}x"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def machine_section(metas, path):
    start = next((m for m in metas if m.get("what") == "start"), metas[0] if metas else {})
    end = next((m for m in metas if m.get("what") == "end"), {})
    lines = [
        f"Results file: `{os.path.relpath(path, ROOT)}`, produced by "
        f"`{start.get('command', 'bench/run.sh')}` "
        f"(started {start.get('time', '?')}, finished {end.get('time', '?')}).",
        "",
        f"- Machine: {start.get('nproc', '?')} CPUs, `{start.get('cpu', '?')}`, "
        f"{(start.get('mem_kb') or 0) / 1048576:.0f} GiB RAM, Linux {start.get('kernel', '?')} "
        f"(a virtual machine).",
        f"- Load average (1/5/15 min) at start: {' '.join(start.get('loadavg', []))}; at end: "
        f"{' '.join(end.get('loadavg', [])) or '?'}. Other engineers' builds and tests were "
        "running on the same two cores during the run, so every figure carries that noise.",
        f"- Servers: {start.get('redis', '?')}; {start.get('nats', '?')}; ringcastd built "
        "Release from this tree.",
    ]
    workers = start.get("workers")
    cpus = start.get("cpus") or {}
    if workers is None:
        lines.append("- ringcastd: no `--workers` flag (a run from before `bench/run.sh "
                     "--workers`): one loop thread.")
    else:
        lines.append(f"- ringcastd: `--workers {workers}` (`bench/run.sh --workers {workers}`)"
                     + (": one loop thread." if workers == 1 else "."))
    if workers is None or workers == 1:
        lines.append("- Each server runs alone on CPU 0 (`taskset -c 0`), the bench on CPU 1 "
                     "(`taskset -c 1`); a fresh server per run; the table shows the median of "
                     "the runs.")
    else:
        lines.append(f"- ringcastd runs on CPUs {cpus.get('ringcastd', '?')}, redis-server and "
                     f"nats-server on CPU 0, and the bench on CPUs {cpus.get('bench', '?')} "
                     "(`taskset`): **the server's workers and the load generator share the "
                     "cores**; a fresh server per run; the table shows the median of the runs.")
    return lines


def workers_of(metas):
    """The --workers of a run.sh file (None: a file from before the flag)."""
    start = next((m for m in metas if m.get("what") == "start"), metas[0] if metas else {})
    return start.get("workers")


def server_name(server, workers=None):
    name = SERVER_NAMES[server]
    if workers is not None and workers != 1 and server in ("uring", "epoll", "naive",
                                                           "uring-tick"):
        name += f", {workers} workers"
    return name


def scenario_table(results, scen, redis, workers=None):
    rows = [
        "| server | deliveries/s | vs Redis | server CPU ns/delivery | vs Redis | "
        "syscalls/delivery | p50 µs | p99 µs | p99.9 µs | server CPU | bench sub-thread CPU | "
        "gaps/dups/reorders/misrouted/lost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for server in SERVERS:
        s = results.get((server, scen))
        if not s:
            continue
        bench_flag = " (bench-bound)" if s["bench_util"] > 0.9 else ""
        order = "/".join(str(s[f]) for f in ORDER_FIELDS)
        if s["errors"]:
            order += f" ({s['errors']} run(s) failed)"
        rows.append(
            f"| {server_name(server, workers)} | {fmt_num(s['dps'])} | "
            f"{fmt_ratio(ratio(s['dps'], redis and redis['dps']))} | {fmt_num(s['ns'])} | "
            f"{fmt_ratio(ratio(s['ns'], redis and redis['ns']))} | {fmt_sys(s['sys'])} | "
            f"{fmt_num(s['p50'])} | {fmt_num(s['p99'])} | {fmt_num(s['p999'])} | "
            f"{s['server_util'] * 100:.0f}% | {s['bench_util'] * 100:.0f}%{bench_flag} | "
            f"{order} |")
    return rows


def memory_table(results, workers=None):
    rows = [
        "| server | RSS before connecting | RSS with 10,000 idle subscribers | "
        "bytes per subscriber | vs Redis |",
        "|---|---:|---:|---:|---:|",
    ]
    redis = results.get(("redis", "M"))
    for server in SERVERS:
        s = results.get((server, "M"))
        if not s:
            continue
        rows.append(
            f"| {server_name(server, workers)} | {fmt_num(s['rss_before'])} KiB | "
            f"{fmt_num(s['rss'])} KiB"
            f" | {fmt_num(s['rss_sub'])} | "
            f"{fmt_ratio(ratio(s['rss_sub'], redis and redis['rss_sub']))} |")
    return rows


def commands_block(cmds, scen, workers=None):
    """The exact commands of run 1 of each server in a scenario."""
    out = []
    for server in SERVERS:
        c = cmds.get(f"{server}/{scen}/1")
        if not c:
            continue
        out.append(f"# {server_name(server, workers)}")
        out.append(c["server_cmd"] + " &")
        out.append(c["bench_cmd"])
    if not out:
        return []
    return ["<details><summary>exact commands (run 1; port and PID differ per run)</summary>",
            "", "```sh"] + out + ["```", "", "</details>"]


INVALID = "invalid"  # a target row whose runs lost or reordered messages


def targets(results, ours="uring"):
    """[(scenario, target text, measured text, pass?)] for ringcastd (ours) vs Redis."""
    rows = []

    def get(server, scen):
        return results.get((server, scen))

    def add(scen, text, value, ok, shown):
        u, r = get(ours, scen), get("redis", scen)
        bad = [f"{w}: {x['invalid']} of {x['runs']} run(s)" for w, x in ((ours, u), ("redis", r))
               if x and x.get("invalid")]
        if bad:
            rows.append((scen, text, (shown if value is not None else "n/a") +
                         " (lost/undelivered/reordered in " + "; ".join(bad) + ")", INVALID))
            return
        rows.append((scen, text, shown if value is not None else "n/a",
                     None if value is None else ok(value)))

    for scen, want in (("A", 2), ("B", 2), ("C", 3), ("E", 1.5)):
        u, r = get(ours, scen), get("redis", scen)
        if not (u and r):
            continue
        v = ratio(u["dps"], r["dps"])
        add(scen, f"deliveries/s >= {want}x Redis", v, lambda x, w=want: x >= w, fmt_ratio(v))
    for scen, want in (("A", 0.5), ("B", 0.5), ("D", 0.5), ("D1k", 0.85)):
        u, r = get(ours, scen), get("redis", scen)
        if not (u and r):
            continue
        v = ratio(u["ns"], r["ns"])
        add(scen, f"CPU per delivery <= {want}x Redis", v, lambda x, w=want: x <= w,
            fmt_ratio(v))
    for scen in ("D", "D1k"):
        u, r = get(ours, scen), get("redis", scen)
        if not (u and r) or u["p99"] is None or r["p99"] is None:
            continue
        add(scen, "p99 latency <= Redis's", u["p99"], lambda x, rp=r["p99"]: x <= rp,
            f"{u['p99']:,.0f} µs vs {r['p99']:,.0f} µs")
    for scen in SCENARIOS:
        u, r = get(ours, scen), get("redis", scen)
        if scen == "M" or not (u and r):
            continue
        v = ratio(u["sys"], r["sys"])
        add(scen, "syscalls per delivery <= 1/20 of Redis's", v, lambda x: x <= 0.05,
            f"{v:.4f}x" if v is not None else "n/a")
        bad = sum(u[f] for f in ("gaps", "dups", "reorders", "misrouted"))
        add(scen, "zero gaps/dups/reorders/misrouted/lost", bad + u["lost"], lambda x: x == 0,
            f"{bad} (lost {u['lost']})")
    u, r = get(ours, "M"), get("redis", "M")
    if u and r:
        v = ratio(u["rss_sub"], r["rss_sub"])
        add("M", "RSS per idle subscriber <= 0.5x Redis", v, lambda x: x <= 0.5, fmt_ratio(v))
    return rows


def ceiling_tables(ceilings, results, cmds):
    if not ceilings:
        return []
    rows = [
        "| N connections | B bytes | K per socket per round | mode | deliveries/s | "
        "sender CPU ns/delivery | syscalls/delivery |",
        "|---:|---:|---:|---|---:|---:|---:|",
    ]
    by_cfg = {}
    for c in ceilings:
        by_cfg.setdefault((c["conns"], c["size"], c["batch"]), {}).setdefault(
            c["mode"], []).append(c)
    for (n, b, k), modes in sorted(by_cfg.items(), key=lambda x: (x[0][1], x[0][0], -x[0][2])):
        for mode in ("write", "writev", "uring"):
            cs = modes.get(mode)
            if not cs:
                continue
            rows.append(
                f"| {n:,} | {b:,} | {k} | {mode} | "
                f"{fmt_num(statistics.median(c['deliveries_per_sec'] for c in cs))} | "
                f"{fmt_num(statistics.median(c['cpu_ns_per_delivery'] for c in cs), 1)} | "
                f"{fmt_sys(statistics.median(c['syscalls_per_delivery'] for c in cs))} |")
    out = rows + [""]
    # ringcastd's cost against the best ceiling mode of the matching shape.
    cmp_rows = [
        "| scenario | ringcastd uring CPU ns/delivery | cheapest ceiling (N, B, K, mode) | "
        "ceiling ns/delivery | ratio |",
        "|---|---:|---|---:|---:|",
    ]
    # Each scenario against the cheapest (K, mode) measured with its N and B, and against the
    # io_uring mode at the batch size closest to what the server actually gets per socket.
    shapes = {"A": (100, 128, 64), "B": (1000, 128, 64), "C": (1000, 128, 2),
              "E": (100, 4096, 16)}
    have = False
    for scen, (n, b, k) in shapes.items():
        u = results.get(("uring", scen))
        cands = [(statistics.median(c["cpu_ns_per_delivery"] for c in cs), kk, m)
                 for (nn, bb, kk), modes in by_cfg.items() if (nn, bb) == (n, b)
                 for m, cs in modes.items()]
        if scen == "C":
            cands = [x for x in cands if x[1] == k]
        if not u or not cands or u["ns"] is None:
            continue
        best = min(cands)
        cmp_rows.append(f"| {scen} | {u['ns']:,.0f} | N={n}, B={b}, K={best[1]}, "
                        f"{best[2]} | {best[0]:,.1f} | {u['ns'] / best[0]:.2f}x |")
        have = True
    if have:
        out += cmp_rows + [""]
    cl = [cmds[k]["bench_cmd"] for k in sorted(cmds) if k.startswith("ceiling/")]
    if cl:
        out += ["<details><summary>exact commands</summary>", "", "```sh"] + cl + \
               ["```", "", "</details>", ""]
    return out


def chart(results, png, datfile, workers=None):
    """Two panels: deliveries/s and server CPU ns per delivery, per scenario and server."""
    if not shutil.which("gnuplot"):
        return False
    scens = [s for s in ("A", "B", "C", "D", "D1k", "E") if any((v, s) in results
                                                                for v in SERVERS)]
    servers = [v for v in SERVERS if any((v, s) in results for s in scens)]
    if not scens or not servers:
        return False
    with open(datfile, "w") as f:
        f.write("# scenario " + " ".join(f"{v}_dps {v}_ns" for v in servers) + "\n")
        for s in scens:
            cells = []
            for v in servers:
                r = results.get((v, s))
                cells.append(f"{(r['dps'] or 0) / 1e6:.4f}" if r and r["dps"] else "NaN")
                cells.append(f"{r['ns']:.1f}" if r and r["ns"] else "NaN")
            f.write(f"{s} " + " ".join(cells) + "\n")
    colors = {"redis": "#d62728", "nats": "#2ca02c", "uring": "#1f77b4", "epoll": "#17becf",
              "naive": "#9f9f9f", "uring-tick": "#9467bd"}

    def plot_cmd(offset):
        parts = []
        for i, v in enumerate(servers):
            col = 2 + 2 * i + offset
            parts.append(f"'{datfile}' using {col}:xtic(1) title '{SERVER_NAMES[v]}' "
                         f"lc rgb '{colors[v]}'")
        return "plot " + ", \\\n     ".join(parts)

    placement = "server on CPU 0, bench on CPU 1" if workers in (None, 1) else \
        f"ringcastd {workers} workers; server and bench share the CPUs"
    script = f"""
set terminal pngcairo size 1200,900 font 'DejaVu Sans,11'
set output '{png}'
set lmargin at screen 0.08
set rmargin at screen 0.74
set multiplot layout 2,1 title \
    'ringcast fan-out comparison (median of runs; {placement})'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key outside right top vertical
set ylabel 'million deliveries/s'
set title 'Throughput (higher is better); D and D1k are fixed-rate'
set logscale y
set yrange [0.01:*]
{plot_cmd(0)}
unset key
set title 'Server CPU per delivery (lower is better)'
set ylabel 'ns per delivery'
set yrange [10:*]
{plot_cmd(1)}
unset multiplot
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        return False
    return True


def build_section(path, make_chart=True):
    metas, cmds, raw, ceilings = load(path)
    results = {k: summarize(v) for k, v in raw.items()}
    workers = workers_of(metas)
    out = machine_section(metas, path) + [""]
    stem = os.path.splitext(path)[0]
    png = stem + ".png"
    if make_chart and chart(results, png, stem + ".dat", workers):
        out += [f"![deliveries/s and CPU per delivery]({os.path.relpath(png, ROOT)})", ""]
    t = targets(results)
    tick = {(x[0], x[1]): x for x in targets(results, "uring-tick")}

    def met(ok):
        if ok == INVALID:
            return "**INVALID**"
        return "n/a" if ok is None else ("yes" if ok else "**no**")

    if t:
        passed = sum(1 for x in t if x[3] is True)
        wtext = "" if workers in (None, 1) else f", {workers} workers"
        out += [f"### Targets: ringcastd (io_uring, default settings{wtext}) against Redis, "
                f"same run ({passed} of {len(t)} met)", "",
                "The last column is for information: the same check for `--tick-us 500`.", "",
                "| scenario | target | measured | met? | with tick-us 500 |",
                "|---|---|---|---|---|"]
        for scen, text, shown, ok in t:
            tk = tick.get((scen, text))
            tk_text = f"{tk[2]} ({met(tk[3]).strip('*')})" if tk else "n/a"
            out.append(f"| {scen} | {text} | {shown} | {met(ok)} | {tk_text} |")
        out.append("")
    for scen in SCENARIOS:
        if not any((v, scen) in results for v in SERVERS):
            continue
        runs = max(results[(v, scen)]["runs"] for v in SERVERS if (v, scen) in results)
        out += [f"### Scenario {scen}: {SCENARIO_TEXT[scen]} ({runs} run(s), medians)", ""]
        if scen == "M":
            out += memory_table(results, workers)
        else:
            out += scenario_table(results, scen, results.get(("redis", scen)), workers)
        out += [""] + commands_block(cmds, scen, workers) + [""]
    if ceilings:
        out += ["### Ceiling: the kernel's own cost of loopback fan-out (`ringcast-ceiling`)", ""]
        out += ceiling_tables(ceilings, results, cmds)
    out.append("Columns: *server CPU* is the server's CPU time over the window's wall time "
               "(100% = its whole core); *bench sub-thread CPU* is the bench's subscriber "
               "thread, and above 90% the bench rather than the server may set the pace "
               "(marked bench-bound). Latency at max rate measures the server's backlog, "
               "not its responsiveness: use D and D1k for latency.")
    return "\n".join(out) + "\n"


# ---- bench/workers.sh: multi-core fan-out -----------------------------------------------------

WORKERS_SCEN_TEXT = {
    "A": "1 channel, 100 subscribers, 1 publisher, 128 B, max rate",
    "B": "1 channel, 1,000 subscribers, 1 publisher, 128 B, max rate",
    "C": "100 channels x 10 subscribers, 4 publishers, 128 B, max rate",
    "B2k": "as B at a fixed 2,000 msg/s (2 million deliveries/s)",
}


def peer_name(peer):
    if peer.startswith("rc"):
        return f"ringcastd --workers {peer[2:]}"
    if peer == "redis":
        return "redis-server (io-threads 1)"
    if peer.startswith("redis-io"):
        n = peer[len("redis-io"):].rstrip("r")
        return f"redis-server --io-threads {n}" + \
            (" --io-threads-do-reads yes" if peer.endswith("r") else "")
    return {"nats": "nats-server"}.get(peer, peer)


def load_workers(path):
    """(metas, {label: {"cmd", "result", "server", "fail"}}) of a bench/workers.sh file."""
    metas, runs = [], {}
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            kind = rec.get("kind")
            if kind == "meta":
                metas.append(rec)
                continue
            label = rec.get("label")
            if not label:
                continue
            slot = runs.setdefault(label, {})
            if kind in ("cmd", "server", "fail"):
                slot[kind] = rec
            elif "deliveries_per_sec" in rec:
                slot["result"] = rec
    return metas, runs


def workers_run_facts(run):
    """The figures of one workers.sh run, and why it is invalid ('' when valid)."""
    cmd, r, srv = run.get("cmd", {}), run.get("result"), (run.get("server") or {}).get("probe")
    f = {"peer": cmd.get("peer"), "workers": cmd.get("workers"), "why": ""}
    if r is None:
        f["why"] = (run.get("fail") or {}).get("why", "no result")
        return f
    why = [invalid_reason(r)] if invalid_reason(r) else []
    if r.get("reply_mismatch"):
        why.append(f"reply_mismatch {r['reply_mismatch']:,}")
    if r.get("error"):
        why.append(f"error: {r['error']}")
        if run.get("fail"):
            why.append(run["fail"].get("why", "").strip())
    f["why"] = ", ".join(why)
    dur = r.get("duration") or 0
    f["dps"] = r.get("deliveries_per_sec")
    f["cpu_s"] = r.get("server_cpu_s")
    f["cpu_pct"] = 100 * r["server_cpu_s"] / dur if dur and r.get("server_cpu_s") is not None \
        else None
    f["ns"] = r["cpu_s_per_million"] * 1000 if r.get("cpu_s_per_million") is not None else None
    f["sys_perf"] = r.get("syscalls_per_delivery")
    f["bench_pct"] = 100 * r["bench_cpu_s"] / dur if dur and r.get("bench_cpu_s") is not None \
        else None
    f["sub_pct"] = 100 * r["bench_sub_cpu_s"] / dur \
        if dur and r.get("bench_sub_cpu_s") is not None else None
    # A fixed-rate run that published under 95% of its rate did less work than the others:
    # valid (nothing lost) but not comparable per delivery; marked in the table.
    f["behind"] = bool(r.get("rate") and (r.get("publish_per_sec") or 0) < 0.95 * r["rate"])
    f["pps"] = r.get("publish_per_sec")
    f["sys_info"] = (srv or {}).get("info", {}) and srv["info"].get("syscalls_per_delivery")
    f["busy"] = (srv or {}).get("busy_threads")
    f["threads"] = (srv or {}).get("threads") or []
    f["config_workers"] = (srv or {}).get("config_workers")
    f["others_pct"] = 100 * srv["others_cpu_s"] / srv["wall_s"] \
        if srv and srv.get("others_cpu_s") is not None and srv.get("wall_s") else None
    return f


def fmt_pct(v):
    return "n/a" if v is None else f"{v:,.0f}%"


def threads_text(threads, wall=None):
    """The busiest threads by name with their CPU seconds, e.g. 'ringcastd 4.1, iou-wrk 0.0'."""
    by = {}
    for t in threads:
        name = t["comm"]
        if name.startswith("iou-"):
            name = name.split("-")[0] + "-" + name.split("-")[1]  # iou-wrk-123 -> iou-wrk
        by.setdefault(name, []).append(t["cpu_s"])
    parts = []
    for name, vals in sorted(by.items(), key=lambda x: -sum(x[1])):
        big = sorted((v for v in vals if v >= 0.05), reverse=True)
        if not big:
            continue
        parts.append(f"{name} " + "+".join(f"{v:.1f}" for v in big))
    return ", ".join(parts[:4]) or "n/a"


def not_in_effect(facts):
    """A ringcastd --workers N>1 whose runs had fewer than N busy threads."""
    w = facts[0].get("workers") if facts else None
    busy = [f["busy"] for f in facts if f.get("busy") is not None]
    return bool(w and w > 1 and busy and max(busy) < w)


def workers_line(path, label):
    """One line for bench/workers.sh's progress output."""
    _, runs = load_workers(path)
    f = workers_run_facts(runs.get(label, {}))
    if f.get("dps") is None:
        print(f"{label:18s} INVALID ({f['why']})")
        return
    sys_txt = (f"{fmt_sys(f['sys_info'])} (INFO; perf {fmt_sys(f['sys_perf'])})"
               if f.get("sys_info") is not None else f"{fmt_sys(f['sys_perf'])} (perf)")
    note = ""
    if not_in_effect([f]):
        note = f" [workers {f['workers']} NOT IN EFFECT: {f['busy']} busy thread]"
    print(f"{label:18s} {fmt_num(f['dps']):>11s} deliveries/s, server CPU "
          f"{fmt_num(f['cpu_s'], 2)} s ({fmt_num(f['cpu_pct'])}%), {fmt_num(f['ns'])} ns/delivery,"
          f" {sys_txt} syscalls/delivery, threads [{threads_text(f['threads'])}], bench "
          f"{fmt_num(f['bench_pct'])}%, others {fmt_pct(f['others_pct'])}: "
          f"{'INVALID (' + f['why'] + ')' if f['why'] else 'valid'}"
          f"{' [behind the fixed rate: %s msg/s]' % fmt_num(f['pps']) if f.get('behind') else ''}"
          f"{note}")


def workers_report(path):
    """Markdown: per scenario, one row per peer (medians of the valid runs), exact commands."""
    metas, runs = load_workers(path)
    start = next((m for m in metas if m.get("what") == "start"), {})
    end = next((m for m in metas if m.get("what") == "end"), {})
    cpus = start.get("cpus", "?")
    bench_cpus = start.get("bench_cpus", cpus)
    if bench_cpus == cpus:
        placement = (f"- **The server and the load generator share the {start.get('nproc', '?')}"
                     f" cores**: every server and `ringcast-bench` run under `taskset -c {cpus}`. "
                     "The bench's CPU (last columns) is taken from the cores the server could "
                     "otherwise use, and its one subscriber thread may set the pace before the "
                     "server does; no figure here is a server's capacity alone.")
    else:
        placement = (f"- Every server runs under `taskset -c {cpus}`, `ringcast-bench` under "
                     f"`taskset -c {bench_cpus}`.")
    out = [f"Results file: `{os.path.relpath(path, ROOT)}`, produced by "
           f"`{start.get('command', 'bench/workers.sh')}` (started {start.get('time', '?')}, "
           f"finished {end.get('time', 'not finished')}).", "",
           f"- Machine: {start.get('nproc', '?')} CPUs, `{start.get('cpu', '?')}`, Linux "
           f"{start.get('kernel', '?')}; load average at start "
           f"{' '.join(start.get('loadavg', []))}, at end "
           f"{' '.join(end.get('loadavg', [])) or '?'}."
           f" Servers: {start.get('redis', '?')}; {start.get('nats', '?')}; ringcastd Release "
           "from this tree.",
           placement,
           "- deliveries/s, server CPU and perf's system calls are for the measured window; "
           "ringcastd's system calls per delivery come from its INFO fanout counters, from the "
           "start of publishing (setup left out) to after the bench ended, less `close` and "
           "`accept` (the bench's connections ending: one close each) (perf's window figure "
           "in parentheses, a cross-check); Redis's and NATS's from `perf stat -e "
           "raw_syscalls:sys_enter -p PID`. *threads*: each server thread's CPU seconds over "
           "the whole bench run, setup included (threads under 0.05 s left out).",
           "- A run that lost, skipped, duplicated, reordered or misrouted anything, or still had "
           "deliveries outstanding when the drain ended, is INVALID and left out of the medians. "
           "A fixed-rate run that published under 95% of its rate is valid but marked *behind "
           "the fixed rate*: it did less work, so its per-delivery figures compare less well.",
           ""]
    order, scens = [], []
    for label, run in runs.items():
        c = run.get("cmd")
        if not c:
            continue
        if c["peer"] not in order:
            order.append(c["peer"])
        if c["scenario"] not in scens:
            scens.append(c["scenario"])
    warned = set()
    for scen in scens:
        out += [f"### {scen}: {WORKERS_SCEN_TEXT.get(scen, scen)}", "",
                "| server | valid runs | deliveries/s | server CPU s | server CPU | "
                "ns/delivery | syscalls/delivery | threads (CPU s) | bench CPU | "
                "bench sub-thread | others' CPU |",
                "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
        cmds, bad = [], []
        for peer in order:
            labels = sorted((lb for lb, r in runs.items() if r.get("cmd", {}).get("peer") == peer
                             and r["cmd"]["scenario"] == scen),
                            key=lambda lb: runs[lb]["cmd"]["run"])
            if not labels:
                continue
            facts = [workers_run_facts(runs[lb]) for lb in labels]
            ok = [f for f in facts if not f["why"] and f.get("dps") is not None]
            bad += [(lb, f["why"]) for lb, f in zip(labels, facts) if f["why"]]

            def m(key):
                vals = [f[key] for f in ok if f.get(key) is not None]
                return statistics.median(vals) if vals else None
            name = peer_name(peer)
            if not_in_effect(facts):
                name += " **(not in effect: one busy loop thread; not a result)**"
                warned.add(peer)
            if not ok:
                sys_txt = "n/a"
            elif peer.startswith("rc"):
                sys_txt = f"{fmt_sys(m('sys_info'))} (perf {fmt_sys(m('sys_perf'))})"
            else:
                sys_txt = fmt_sys(m("sys_perf"))
            th = threads_text(ok[0]["threads"]) if ok else "n/a"
            dps = fmt_num(m("dps")) if ok else "**INVALID**"
            behind = [f for f in ok if f.get("behind")]
            if behind:
                dps += (f" (behind the fixed rate in {len(behind)} run(s): "
                        f"{fmt_num(min(f['pps'] for f in behind))} msg/s)")
            out.append(f"| {name} | {len(ok)} of {len(facts)} | {dps} | {fmt_num(m('cpu_s'), 2)} "
                       f"| {fmt_pct(m('cpu_pct'))} | {fmt_num(m('ns'))} | {sys_txt} | {th} | "
                       f"{fmt_pct(m('bench_pct'))} | {fmt_pct(m('sub_pct'))} | "
                       f"{fmt_pct(m('others_pct'))} |")
            c = runs[labels[0]]["cmd"]
            cmds += [f"# {peer_name(peer)}", c["server_cmd"] + " &", c["bench_cmd"]]
        out.append("")
        if bad:
            out += ["INVALID runs (left out of the medians):", ""]
            out += [f"- `{lb}`: {why}" for lb, why in bad]
            out.append("")
        out += ["<details><summary>exact commands (run 1; port and PID differ per run)"
                "</summary>", "", "```sh"] + cmds + ["```", "", "</details>", ""]
    if warned:
        out += [f"**Warning:** {', '.join(peer_name(p) for p in sorted(warned))} ran with at "
                "most one busy loop thread: this build accepts `--workers` but does not run "
                "several workers yet. Those rows test the script; do not publish them as "
                "results.", ""]
    out.append("Columns: *server CPU* is the server's CPU over the window's wall time (100% = "
               "one core); *bench CPU* is the whole bench process, *bench sub-thread* its one "
               "subscriber thread (near 100% it, not the server, sets the pace); *others' CPU* "
               "is what everything else on the machine used over the whole bench run (other "
               "users' builds and tests, and these scripts' probes): /proc/stat's busy time "
               "less the server's and the bench's, in % of one core. Where it is high the run "
               "had less than the cores it was meant to share.")
    return "\n".join(out) + "\n"


def first_meta(path):
    """The first line of a results file as a "meta" record ({} when it is not one)."""
    try:
        with open(path) as f:
            rec = json.loads(f.readline())
    except (OSError, ValueError):
        return {}
    return rec if isinstance(rec, dict) and rec.get("kind") == "meta" else {}


def main(argv):
    md = os.path.join(ROOT, "BENCHMARKS.md")
    path = None
    make_chart = True
    i = 0
    if argv[:1] == ["--workers-line"] and len(argv) == 3:
        workers_line(argv[1], argv[2])
        return 0
    if argv[:1] == ["--workers"]:
        if len(argv) > 1:
            wpath = argv[1]
        else:
            rdir = os.path.join(ROOT, "bench", "results")
            files = [os.path.join(rdir, f) for f in os.listdir(rdir)
                     if f.endswith("-workers.jsonl")] if os.path.isdir(rdir) else []
            if not files:
                sys.stderr.write("report.py: no bench/results/*-workers.jsonl; run "
                                 "bench/workers.sh first\n")
                return 1
            wpath = max(files, key=os.path.getmtime)
        sys.stdout.write(workers_report(os.path.abspath(wpath)))
        return 0
    while i < len(argv):
        a = argv[i]
        if a == "--md":
            md = argv[i + 1]
            i += 1
        elif a == "--no-chart":
            make_chart = False
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            path = a
        i += 1
    if path is None:
        rdir = os.path.join(ROOT, "bench", "results")
        # Only bench/run.sh's files: tick-sweep.sh and workers.sh write there too.
        files = [os.path.join(rdir, f) for f in os.listdir(rdir) if f.endswith(".jsonl")] \
            if os.path.isdir(rdir) else []
        files = [f for f in files if first_meta(f).get("command", "").startswith("bench/run.sh")]
        if not files:
            sys.stderr.write("report.py: no bench/run.sh file in bench/results/*.jsonl; "
                             "run bench/run.sh first\n")
            return 1
        path = max(files, key=os.path.getmtime)
    path = os.path.abspath(path)
    section = build_section(path, make_chart)
    text = open(md).read() if os.path.exists(md) else \
        "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + "\n\n" + BEGIN + "\n" + END + "\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(md, "w") as f:
        f.write(head + BEGIN + "\n" + section + END + tail)
    print(f"report.py: wrote {os.path.relpath(md)} from {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
