"""Bad input to the warm pool and InterpreterPoolExecutor: release() of what is not a pooled
interpreter, releasing twice, interpreters closed behind the pool's back, executor arguments,
bad work and use after shutdown (see bad_input_helpers)."""

import threading

import pytest

import xinterp
from xinterp import pool
from bad_input_helpers import DEEP_TUPLE, check
from shared_helpers import identity


@pytest.mark.parametrize('obj', [None, 1, 'x', xinterp.Interpreter, object()],
                         ids=['None', 'int', 'str', 'class', 'object'])
def test_pool_release_refuses_non_interpreters(obj):
    check(lambda: pool.release(obj), TypeError, 'expects an xinterp.Interpreter')


def test_pool_release_refuses_queues(q1):
    check(lambda: pool.release(q1), TypeError, 'expects an xinterp.Interpreter')


def test_pool_release_twice(monkeypatch):
    monkeypatch.setattr(pool, 'max_idle', pool.idle_count() + 4)  # room: release pools it
    i = pool.acquire()
    pool.release(i)
    idle = pool.idle_count()
    check(lambda: pool.release(i), ValueError, 'already released')
    assert pool.idle_count() == idle
    a = pool.acquire()
    b = pool.acquire()
    assert a is not b  # never handed out twice
    pool.release(a)
    pool.release(b)


def test_pool_release_of_a_closed_interpreter_is_not_pooled(dead):
    idle = pool.idle_count()
    pool.release(dead)
    assert pool.idle_count() == idle


def test_pool_skips_an_idle_interpreter_closed_behind_its_back(monkeypatch):
    monkeypatch.setattr(pool, 'max_idle', pool.idle_count() + 4)
    i = pool.acquire()
    pool.release(i)
    i.close()  # not through the pool
    j = pool.acquire()
    try:
        assert j is not i and j.call(identity, 1) == 1
    finally:
        pool.release(j)


def test_pool_acquire_takes_no_arguments():
    check(lambda: pool.acquire(1), TypeError, 'positional argument')


EXECUTOR_CASES = [
    pytest.param({'max_workers': 0}, ValueError, 'greater than 0', id='max_workers=0'),
    pytest.param({'max_workers': -1}, ValueError, 'greater than 0', id='max_workers=-1'),
    pytest.param({'max_workers': -2**70}, ValueError, 'greater than 0', id='max_workers=-2**70'),
    pytest.param({'max_workers': 'x'}, TypeError, 'max_workers must be an int',
                 id='max_workers=str'),
    pytest.param({'max_workers': 1.5}, TypeError, 'max_workers must be an int',
                 id='max_workers=float'),
    pytest.param({'initializer': 'pass'}, TypeError, 'scripts not supported',
                 id='initializer=str'),
    pytest.param({'max_workers': 1, 'shared': {}}, TypeError, 'unexpected keyword',
                 id='shared'),  # 3.14's draft had shared=; the final one does not
    pytest.param({'foo': 1}, TypeError, 'unexpected keyword', id='unknown-keyword'),
]


@pytest.mark.parametrize('kwargs, exc, fragment', EXECUTOR_CASES)
def test_executor_refuses(kwargs, exc, fragment):
    check(lambda: xinterp.InterpreterPoolExecutor(**kwargs), exc, fragment)


def test_executor_with_a_huge_max_workers_starts_only_what_it_needs():
    with xinterp.InterpreterPoolExecutor(max_workers=2**70) as ex:
        assert ex.submit(identity, 3).result(timeout=30) == 3
        assert len(ex._threads) == 1


def test_executor_bad_work_goes_to_the_future():
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        f = ex.submit(None)
        assert isinstance(f.exception(timeout=30), TypeError)
        f = ex.submit(identity, threading.Lock())
        assert isinstance(f.exception(timeout=30), xinterp.NotShareableError)
        f = ex.submit(identity, DEEP_TUPLE)
        assert isinstance(f.exception(timeout=30), xinterp.NotShareableError)
        assert ex.submit(identity, 1).result(timeout=30) == 1  # the worker lives on


def test_executor_with_bad_initargs_is_broken():
    ex = xinterp.InterpreterPoolExecutor(max_workers=1, initializer=identity, initargs=1)
    f = ex.submit(identity, 1)
    check(lambda: f.result(timeout=30), pool.BrokenInterpreterPool, 'initializer failed')
    ex.shutdown()


def test_executor_after_shutdown():
    ex = xinterp.InterpreterPoolExecutor(max_workers=1)
    assert ex.submit(identity, 1).result(timeout=30) == 1
    ex.shutdown()
    check(lambda: ex.submit(identity, 1), RuntimeError, 'after shutdown')
    check(lambda: ex.map(identity, [1]), RuntimeError, 'after shutdown')
    ex.shutdown()  # twice: harmless
