"""The warm interpreter pool and InterpreterPoolExecutor."""

import concurrent.futures
import math

import pytest

import xinterp
from xinterp import pool
from conftest import eventually, parked_getters
from shared_helpers import evaluate, handshake, mul, wait_for_item


def set_marker(value):
    import __main__
    __main__.marker = value


def read_marker():
    import __main__
    return getattr(__main__, 'marker', None)


def fail_init():
    raise RuntimeError('init failed')


def test_submit_and_map():
    with xinterp.InterpreterPoolExecutor(max_workers=2) as ex:
        assert isinstance(ex, concurrent.futures.Executor)
        assert ex.submit(mul, 6, 7).result() == 42
        assert ex.submit(mul, 2, c=5).result() == 20
        assert list(ex.map(math.factorial, range(8))) == [math.factorial(i) for i in range(8)]
        assert ex.submit(lambda: 'by code').result() == 'by code'


def test_exceptions_surface_as_themselves_caused_by_execution_failed():
    # CPython 3.14: the task's own exception, with ExecutionFailed as its __cause__.
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        f = ex.submit(math.sqrt, -1)
        with pytest.raises(ValueError) as info:
            f.result()
        assert isinstance(info.value.__cause__, xinterp.ExecutionFailed)
        assert info.value.__cause__.excinfo.type.__name__ == 'ValueError'
        assert ex.submit(mul, 1, 1).result() == 1  # the worker lives on


def test_initializer_runs_in_each_worker_interpreter():
    with xinterp.InterpreterPoolExecutor(max_workers=2, initializer=set_marker,
                                         initargs=('ready',)) as ex:
        results = list(ex.map(lambda _: __import__('__main__').marker, range(6)))
    assert results == ['ready'] * 6


def test_failing_initializer_breaks_the_executor():
    ex = xinterp.InterpreterPoolExecutor(max_workers=1, initializer=fail_init)
    f = ex.submit(mul, 1, 2)
    with pytest.raises(pool.BrokenInterpreterPool):
        f.result(timeout=60)
    with pytest.raises(pool.BrokenInterpreterPool):
        ex.submit(mul, 1, 2)
    ex.shutdown()


def test_shutdown_refuses_new_work_and_can_cancel():
    gate = xinterp.create_queue()
    ex = xinterp.InterpreterPoolExecutor(max_workers=1)
    busy = ex.submit(wait_for_item, gate)  # the only worker is busy until the gate opens
    assert eventually(lambda: parked_getters(gate) >= 1)
    queued = [ex.submit(mul, i, 1) for i in range(5)]
    ex.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)  # none could have started
    with pytest.raises(RuntimeError):
        ex.submit(mul, 1, 1)
    ex.shutdown(wait=True)  # the gate never opens: the running task is interrupted in its wait
    assert busy.cancelled()  # (unlike ThreadPoolExecutor; see test_pool_interrupt.py)


def test_bad_arguments():
    with pytest.raises(ValueError):
        xinterp.InterpreterPoolExecutor(max_workers=0)
    with pytest.raises(TypeError, match='scripts not supported'):
        xinterp.InterpreterPoolExecutor(initializer='x = 1')
    # As in CPython 3.14, a non-callable initializer is not refused here: it breaks the pool
    # when a worker runs it (see test_pool_314.py).


def test_interpreters_are_reused_not_recreated():
    with xinterp.InterpreterPoolExecutor(max_workers=2) as ex:
        list(ex.map(mul, range(4), range(4)))  # warm: two interpreters in the pool now
    created = xinterp.runtime_stats()['interpreters_created']
    for _ in range(20):
        with xinterp.InterpreterPoolExecutor(max_workers=2) as ex:
            list(ex.map(mul, range(4), range(4)))
    assert xinterp.runtime_stats()['interpreters_created'] == created


def test_pool_clears_main_globals_between_users():
    i = pool.acquire()
    i.exec('leftover = 1\nimport json')
    pool.release(i)
    j = pool.acquire()
    try:
        assert j.call(evaluate, "'leftover' in globals()") is False
        assert j.call(evaluate, "__import__('sys').modules.get('json') is not None")  # warm
    finally:
        pool.release(j)


def test_executor_runs_tasks_in_parallel():
    # Two tasks hand-shake: each announces itself, then waits for the other's announcement.
    # Run one after the other (one worker, or one interpreter at a time), the first would wait
    # until its timeout and fail. (How much faster two workers are is for the benchmarks.)
    qa, qb = xinterp.create_queue(), xinterp.create_queue()
    with xinterp.InterpreterPoolExecutor(max_workers=2) as ex:
        fa = ex.submit(handshake, qa, qb, 'a')
        fb = ex.submit(handshake, qb, qa, 'b')
        assert (fa.result(timeout=120), fb.result(timeout=120)) == ('b', 'a')


def rss_kib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


@pytest.mark.memory
def test_thousand_cycles_through_the_pool_keep_memory_flat():
    # CPython keeps ~1.5 MiB of every interpreter it closes; through the pool nothing is
    # created or closed, so 1000 cycles stay flat.
    for _ in range(3):
        pool.release(pool.acquire())
    created = xinterp.runtime_stats()['interpreters_created']
    rss0 = rss_kib()
    for k in range(1000):
        i = pool.acquire()
        i.exec(f'value = {k}')
        pool.release(i)
    assert xinterp.runtime_stats()['interpreters_created'] == created
    assert rss_kib() - rss0 < 8 * 1024  # 1000 create+close cycles would keep ~1.5 GiB
