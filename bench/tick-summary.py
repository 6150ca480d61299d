#!/usr/bin/env python3
"""tick-summary.py -- medians of a bench/tick-sweep.sh results file, and issue 13's targets.

Usage: bench/tick-summary.py bench/results/<date>-<HHMM>-tick.jsonl

Reads the RESULT lines tick-sweep.sh wrote (label "<scenario>/<server>"; the k-th line of a
label is round k), leaves out every invalid run (lost, gaps, duplicates, reorders, misrouted or
undelivered messages: such a run never counts towards a target), and prints:
  - per scenario and server: valid runs, median deliveries/s, server CPU ns per delivery,
    p50 and p99 latency;
  - issue 13's targets for the adaptive default, on the medians and in each round ("in one run
    beside Redis"): A and C at most 1.15x the best fixed tick-us and at most 0.45x (A) / 0.5x (C)
    of Redis's CPU per delivery; D at most 0.5x Redis's; D1k p50 at most no accumulation's p50 +
    50 us and p99 at most Redis's.
A target whose runs are missing or invalid prints as "no valid data", never as met.

SPDX-License-Identifier: BSD-3-Clause
"""

import json
import statistics
import sys

BAD = ("lost", "gaps", "dups", "reorders", "misrouted")


def load(path):
    rounds = {}  # (scenario, server) -> [result or None (invalid)] in file order
    with open(path) as f:
        for line in f:
            if not line.startswith("RESULT "):
                continue
            d = json.loads(line[len("RESULT "):])
            sc, server = d["label"].split("/", 1)
            bad = [k for k in BAD if d.get(k)]
            if d.get("expected") is not None and d.get("deliveries") != d["expected"]:
                bad.append("undelivered")
            d["invalid"] = bad
            rounds.setdefault((sc, server), []).append(d)
    return rounds


def ns(d):
    return d["cpu_s_per_million"] * 1000


def median(rows, key):
    vals = [key(d) for d in rows if not d["invalid"]]
    return statistics.median(vals) if vals else None


def fixed_servers(rounds, sc):
    return sorted(s for (c, s) in rounds if c == sc and s.startswith("uring tick-us"))


def check_targets(rounds, get, sc_present):
    """get(scenario, server, key) -> value or None. Returns [(target, ok or None, detail)]."""
    out = []

    def ratio(a, b):
        return a / b if a is not None and b else None

    for sc, vs_redis in (("A", 0.45), ("C", 0.5)):
        if sc not in sc_present:
            continue
        dflt = get(sc, "uring adaptive (default)", ns)
        fixed = [(get(sc, s, ns), s) for s in fixed_servers(rounds, sc)]
        fixed = [f for f in fixed if f[0] is not None]
        best = min(fixed) if fixed else (None, "")
        r = ratio(dflt, best[0])
        out.append(("%s default <= 1.15x best fixed" % sc, None if r is None else r <= 1.15,
                    "n/a" if r is None else "%.0f / %.0f (%s) = %.2fx" % (dflt, best[0],
                                                                         best[1], r)))
        red = get(sc, "redis", ns)
        r = ratio(dflt, red)
        out.append(("%s default <= %.2fx Redis" % (sc, vs_redis),
                    None if r is None else r <= vs_redis,
                    "n/a" if r is None else "%.0f / %.0f = %.2fx" % (dflt, red, r)))
    if "D" in sc_present:
        dflt, red = get("D", "uring adaptive (default)", ns), get("D", "redis", ns)
        r = ratio(dflt, red)
        out.append(("D default <= 0.5x Redis", None if r is None else r <= 0.5,
                    "n/a" if r is None else "%.0f / %.0f = %.2fx" % (dflt, red, r)))
    if "D1k" in sc_present:
        p50 = get("D1k", "uring adaptive (default)", lambda d: d["lat_p50_us"])
        p50n = get("D1k", "uring no accumulation", lambda d: d["lat_p50_us"])
        ok = None if p50 is None or p50n is None else p50 <= p50n + 50
        out.append(("D1k p50 <= no accumulation + 50 us", ok,
                    "n/a" if ok is None else "%.0f vs %.0f" % (p50, p50n)))
        p99 = get("D1k", "uring adaptive (default)", lambda d: d["lat_p99_us"])
        p99r = get("D1k", "redis", lambda d: d["lat_p99_us"])
        ok = None if p99 is None or p99r is None else p99 <= p99r
        out.append(("D1k p99 <= Redis p99", ok,
                    "n/a" if ok is None else "%.0f vs %.0f" % (p99, p99r)))
    return out


def word(ok):
    return "no valid data" if ok is None else ("met" if ok else "MISSED")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench/tick-summary.py FILE.jsonl")
    rounds = load(sys.argv[1])
    if not rounds:
        sys.exit("%s: no RESULT lines" % sys.argv[1])
    scen = []
    for sc, _ in rounds:
        if sc not in scen:
            scen.append(sc)
    nround = max(len(v) for v in rounds.values())

    print("Medians of %d round(s), %s; invalid runs left out:" % (nround, sys.argv[1]))
    print()
    print("| scenario | server | valid runs | deliveries/s | server CPU ns/delivery | p50 µs "
          "| p99 µs |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (sc, server), rows in rounds.items():
        valid = [d for d in rows if not d["invalid"]]
        if not valid:
            print("| %s | %s | 0 of %d | INVALID | | | |" % (sc, server, len(rows)))
            continue
        print("| %s | %s | %d of %d | %.2f M/s | %.0f | %.0f | %.0f |" % (
            sc, server, len(valid), len(rows),
            median(rows, lambda d: d["deliveries_per_sec"]) / 1e6, median(rows, ns),
            median(rows, lambda d: d["lat_p50_us"]), median(rows, lambda d: d["lat_p99_us"])))

    def on_medians(sc, server, key):
        rows = rounds.get((sc, server))
        return median(rows, key) if rows else None

    def in_round(k):
        def get(sc, server, key):
            rows = rounds.get((sc, server))
            if not rows or k >= len(rows) or rows[k]["invalid"]:
                return None
            return key(rows[k])
        return get

    med = check_targets(rounds, on_medians, scen)
    per = [check_targets(rounds, in_round(k), scen) for k in range(nround)]
    print()
    print("Issue 13's targets for the default (on the medians; then how many rounds met it):")
    print()
    print("| target | on the medians | rounds met |")
    print("|---|---|---:|")
    for i, (name, ok, detail) in enumerate(med):
        met = sum(1 for p in per if p[i][1])
        valid = sum(1 for p in per if p[i][1] is not None)
        print("| %s | %s: %s | %d of %d |" % (name, word(ok), detail, met, valid))


if __name__ == "__main__":
    main()
