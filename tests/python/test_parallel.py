"""Calls release the caller's GIL and every interpreter has its own: two interpreters run Python
in parallel. This is a check of parallelism, not a speed target."""

import os
import threading
import time

import pytest

import xinterp
from shared_helpers import cpu_work


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason='needs two cores')
def test_two_interpreters_run_python_in_parallel():
    a, b = xinterp.create(), xinterp.create()
    try:
        n = 300_000
        a.call(cpu_work, 1000)  # warm up both
        b.call(cpu_work, 1000)
        # Each alone, then both at once on two threads; best of three to shrug off noise.
        solo = []
        both = []
        for _ in range(3):
            t0 = time.perf_counter()
            a.call(cpu_work, n)
            t1 = time.perf_counter()
            b.call(cpu_work, n)
            t2 = time.perf_counter()
            solo.append((t1 - t0) + (t2 - t1))
            threads = [threading.Thread(target=i.call, args=(cpu_work, n)) for i in (a, b)]
            t3 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            both.append(time.perf_counter() - t3)
        # Serialised execution would take about the sum; parallel about half of it.
        assert min(both) < 0.8 * min(solo), (solo, both)
    finally:
        a.close()
        b.close()


def test_caller_interpreter_keeps_running_during_a_call():
    a = xinterp.create()
    try:
        ticks = 0
        stop = threading.Event()

        def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                time.sleep(0.001)

        t = threading.Thread(target=ticker)
        t.start()
        from shared_helpers import busy_until
        a.call(busy_until, 0.3)  # the main GIL is released meanwhile
        stop.set()
        t.join()
        assert ticks > 20
    finally:
        a.close()
