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
from pathlib import Path

# The statistics live in the Python package (xinterp.bench.stats); loaded by path so that this
# script runs with any Python 3, xinterp installed or not.
def _load_stats():
    import importlib.util
    path = Path(__file__).resolve().parents[2] / 'python' / 'xinterp' / 'bench' / 'stats.py'
    spec = importlib.util.spec_from_file_location('xinterp_bench_stats', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


mann_whitney_p = _load_stats().mann_whitney_p


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
