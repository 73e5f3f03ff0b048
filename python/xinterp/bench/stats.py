"""Statistics shared by xinterp's benchmark reports."""
import math
import statistics


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


def summary(values):
    """(median, min, stdev) of a list of samples."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.median(values), min(values), sd


def fmt_value(value, unit):
    if unit == 's/op':
        return f'{value * 1e3:.2f} ms' if value >= 1e-3 else f'{value * 1e6:.2f} µs'
    return f'{value:.3g} {unit}'


def format_table(results, markdown=False):
    """One row per (case, implementation): median, best, stdev, and each other implementation
    against xinterp: ratio, p-value and a verdict (significant at p < 0.01)."""
    lines = []
    if markdown:
        lines += ['| case | implementation | median | best | stdev | xinterp vs it |',
                  '|---|---|---|---|---|---|']
    cases = {}
    for r in results:
        cases.setdefault(r['case'], []).append(r)
    for case, rows in cases.items():
        ours = next((r for r in rows if r['impl'] == 'xinterp'), None)
        for r in rows:
            high = r.get('higher_is_better', False)
            med, mn, sd = summary(r['samples'])
            best = max(r['samples']) if high else mn
            cmp = ''
            if ours is not None and r is not ours:
                om = summary(ours['samples'])[0]
                ratio = (om / med if high else med / om) if med and om else float('nan')
                p = mann_whitney_p(ours['samples'], r['samples'])
                verdict = 'significant' if p < 0.01 else 'not significant'
                word = f'{ratio:.2f}x better' if ratio >= 1 else f'{1 / ratio:.2f}x worse'
                cmp = f'{word}, p={p:.1e} ({verdict})'
            unit = r['unit']
            cells = [case, r['impl'], fmt_value(med, unit), fmt_value(best, unit),
                     fmt_value(sd, unit), cmp]
            if markdown:
                lines.append('| ' + ' | '.join(cells) + ' |')
            else:
                lines.append(f'{cells[0]:<30} {cells[1]:<34} {cells[2]:>14} {cells[3]:>14} '
                             f'{cells[4]:>12}  {cells[5]}')
    return '\n'.join(lines)


def cli(prog, doc, run, default_runs, argv=None):
    """The command line shared by the suite's parts: --runs, --quick, --json, --markdown."""
    import argparse
    from pathlib import Path
    ap = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    ap.add_argument('--runs', type=int, default=default_runs)
    ap.add_argument('--quick', action='store_true', help='few runs and loops (a smoke test)')
    ap.add_argument('--json', type=Path)
    ap.add_argument('--markdown', action='store_true')
    args = ap.parse_args(argv)
    results, notes = run(args.runs, args.quick)
    report(results, notes, args.markdown, args.json)
    return 0


def report(results, notes, markdown=False, json_path=None):
    """Prints the table and its notes; writes them as JSON too if json_path is given."""
    import json
    import sys
    print(format_table(results, markdown))
    print()
    print('\n'.join(notes))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({'python': sys.version, 'results': results,
                                         'notes': notes}, indent=1))
