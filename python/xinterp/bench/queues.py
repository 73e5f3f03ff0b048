#!/usr/bin/env python3
"""Queues and buffers between interpreters, side by side in one run: xinterp against CPython's
own interpreter queues (3.13: test.support.interpreters.queues; 3.12 has none usable from
Python) and multiprocessing.Queue.

Cases (each repeated --runs times; median, min, stdev over runs; Mann-Whitney p vs xinterp):
  small items main->sub     items/s, one producer (main) and one consumer (a sub-interpreter)
  1 MiB items main->sub     items/s (bytes: copied by every implementation)
  blocking round trip       p50 and p99 of a ping-pong between main and a sub, in µs
  64 MiB / 1 GiB hand-over  put + get of a memoryview of a bytearray (zero-copy), µs
  releases to idle owner    10^6 lent buffers received and dropped in main while their owner
                            runs no code: time until all are released in the owner, and lost

usage: python -m xinterp.bench.queues [--runs N] [--quick] [--json PATH] [--markdown]
"""
import multiprocessing
import statistics
import sys
import threading
import time

import xinterp

from .stats import cli


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


class XinterpImpl:
    name = 'xinterp'

    def create(self):
        return xinterp.create()

    def queue(self):
        return xinterp.create_queue()

    def channel(self):
        from xinterp import channels
        return channels.create()

    def start(self, interp, source):
        """Runs source in interp on a new thread; returns the thread."""
        t = threading.Thread(target=interp.exec, args=(source,))
        t.start()
        return t


class CPythonImpl:
    name = 'CPython 3.13 queues'

    def __init__(self):
        from test.support import interpreters
        from test.support.interpreters import channels, queues
        self.interpreters, self.queues, self.channels = interpreters, queues, channels

    def create(self):
        interp = self.interpreters.create()
        # 3.13 can only receive a Queue or channel end once its module is imported there.
        interp.exec('from test.support.interpreters import queues, channels')
        return interp

    def channel(self):
        return self.channels.create()

    def queue(self):
        # syncobj=True: share shareable items (ints, bytes, memoryviews) natively instead of
        # pickling them, CPython's fastest mode.
        return self.queues.create(syncobj=True)

    def start(self, interp, source):
        t = threading.Thread(target=interp.exec, args=(source,))
        t.start()
        return t


def impls():
    out = [XinterpImpl()]
    if sys.version_info >= (3, 13):
        try:
            out.append(CPythonImpl())
        except ImportError:
            pass
    return out


CONSUME = 'for _ in range(n): q.get()\ndone.put(1)\n'
ECHO = 'for _ in range(n): pong.put(ping.get())\n'


def throughput(impl, item, n):
    interp = impl.create()
    q, done = impl.queue(), impl.queue()
    interp.prepare_main(q=q, done=done, n=n)
    t0 = time.perf_counter()
    t = impl.start(interp, CONSUME)
    for _ in range(n):
        q.put(item)
    done.get()
    elapsed = time.perf_counter() - t0
    t.join()
    interp.close()
    return n / elapsed


def mp_consumer(q, done, n):
    for _ in range(n):
        q.get()
    done.put(1)


def mp_throughput(item, n):
    ctx = multiprocessing.get_context('spawn')
    q, done = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=mp_consumer, args=(q, done, n))
    p.start()
    q.put(item)  # the consumer is up once it took the first
    t0 = time.perf_counter()
    for _ in range(n - 1):
        q.put(item)
    done.get()
    elapsed = time.perf_counter() - t0
    p.join()
    return (n - 1) / elapsed


