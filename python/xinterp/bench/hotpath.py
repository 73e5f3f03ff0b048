"""No hot-path cost: pure-Python benchmarks run with and without xinterp imported and busy.

xinterp adds nothing to CPython's eval loop; its only hook is CPython's own pending-call
mechanism, armed once per burst of releases. This check runs a set of pure-Python kernels
(modelled on pyperformance's nbody, fannkuch, float, richards-style method calls, dict/str
work and generators) under pyperf twice: plainly, and "busy" — xinterp imported, two
interpreters alive, and a background thread lending buffers back and forth so that releases
keep flowing into the main interpreter (through its eval breaker) and into an idle one (through
the housekeeper). It reports every kernel's mean and stdev in both modes and a Mann-Whitney
verdict; the claim holds if no kernel is significantly slower (p < 0.01 and > 2% slower).

    python -m xinterp.bench.hotpath [--fast] [--json PATH]

pyperf must be installed (pip install pyperf).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MODE_ENV = 'XINTERP_HOTPATH_MODE'


# --- kernels ----------------------------------------------------------------------------------

def nbody(steps=2000):
    bodies = [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 39.47],
              [4.84, -1.16, -0.10, 0.60, 2.81, -0.02, 0.037],
              [8.34, 4.12, -0.40, -1.01, 1.82, 0.008, 0.011],
              [12.89, -15.11, -0.22, 1.08, 0.86, -0.01, 0.0017],
              [15.37, -25.91, 0.17, 0.97, 0.59, -0.03, 0.002]]
    pairs = [(bodies[i], bodies[j]) for i in range(5) for j in range(i + 1, 5)]
    for _ in range(steps):
        for b1, b2 in pairs:
            dx, dy, dz = b1[0] - b2[0], b1[1] - b2[1], b1[2] - b2[2]
            mag = 0.01 * (dx * dx + dy * dy + dz * dz) ** -1.5
            m1, m2 = b1[6] * mag, b2[6] * mag
            b1[3] -= dx * m2
            b1[4] -= dy * m2
            b1[5] -= dz * m2
            b2[3] += dx * m1
            b2[4] += dy * m1
            b2[5] += dz * m1
        for b in bodies:
            b[0] += 0.01 * b[3]
            b[1] += 0.01 * b[4]
            b[2] += 0.01 * b[5]
    return bodies[0][0]


def fannkuch(n=8):
    perm1 = list(range(n))
    count = [0] * n
    max_flips = 0
    r = n
    while True:
        while r != 1:
            count[r - 1] = r
            r -= 1
        perm = perm1[:]
        flips = 0
        k = perm[0]
        while k:
            perm[:k + 1] = perm[k::-1]
            flips += 1
            k = perm[0]
        max_flips = max(max_flips, flips)
        while r != n:
            perm1.insert(r, perm1.pop(0))
            count[r] -= 1
            if count[r] > 0:
                break
            r += 1
        else:
            return max_flips


class _Point:
    __slots__ = ('x', 'y', 'z')

    def __init__(self, i):
        self.x = i * 0.5
        self.y = i * 1.5
        self.z = i * 2.5

    def normalize(self):
        n = (self.x * self.x + self.y * self.y + self.z * self.z) ** 0.5 or 1.0
        self.x /= n
        self.y /= n
        self.z /= n
        return self


def float_points(n=20000):
    return sum(_Point(i).normalize().x for i in range(n))


class _Task:
    def __init__(self, prio):
        self.prio = prio
        self.count = 0

    def run(self, other):
        self.count += 1
        return other.step(self.prio)

    def step(self, v):
        return (v * 7 + self.count) % 13


def method_calls(n=60000):
    a, b = _Task(3), _Task(5)
    total = 0
    for _ in range(n):
        total += a.run(b) + b.run(a)
    return total


def dict_str(n=20000):
    d = {}
    for i in range(n):
        k = f'key{i % 997}'
        d[k] = d.get(k, 0) + len(k)
    return ''.join(sorted(d))[:10]


def generators(n=60000):
    def gen(m):
        for i in range(m):
            if i % 3:
                yield i

    return sum(x * 2 for x in gen(n))


KERNELS = [nbody, fannkuch, float_points, method_calls, dict_str, generators]


# --- the busy mode ------------------------------------------------------------------------------

def make_busy():
    """xinterp imported, interpreters alive, releases flowing (kept for the process's life).

    The main interpreter runs no xinterp code while the kernels run: its only extra work is
    what xinterp asks of it, its releases (1 000 a second, posted by another interpreter and
    run at main's eval-breaker safe points). An idle interpreter's releases flow too (10 000 a
    second, run by the housekeeper). The background interpreter mostly sleeps, so the other
    core stays quiet.
    """
    import xinterp

    data = memoryview(bytearray(64))  # a memoryview: lent (a bytearray would be copied)
    from_main, from_idle = xinterp.create_queue(), xinterp.create_queue()
    for _ in range(60_000):
        from_main.put(data)  # lent by main, given back from the borrower
    idle = xinterp.create()
    idle.prepare_main(q=from_idle)
    idle.exec('buf = memoryview(bytearray(64))\nfor _ in range(600_000): q.put(buf)')
    borrower = xinterp.create()
    borrower.prepare_main(a=from_main, b=from_idle)
    import threading
    # A daemon thread: at exit xinterp interrupts its call instead of waiting for it.
    threading.Thread(target=borrower.call, args=(_drop_slowly,), daemon=True).start()
    return idle, borrower, data


def _drop_slowly():
    import time
    import __main__
    a, b = __main__.a, __main__.b
    while True:
        try:
            a.get_nowait().release()
        except Exception:
            return
        for _ in range(10):
            try:
                b.get_nowait().release()
            except Exception:
                pass
        time.sleep(0.001)


def worker_main():
    import pyperf
    runner = pyperf.Runner()
    if os.environ.get(MODE_ENV) == 'busy' and '--worker' in sys.argv:
        globals()['_busy'] = make_busy()
    for fn in KERNELS:
        runner.bench_func(fn.__name__, fn)


# --- the driver ----------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(prog='python -m xinterp.bench.hotpath',
                                 description=__doc__.splitlines()[0])
    ap.add_argument('--fast', action='store_true', help="pyperf --fast (fewer samples)")
    ap.add_argument('--json', type=Path, help='write the comparison as JSON')
    args = ap.parse_args(argv)
    try:
        import pyperf
    except ImportError:
        print('hotpath: needs pyperf (pip install pyperf)', file=sys.stderr)
        return 2
    from .stats import mann_whitney_p

    tmp = Path(tempfile.mkdtemp(prefix='xinterp-hotpath-'))
    suites = {}
    for mode in ('plain', 'busy'):
        out = tmp / f'{mode}.json'
        print(f'hotpath: {mode} run (pyperf{" --fast" if args.fast else ""})', file=sys.stderr,
              flush=True)
        cmd = [sys.executable, '-m', 'xinterp.bench.hotpath', '--worker-script', '-o', str(out),
               f'--inherit-environ={MODE_ENV}', '--quiet']
        if args.fast:
            cmd.append('--fast')
        env = dict(os.environ, **{MODE_ENV: mode})
        subprocess.run(cmd, check=True, env=env)
        suites[mode] = pyperf.BenchmarkSuite.load(str(out))
    rows, worst = [], 'no kernel significantly slower'
    for bench in suites['plain'].get_benchmarks():
        name = bench.get_name()
        a = bench.get_values()
        b = suites['busy'].get_benchmark(name).get_values()
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        p = mann_whitney_p(a, b)
        change = mb / ma - 1
        slower = p < 0.01 and change > 0.02
        if slower:
            worst = 'SLOWER with xinterp busy: ' + name
        rows.append({'kernel': name, 'plain_mean_s': ma, 'plain_stdev_s': bench.stdev(),
                     'busy_mean_s': mb,
                     'busy_stdev_s': suites['busy'].get_benchmark(name).stdev(),
                     'change': change, 'p': p, 'significantly_slower': slower})
    print(f'{"kernel":<14} {"plain":>18} {"xinterp busy":>18} {"change":>8}  p')
    for r in rows:
        print(f'{r["kernel"]:<14} {r["plain_mean_s"] * 1e3:8.2f} ± {r["plain_stdev_s"] * 1e3:5.2f} ms '
              f'{r["busy_mean_s"] * 1e3:8.2f} ± {r["busy_stdev_s"] * 1e3:5.2f} ms '
              f'{r["change"]:+7.1%}  {r["p"]:.1e}' + ('  SLOWER' if r['significantly_slower'] else ''))
    print(f'hotpath: {worst}')
    if args.json:
        args.json.write_text(json.dumps({'python': sys.version, 'kernels': rows,
                                         'verdict': worst}, indent=1))
    return 0 if worst.startswith('no ') else 1


if __name__ == '__main__':
    # pyperf re-runs this file for its worker processes (with --worker).
    if '--worker-script' in sys.argv or '--worker' in sys.argv:
        if '--worker-script' in sys.argv:
            sys.argv.remove('--worker-script')
        worker_main()
    else:
        sys.exit(main())
