#!/usr/bin/env python3
"""Interpreter round trips, side by side in one run: xinterp against CPython's own PEP 734
interpreters (3.13's test.support.interpreters; on 3.12, which has none, its low-level
_xxsubinterpreters module) and multiprocessing (a spawn pool of one worker).

Each case runs --runs times; a run times --loops operations and records the mean per operation.
Reported: median, min and stdev over runs, and each other implementation against xinterp with a
Mann-Whitney U test. Also the RSS kept per create+close cycle.

usage: python -m xinterp.bench.interp [--runs N] [--quick] [--json PATH] [--markdown]
"""
import gc
import multiprocessing
import os
import sys
import time

import xinterp

import os

from .helpers import cpu_task, mul, noop
from .stats import cli


class _LowLevel312:
    """CPython 3.12's own sub-interpreters through its low-level _xxsubinterpreters module (3.12
    ships no PEP 734 module; the interpreters-pep-734 backport needs 3.13's _interpreters).
    No call(): 3.12 cannot call a function in another interpreter."""

    class Interpreter:
        def __init__(self):
            import _xxsubinterpreters
            self._mod = _xxsubinterpreters
            self.id = _xxsubinterpreters.create(isolated=True)

        def exec(self, source):
            self._mod.run_string(self.id, source)

        def close(self):
            self._mod.destroy(self.id)

    create = Interpreter


def cpython_interpreters():
    """CPython's own interpreters on this Python, or None."""
    if sys.version_info >= (3, 13):
        from test.support import interpreters  # 3.12's is the older PEP 554 draft
        return interpreters, 'CPython test.support.interpreters'
    try:
        import _xxsubinterpreters  # noqa: F401
        return _LowLevel312, 'CPython _xxsubinterpreters'
    except ImportError:
        return None, None


def rss_kib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def timed(fn, loops):
    t0 = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - t0) / loops


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


def measure(name, impl, make_op, runs, loops, results):
    """make_op() -> (op, cleanup)."""
    progress(f'  {name}: {impl} ({runs} runs x {loops})')
    op, cleanup = make_op()
    try:
        op()  # warm up
        samples = [timed(op, loops) for _ in range(runs)]
    finally:
        cleanup()
    results.append({'case': name, 'impl': impl, 'unit': 's/op', 'samples': samples,
                    'higher_is_better': False})


def create_close_op(mod):
    def op():
        mod.create().close()
    return op, lambda: None


def exec_op(mod):
    interp = mod.create()
    return (lambda: interp.exec('pass')), interp.close


def call_op(mod, fn, *args):
    interp = mod.create()
    return (lambda: interp.call(fn, *args)), interp.close


def pool_op(fn, *args):
    pool = multiprocessing.get_context('spawn').Pool(1)
    return (lambda: pool.apply(fn, args)), pool.terminate


def rss_per_cycle(mod, cycles):
    for _ in range(5):
        mod.create().close()
    gc.collect()
    before = rss_kib()
    for _ in range(cycles):
        mod.create().close()
    gc.collect()
    return (rss_kib() - before) / cycles


def run(runs=15, quick=False):
    """Runs every case; returns (results, notes)."""
    runs = 3 if quick else runs
    scale = 0.05 if quick else 1.0
    n_create, n_round = max(2, int(20 * scale)), max(10, int(2000 * scale))

    cpy, cpy_name = cpython_interpreters()
    impls = [('xinterp', xinterp)]
    if cpy is not None:
        impls.append((cpy_name, cpy))
    progress(f'interpreters, Python {sys.version.split()[0]}; comparing: '
             + ', '.join(n for n, _ in impls) + ', multiprocessing (spawn pool)')
    results = []
    for name, mod in impls:
        measure('create + close', name, lambda: create_close_op(mod), runs, n_create, results)
    for name, mod in impls:
        measure('exec("pass")', name, lambda: exec_op(mod), runs, n_round, results)
    for name, mod in impls:
        if hasattr(mod.Interpreter, 'call'):
            measure('call(noop)', name, lambda: call_op(mod, noop), runs, n_round, results)
    measure('call(noop)', 'multiprocessing Pool(1).apply', lambda: pool_op(noop), runs,
            n_round // 4, results)
    # Only xinterp (and multiprocessing) pass arguments and return results.
    measure('call(mul, 6, 7) -> 42', 'xinterp', lambda: call_op(xinterp, mul, 6, 7), runs,
            n_round, results)
    measure('call(mul, 6, 7) -> 42', 'multiprocessing Pool(1).apply',
            lambda: pool_op(mul, 6, 7), runs, n_round // 4, results)

    # Start-up: a ready interpreter from the warm pool, against creating one.
    from xinterp import pool

    def acquire_release():
        pool.release(pool.acquire())

    measure('acquire from warm pool', 'xinterp', lambda: (acquire_release, lambda: None),
            runs, n_round, results)

    # Parallel speed-up of the executor on CPU-bound pure Python, start-up included (a new
    # executor each run, over the warm pool), against the same tasks one after another.
    workers = os.cpu_count() or 2
    task_n = max(20_000, int(2_000_000 * scale))
    tasks = [task_n] * (2 * workers)
    with xinterp.InterpreterPoolExecutor(workers) as ex:  # warm the pool
        list(ex.map(cpu_task, [1000] * workers))

    def speedup(make_pool):
        t0 = time.perf_counter()
        for n in tasks:
            cpu_task(n)
        serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        with make_pool() as ex:
            list(ex.map(cpu_task, tasks))
        return serial / (time.perf_counter() - t0)

    def sample(name, make_pool):
        progress(f'  executor speed-up: {name} ({runs} runs)')
        results.append({'case': f'executor speed-up, {workers} workers', 'impl': name,
                        'unit': 'x', 'samples': [speedup(make_pool) for _ in range(runs)],
                        'higher_is_better': True})

    import concurrent.futures
    sample('xinterp', lambda: xinterp.InterpreterPoolExecutor(workers))
    sample('multiprocessing ProcessPoolExecutor (spawn)',
           lambda: concurrent.futures.ProcessPoolExecutor(
               workers, mp_context=multiprocessing.get_context('spawn')))

    notes = []
    cycles = max(5, int(100 * scale))
    for name, mod in impls:
        progress(f'  RSS kept per create+close: {name} ({cycles} cycles)')
        notes.append(f'RSS kept per create+close cycle, {name}: '
                     f'{rss_per_cycle(mod, cycles):.0f} KiB')
    return results, notes


def main(argv=None):
    return cli('python -m xinterp.bench.interp', __doc__, run, 15, argv)


if __name__ == '__main__':
    sys.exit(main())
