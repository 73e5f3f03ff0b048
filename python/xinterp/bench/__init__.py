"""``python -m xinterp bench``: the benchmark suite, one table.

Runs the interpreter round trips (``xinterp.bench.interp``) and the queue and buffer cases
(``xinterp.bench.queues``): xinterp beside CPython's own sub-interpreter modules where this
Python has them (3.13: ``test.support.interpreters`` and its queues; 3.12: ``_xxsubinterpreters``)
and beside ``multiprocessing``, each case repeated; median, best and stdev over runs, and for
every comparison a ratio with a Mann-Whitney U p-value and a significance verdict. Writes
``results.json``, ``results.md`` and, if matplotlib is installed, ``results.png`` into --out.
With --hotpath, also the no-hot-path-cost check (``xinterp.bench.hotpath``, pyperf).
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

from . import interp, queues
from .stats import format_table, summary


def chart(results, path):
    """A bar chart: per case, each implementation's median relative to xinterp (log scale)."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cases, rel = [], {}
    by_case = {}
    for r in results:
        by_case.setdefault(r['case'], []).append(r)
    for case, rows in by_case.items():
        ours = next((r for r in rows if r['impl'] == 'xinterp'), None)
        if ours is None or len(rows) < 2:
            continue
        om = summary(ours['samples'])[0]
        cases.append(case)
        for r in rows:
            med = summary(r['samples'])[0]
            high = r.get('higher_is_better', False)
            # > 1: that implementation is slower than xinterp by this factor.
            factor = (om / med if high else med / om) if med and om else math.nan
            rel.setdefault(r['impl'], {})[case] = factor
    if not cases:
        return False
    impls = list(rel)
    width = 0.8 / len(impls)
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(cases)), 5))
    for k, name in enumerate(impls):
        xs = [i + k * width for i in range(len(cases))]
        ys = [rel[name].get(c, math.nan) for c in cases]
        ax.bar(xs, ys, width, label=name)
    ax.set_yscale('log')
    ax.axhline(1.0, color='black', linewidth=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cases))])
    ax.set_xticklabels(cases, rotation=30, ha='right', fontsize=8)
    ax.set_ylabel('times slower than xinterp (median; log scale)')
    ax.set_title(f'xinterp bench, Python {sys.version.split()[0]}')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(prog='python -m xinterp bench', description=__doc__.splitlines()[0])
    ap.add_argument('--runs', type=int, default=10, help='repetitions of each case (default 10)')
    ap.add_argument('--quick', action='store_true', help='3 short runs of each case (smoke test)')
    ap.add_argument('--out', type=Path, default=Path('xinterp-bench'),
                    help='folder for results.json, results.md, results.png')
    ap.add_argument('--only', choices=['interp', 'queues'], help='one part of the suite')
    ap.add_argument('--hotpath', action='store_true',
                    help='also the no-hot-path-cost check (pyperf; about 2 minutes)')
    args = ap.parse_args(argv)
    if args.runs < 2:
        ap.error('--runs must be at least 2 (spread needs two samples)')
    t0 = time.perf_counter()
    results, notes = [], []
    if args.only in (None, 'interp'):
        r, n = interp.run(args.runs, args.quick)
        results += r
        notes += n
    if args.only in (None, 'queues'):
        r, n = queues.run(args.runs, args.quick)
        results += r
        notes += n
    print(format_table(results))
    print()
    print('\n'.join(notes))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'results.json').write_text(json.dumps(
        {'python': sys.version, 'results': results, 'notes': notes}, indent=1))
    (args.out / 'results.md').write_text(
        f'Python {sys.version.split()[0]}\n\n' + format_table(results, markdown=True) + '\n\n'
        + '\n'.join(f'- {n}' for n in notes) + '\n')
    wrote_png = chart(results, args.out / 'results.png')
    if args.hotpath:
        from . import hotpath
        hotpath.main(['--fast', '--json', str(args.out / 'hotpath.json')])
    print(f'\nwrote {args.out}/results.json, results.md'
          + (', results.png' if wrote_png else ' (no PNG: pip install matplotlib)')
          + f' in {time.perf_counter() - t0:.0f} s', file=sys.stderr)
    return 0