def round_trips(impl, n):
    interp = impl.create()
    ping, pong = impl.queue(), impl.queue()
    interp.prepare_main(ping=ping, pong=pong, n=n)
    t = impl.start(interp, ECHO)
    lat = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        ping.put(i)
        pong.get()
        lat.append((time.perf_counter_ns() - t0) / 1000)
    t.join()
    interp.close()
    lat = lat[n // 10:]  # warm-up
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


CHANNEL_RECV = 'for _ in range(n): r.recv()\n'
CHANNEL_ECHO = 'for _ in range(n): s2.send(r1.recv())\n'


def channel_stream(impl, n):
    """Blocking send (a rendezvous) from main, recv in a sub: items per second."""
    interp = impl.create()
    r, s = impl.channel()
    interp.prepare_main(r=r, n=n)
    t = impl.start(interp, CHANNEL_RECV)
    t0 = time.perf_counter()
    for i in range(n):
        s.send(i)
    elapsed = time.perf_counter() - t0
    t.join()
    interp.close()
    return n / elapsed


def channel_round_trip(impl, n):
    """send on one channel, echoed back on another by a sub: median µs per round trip."""
    interp = impl.create()
    r1, s1 = impl.channel()
    r2, s2 = impl.channel()
    interp.prepare_main(r1=r1, s2=s2, n=n)
    t = impl.start(interp, CHANNEL_ECHO)
    lat = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        s1.send_nowait(i)
        r2.recv()
        lat.append((time.perf_counter_ns() - t0) / 1000)
    t.join()
    interp.close()
    return statistics.median(lat[n // 10:])


def handover(impl, size, n):
    buf = bytearray(size)
    q = impl.queue()
    item = memoryview(buf)  # shared zero-copy by both (a bytearray goes by copy, as in 3.14)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        q.put(item)
        v = q.get()
        samples.append((time.perf_counter_ns() - t0) / 1000)
        del v
    return statistics.median(samples)


def idle_releases(n):
    owner = xinterp.create()
    q = xinterp.create_queue()
    owner.prepare_main(q=q, n=n)
    owner.exec('b = memoryview(bytearray(64))\nfor _ in range(n): q.put(b)\n')
    t0 = time.perf_counter()
    for _ in range(n):
        q.get_nowait().release()
    while xinterp.stats()[owner.id]['borrows']:
        time.sleep(0.0005)
    elapsed = time.perf_counter() - t0
    s = xinterp.stats()[owner.id]
    lost = s['posted'] - (s['run_inline'] + s['run_by_owner'] + s['run_by_housekeeper']
                          + s['run_raw'])
    owner.close()
    return elapsed, lost, s['run_by_housekeeper']


def run(runs=10, quick=False):
    """Runs every case; returns (results, notes)."""
    runs = 3 if quick else runs
    scale = 0.05 if quick else 1.0
    n_small, n_big, n_rt = int(200_000 * scale), int(2_000 * scale), int(20_000 * scale)
    n_release = int(1_000_000 * scale)
    results = []  # {case, impl, unit, samples, higher_is_better}

    def measure(case, impl_name, unit, fn, better_high):
        progress(f'  {case}: {impl_name} ({runs} runs)')
        samples = [fn() for _ in range(runs)]
        results.append({'case': case, 'impl': impl_name, 'unit': unit, 'samples': samples,
                        'higher_is_better': better_high})

    progress(f'queues and buffers, Python {sys.version.split()[0]}')
    for impl in impls():
        measure('small items main->sub', impl.name, 'M items/s',
            lambda: throughput(impl, 7, n_small) / 1e6, True)
    measure('small items main->sub', 'multiprocessing.Queue', 'M items/s',
        lambda: mp_throughput(7, n_small // 4) / 1e6, True)
    mib = b'x' * (1 << 20)
    for impl in impls():
        measure('1 MiB items main->sub', impl.name, 'items/s',
            lambda: throughput(impl, mib, n_big), True)
    measure('1 MiB items main->sub', 'multiprocessing.Queue', 'items/s',
        lambda: mp_throughput(mib, n_big // 4), True)
    for impl in impls():
        rts = []
        # CPython's queues sleep-poll 10 ms per blocking wait: fewer round trips for them.
        n = n_rt if impl.name == 'xinterp' else max(30, n_rt // 100)
        measure('blocking round trip p50', impl.name, 'µs',
            lambda: rts.append(round_trips(impl, n)) or rts[-1][0], False)
        results.append({'case': 'blocking round trip p99', 'impl': impl.name, 'unit': 'µs',
                        'samples': [p99 for _, p99 in rts], 'higher_is_better': False})
    for size, label in ((64 << 20, '64 MiB'), (1 << 30, '1 GiB')):
        for impl in impls():
            measure(f'{label} hand-over (put+get)', impl.name, 'µs',
                lambda: handover(impl, size, 20), False)
    for impl in impls():
        # CPython's channels sleep-poll 10 ms per empty recv: fewer items for them.
        n = max(20, int(20_000 * scale)) if impl.name == 'xinterp' else 20
        name = impl.name.replace('queues', 'channels')
        measure('channel send+recv stream', name, 'items/s',
                lambda: channel_stream(impl, n), True)
        measure('channel round trip p50', name, 'µs',
                lambda: channel_round_trip(impl, n), False)
    rel = []
    measure(f'{n_release} releases to idle owner', 'xinterp', 's',
        lambda: rel.append(idle_releases(n_release)) or rel[-1][0], False)
    lost = sum(r[1] for r in rel)
    by_hk = [r[2] for r in rel]

    notes = [f'releases to an idle owner: {lost} lost over {runs} x {n_release}; run by the '
             f'housekeeper: {sum(by_hk)} of {runs * n_release}']
    return results, notes


def main(argv=None):
    return cli('python -m xinterp.bench.queues', __doc__, run, 10, argv)


if __name__ == '__main__':
    sys.exit(main())
