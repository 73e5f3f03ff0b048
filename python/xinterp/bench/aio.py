#!/usr/bin/env python3
"""asyncio: awaiting queues and interpreters (issue 15's goals), side by side with
asyncio.to_thread in the same run.

Cases (each repeated --runs times; median, min, stdev over runs):
  fan-in 10k coroutines      10 000 coroutines await aget() on 100 queues; two sub-interpreters
                             put the items: wall time; notes: all received, nothing lost, and the
                             growth of the thread count while they wait
  put -> aget resumes p50/99 a sub-interpreter puts a timestamp once the consumer is parked,
                             the coroutine in main that awaits it resumes: µs; vs
                             `await asyncio.to_thread(q.get)` (its thread parked in get())
  acall round trip           `await interp.acall(noop)` vs `asyncio.to_thread(interp.call, noop)`

usage: python -m xinterp.bench.aio [--runs N] [--quick] [--json PATH] [--markdown]
"""
import asyncio
import os
import statistics
import threading
import time

import xinterp
from xinterp import queues

from .helpers import noop
from .stats import cli

# The producer puts only once the consumer is parked (a coroutine registered as an async
# waiter, or the to_thread worker parked in get()), so that every sample is a real wake-up, not
# an item that was already there when the consumer looked.
PRODUCER = '''
import time
from xinterp import queues
go, out = queues.Queue(GO), queues.Queue(OUT)
def parked():
    return out._handle.async_waiters()[0] if ASYNC else out._handle.info()[3]
while go.get() is not None:
    while not parked():
        pass
    out.put(time.perf_counter_ns())
'''

FILL = '''
from xinterp import queues
for qid in QIDS:
    q = queues.Queue(qid)
    for k in range(PER):
        q.put(qid * 1000000 + k)
'''


def os_threads():
    return len(os.listdir('/proc/self/task'))


async def fan_in(interps, n=10_000, nq=100):
    qs = [queues.create() for _ in range(nq)]
    before = threading.active_count(), os_threads()
    tasks = [asyncio.create_task(qs[k % nq].aget()) for k in range(n)]
    while sum(q._handle.async_waiters()[0] for q in qs) < n:
        await asyncio.sleep(0)
    during = threading.active_count(), os_threads()
    t0 = time.perf_counter()
    per = n // nq
    producers = [threading.Thread(target=interps[j].exec, args=(
        FILL.replace('QIDS', repr([q.id for q in qs[j::2]])).replace('PER', str(per)),))
        for j in range(2)]
    for p in producers:
        p.start()
    got = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    for p in producers:
        p.join()
    ok = sorted(got) == sorted(q.id * 1000000 + k for q in qs for k in range(per))
    return elapsed, ok, (during[0] - before[0], during[1] - before[1])


async def latencies(interp, rounds, use_thread):
    go, out = queues.create(), queues.create()
    t = threading.Thread(target=interp.exec, args=(
        PRODUCER.replace('GO', str(go.id)).replace('OUT', str(out.id))
        .replace('ASYNC', str(not use_thread)),))
    t.start()
    samples = []
    for _ in range(rounds):
        go.put(1)
        if use_thread:
            sent = await asyncio.to_thread(out.get)
        else:
            sent = await out.aget()
        samples.append((time.perf_counter_ns() - sent) / 1e3)
    go.put(None)
    await asyncio.to_thread(t.join)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


async def round_trips(interp, rounds, use_thread):
    t0 = time.perf_counter()
    for _ in range(rounds):
        if use_thread:
            await asyncio.to_thread(interp.call, noop)
        else:
            await interp.acall(noop)
    return (time.perf_counter() - t0) / rounds


def run(runs=5, quick=False):
    runs = 2 if quick else runs
    rounds = 300 if quick else 2000
    interps = [xinterp.create() for _ in range(2)]
    res = {}
    notes = []

    def add(case, impl, unit, value):
        res.setdefault((case, impl, unit), []).append(value)

    growth = []
    try:
        for _ in range(runs):
            async def one():
                elapsed, ok, g = await fan_in(interps)
                add('fan-in 10k coroutines', 'xinterp aget', 's/op', elapsed)
                growth.append(g)
                if not ok:
                    notes.append('fan-in: ITEMS LOST OR DUPLICATED')
                for use_thread, name in ((False, 'xinterp aget'),
                                         (True, 'asyncio.to_thread(q.get)')):
                    p50, p99 = await latencies(interps[0], rounds, use_thread)
                    add('put -> aget resumes p50', name, 'µs', p50)
                    add('put -> aget resumes p99', name, 'µs', p99)
                for use_thread, name in ((False, 'xinterp acall'),
                                         (True, 'asyncio.to_thread(call)')):
                    add('acall round trip', name, 's/op',
                        await round_trips(interps[1], rounds, use_thread))
            asyncio.run(one())
    finally:
        for i in interps:
            i.close()
    results = [{'case': c, 'impl': 'xinterp' if i.startswith('xinterp') else i, 'unit': u,
                'samples': s} for (c, i, u), s in res.items()]
    notes.append('fan-in: thread growth while 10 000 coroutines wait (threading.active_count, '
                 f'/proc/self/task) per run: {growth}; every item received exactly once'
                 + ('' if 'LOST' in ''.join(notes) else ' in every run'))
    notes.append(f'{statistics.median(g[1] for g in growth)} OS threads added (median)')
    return results, notes


def main(argv=None):
    return cli('python -m xinterp.bench.aio', __doc__, run, 5, argv)


if __name__ == '__main__':
    raise SystemExit(main())
