"""Bad input around the process's lifetime, each in a fresh process: use of every kind of
object after xinterp shut down, exit after a sweep of misuse (objects closed under their
Python objects, views and items left at exit), and a long sweep of failing calls that must
leak no memory (see bad_input_helpers)."""

import pytest

from bad_input_helpers import assert_clean_exit
from conftest import run_script


def test_use_after_shutdown_does_not_crash():
    proc = run_script('''
        import xinterp
        from xinterp import _xinterp, channels
        i = xinterp.create()
        q = xinterp.create_queue()
        q.put(memoryview(bytearray(8)))
        r, s = channels.create()
        _xinterp._shutdown()
        def expect(exc, fragment, fn):
            try:
                fn()
            except exc as e:
                assert fragment in str(e), (fragment, e)
            else:
                raise AssertionError(f'no {exc.__name__}')
        expect(xinterp.InterpreterNotFoundError, 'unrecognized interpreter ID', lambda: i.exec('1'))
        expect(xinterp.QueueError, 'is closed', q.get_nowait)
        expect(xinterp.QueueError, 'is closed', lambda: q.put(1))
        expect(xinterp.InterpreterError, 'shut down', xinterp.create)
        expect(channels.ChannelClosedError, 'is closed', lambda: s.send_nowait(1))
        expect(channels.ChannelClosedError, 'is closed', r.recv_nowait)
        _xinterp._shutdown()  # twice
        print('done')
    ''')
    assert_clean_exit(proc)


def test_exit_after_a_sweep_of_bad_input_is_clean():
    proc = run_script('''
        import gc, xinterp
        from xinterp import _xinterp, channels, pool, queues
        i = xinterp.create()
        j = xinterp.create()
        _xinterp.decref(j.id)                       # j closed under its object
        q = xinterp.create_queue()
        q.put(memoryview(bytearray(8)))
        _xinterp.queue_release(q.id)                # q closed under its object
        q2 = xinterp.create_queue()
        i.prepare_main(q2=q2)
        i.exec('q2.put(memoryview(bytearray(b"held by main")))')
        view = q2.get()                             # main keeps a view of i's buffer at exit
        r, s = channels.create()
        s.send_nowait(memoryview(bytearray(4)))                 # left in an open channel at exit
        for bad in (-1, 2**64, 'x', None):
            for fn in (xinterp.Interpreter, queues.Queue, _xinterp.decref, _xinterp.destroy):
                try:
                    fn(bad)
                except (TypeError, ValueError, OverflowError):
                    pass
        try:
            pool.release(j)
        except Exception as e:
            raise AssertionError(e)
        print('done')
    ''')
    assert_clean_exit(proc)


@pytest.mark.memory
def test_failing_calls_leak_nothing():
    proc = run_script('''
        import gc, threading, xinterp
        from xinterp import _xinterp, channels, pool, queues

        def rss_kib():
            with open('/proc/self/status') as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        return int(line.split()[1])

        i = xinterp.create()
        dead = xinterp.create()
        dead.close()
        q = xinterp.create_queue(maxsize=1)
        q.put(1)
        r, s = channels.create()
        lock = threading.Lock()
        deep = ()
        for _ in range(50_000):
            deep = (deep,)
        cases = [
            lambda: xinterp.Interpreter(-1),
            lambda: xinterp.Interpreter(2**64),
            lambda: xinterp.Interpreter(2**63 - 1),
            lambda: queues.Queue(2**63 - 1),
            lambda: dead.exec('pass'),
            lambda: dead.close(),
            lambda: i.exec(None),
            lambda: i.exec('x = ('),
            lambda: i.exec('raise ValueError("x" * 1000)'),
            lambda: i.exec('a\\0b'),
            lambda: i.call(len, 1),
            lambda: i.call(len, lock),
            lambda: i.call(len, deep),
            lambda: i.prepare_main({1: 2}),
            lambda: i.close(timeout=float('nan')),
            lambda: q.put(2, timeout=0),
            lambda: q.put(2, timeout=-1),
            lambda: q.put(lock),
            lambda: q.put(2, unbounditems='x'),
            lambda: xinterp.create_queue(1.5),
            lambda: xinterp.create_queue(unbounditems='x'),
            lambda: r.recv(timeout=0),
            lambda: r.recv_nowait(),
            lambda: s.send(1, timeout=0),
            lambda: s.send_buffer(1),
            lambda: channels.RecvChannel(2**63 - 1).recv_nowait(),
            lambda: pool.release(None),
            lambda: xinterp.InterpreterPoolExecutor(max_workers=0),
            lambda: _xinterp.channel_send(r.id, 1, 7, False, None, False),
        ]
        kinds = set()

        def sweep():
            for fn in cases:
                try:
                    fn()
                except Exception as e:
                    kinds.add(type(e).__name__)
                else:
                    raise AssertionError(f'no exception from case {cases.index(fn)}')

        for _ in range(300):
            sweep()
        gc.collect()
        rss0 = rss_kib()
        for _ in range(2000):
            sweep()
        gc.collect()
        grown = rss_kib() - rss0
        assert 'SystemError' not in kinds, kinds
        print('grown_kib', grown)
        assert grown < 4 * 1024, grown
        stats = xinterp.runtime_stats()
        assert stats['queues'] == 1 and stats['interpreters_alive'] == 2, stats
        assert all(v['borrows'] == 0 for v in xinterp.stats().values())
        i.close()
        print('done')
    ''', timeout=600)
    assert_clean_exit(proc)
