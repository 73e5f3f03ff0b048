#!/usr/bin/env python3
"""Summarise xinterp_core_bench JSON: per workload, every implementation with median, min and
stdev over repetitions, and xinterp against each baseline with a Mann-Whitney U test.

usage: compare.py BENCH.json [--markdown]
"""
import json
import math
import re
import statistics
import sys
from collections import defaultdict


def mann_whitney_p(a, b):
    """Two-sided p-value of the Mann-Whitney U test (normal approximation, tie-corrected)."""
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return float("nan")
    ranked = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(ranked)
    ties = 0.0
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        r = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = r
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, ranked) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    mu = n1 * n2 / 2
    n = n1 + n2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    if sigma == 0:
        return 1.0
    z = (abs(u1 - mu) - 0.5) / sigma
    return math.erfc(max(z, 0) / math.sqrt(2))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        data = json.load(f)
    # workload -> impl -> list of (value, unit, higher_is_better)
    runs = defaultdict(lambda: defaultdict(list))
    errors = {}
    refused = defaultdict(list)
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        name = b["run_name"] if "run_name" in b else b["name"]
        m = re.match(r"([a-z_]+)/([a-z0-9_]+)(.*)", name)
        if not m:
            continue
        workload = m.group(1) + re.sub(r"/(manual_time|iterations:\d+)", "", m.group(3))
        impl = m.group(2)
        if b.get("error_occurred"):
            errors[(workload, impl)] = b.get("error_message", "error")
            continue
        if b.get("refused"):
            refused[(workload, impl)].append(b["refused"])
        if "items_per_second" in b:
            runs[workload][impl].append((b["items_per_second"] / 1e6, "M/s", True))
        else:
            scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3}.get(b.get("time_unit", "ns"), 1)
            runs[workload][impl].append((b["real_time"] * scale, "us", False))
    workloads = sorted(set(runs) | {w for w, _ in errors})
    md = "--markdown" in sys.argv
    header = ["workload", "impl", "median", "min", "stdev", "n", "vs xinterp (p)"]
    rows = []
    for w in workloads:
        impls = runs.get(w, {})
        ours = [v for v, _, _ in impls.get("xinterp", [])]
        for impl in ["xinterp", "mutex_deque", "fixed300"]:
            if (w, impl) in errors:
                rows.append([w, impl, "-", "-", "-", "-", errors[(w, impl)][:60]])
                continue
            vals = impls.get(impl)
            if not vals:
                continue
            xs = [v for v, _, _ in vals]
            unit, hib = vals[0][1], vals[0][2]
            best = max(xs) if hib else min(xs)
            verdict = ""
            if impl != "xinterp" and ours:
                p = mann_whitney_p(ours, xs)
                ratio = (statistics.median(ours) / statistics.median(xs) if hib
                         else statistics.median(xs) / statistics.median(ours))
                sig = "significant" if p < 0.01 else "not significant"
                verdict = f"xinterp {ratio:.2f}x {'faster' if ratio >= 1 else 'slower'}, p={p:.1e} ({sig})"
            if refused.get((w, impl)):
                verdict += f"; refused {statistics.median(refused[(w, impl)]):.0%} of posts"
            rows.append([w, impl, f"{statistics.median(xs):.3f} {unit}",
                         f"{best:.3f} {unit}", f"{statistics.stdev(xs) if len(xs) > 1 else 0:.3f}",
                         str(len(xs)), verdict])
    if md:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        for r in [header] + rows:
            print("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)))
    print("\n'min' is the best repetition (highest rate, lowest latency).")


if __name__ == "__main__":
    main()
