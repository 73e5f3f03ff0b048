"""InterpreterPoolExecutor as CPython 3.14's (issue 14, item 6): a ThreadPoolExecutor subclass,
map(buffersize=), task exceptions re-raised as themselves, initializer failures logged and the
pool broken, NotShareableError for what cannot be sent, 3.14's defaults and names, and workers
that end when the executor is dropped."""

import asyncio
import concurrent.futures
import gc
import inspect
import itertools
import logging
import os
import pathlib
import threading

import pytest

import xinterp
from xinterp import pool
from conftest import eventually, parked_getters, run_script
from shared_helpers import identity, mul, wait_for_item

TESTS_DIR = str(pathlib.Path(__file__).parent)


# --- functions the workers run (by reference: this module is importable there) ----------------

def fail(exctype, msg=None):
    raise exctype(msg)


def current_interp_id():
    return xinterp.get_current().id


class TaskError(Exception):
    """An exception type of the caller's own, with state beyond args."""

    def __init__(self, msg, code=0):
        super().__init__(msg)
        self.code = code

    def __reduce__(self):
        return (type(self), (self.args[0], self.code))


def fail_with_task_error(msg, code):
    raise TaskError(msg, code)


class UnpicklableError(Exception):
    def __reduce__(self):
        raise TypeError('this exception does not pickle')


def fail_unpicklable():
    raise UnpicklableError('stays there')


class NoUnpickleError(Exception):
    """Pickles, but will not unpickle (its __init__ wants two arguments, args holds one)."""

    def __init__(self, a, b):
        super().__init__(f'{a}/{b}')


def fail_no_unpickle():
    raise NoUnpickleError('x', 'y')


def fail_init():
    raise RuntimeError('init failed')


class Counting:
    """An iterable that counts how far map() has read it."""

    def __init__(self, n=None):
        self.taken = 0
        self.n = n

    def __iter__(self):
        for i in itertools.count() if self.n is None else range(self.n):
            self.taken += 1
            yield i


# --- the class -----------------------------------------------------------------------------------

def test_is_a_thread_pool_executor_with_314s_signature():
    assert issubclass(xinterp.InterpreterPoolExecutor, concurrent.futures.ThreadPoolExecutor)
    params = list(inspect.signature(xinterp.InterpreterPoolExecutor).parameters)
    assert params == ['max_workers', 'thread_name_prefix', 'initializer', 'initargs']
    assert issubclass(pool.BrokenInterpreterPool, concurrent.futures.thread.BrokenThreadPool)
    assert issubclass(pool.BrokenInterpreterPool, concurrent.futures.BrokenExecutor)


def test_asyncio_takes_it_as_the_default_executor():
    main_id = xinterp.get_current().id

    async def run():
        loop = asyncio.get_running_loop()
        ex = xinterp.InterpreterPoolExecutor(max_workers=1)
        loop.set_default_executor(ex)  # TypeError for anything not a ThreadPoolExecutor
        first = await loop.run_in_executor(None, current_interp_id)
        second = await loop.run_in_executor(ex, mul, 6, 7)
        return first, second

    interp_id, product = asyncio.run(run())  # shuts the default executor down at the end
    assert interp_id != main_id
    assert product == 42


def test_default_max_workers_is_314s():
    count = getattr(os, 'process_cpu_count', None)
    cpus = count() if count is not None else len(os.sched_getaffinity(0))
    with xinterp.InterpreterPoolExecutor() as ex:
        assert ex._max_workers == min(32, (cpus or 1) + 4)


def test_thread_names():
    with xinterp.InterpreterPoolExecutor(max_workers=2) as ex:
        assert ex._thread_name_prefix.startswith('InterpreterPoolExecutor-')
        assert ex.submit(mul, 1, 1).result(timeout=60) == 1
        assert {t.name for t in ex._threads} <= {f'{ex._thread_name_prefix}_{n}' for n in (0, 1)}
    with xinterp.InterpreterPoolExecutor(max_workers=1, thread_name_prefix='crunch') as ex:
        ex.submit(mul, 1, 1).result(timeout=60)
        assert [t.name for t in ex._threads] == ['crunch_0']


def test_scripts_are_refused():
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        with pytest.raises(TypeError, match='scripts not supported'):
            ex.submit('x = 1')
    with pytest.raises(TypeError, match='scripts not supported'):
        xinterp.InterpreterPoolExecutor(initializer='x = 1')


# --- task exceptions -----------------------------------------------------------------------------

@pytest.mark.parametrize('exctype', [Exception, KeyError, ValueError, ZeroDivisionError])
def test_task_exception_is_reraised_as_itself(exctype):
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        with pytest.raises(exctype) as info:
            ex.submit(fail, exctype, 'spam').result(timeout=60)
    exc = info.value
    assert type(exc) is exctype
    assert exc.args == ('spam',)
    cause = exc.__cause__
    assert type(cause) is xinterp.ExecutionFailed
    for attr in ('__name__', '__qualname__', '__module__'):
        assert getattr(cause.excinfo.type, attr) == getattr(exctype, attr)
    assert cause.excinfo.msg == str(exctype('spam'))


def test_task_exception_of_a_user_type_keeps_its_state():
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        f = ex.submit(fail_with_task_error, 'bad row', 7)
        exc = f.exception(timeout=60)
        assert type(exc) is TaskError and str(exc) == 'bad row' and exc.code == 7
        assert isinstance(exc.__cause__, xinterp.ExecutionFailed)
        assert ex.submit(mul, 2, 3).result(timeout=60) == 6  # the worker lives on


def test_task_exception_that_cannot_come_back_raises_execution_failed():
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        # Does not pickle: the worker interpreter reports it on stderr; ExecutionFailed here.
        with pytest.raises(xinterp.ExecutionFailed, match='UnpicklableError: stays there'):
            ex.submit(fail_unpicklable).result(timeout=60)
        # Pickles but does not unpickle here: ExecutionFailed too, the reason as its context.
        with pytest.raises(xinterp.ExecutionFailed, match='NoUnpickleError: x/y') as info:
            ex.submit(fail_no_unpickle).result(timeout=60)
        assert info.value.__context__ is not None
        assert ex.submit(mul, 2, 3).result(timeout=60) == 6


# --- what cannot be sent -------------------------------------------------------------------------

def test_unshareable_arguments_fail_the_future_with_not_shareable_error():
    spam = True

    def closure():
        return spam

    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        f = ex.submit(identity, threading.Lock())  # submit() takes it, as 3.14's does
        with pytest.raises(xinterp.NotShareableError):
            f.result(timeout=60)
        with pytest.raises(xinterp.NotShareableError):
            ex.submit(closure).result(timeout=60)
        assert ex.submit(identity, 5).result(timeout=60) == 5


# --- initializer ---------------------------------------------------------------------------------

def test_initializer_failure_is_logged_and_breaks_the_pool(caplog):
    ex = xinterp.InterpreterPoolExecutor(max_workers=1, initializer=fail_init)
    with caplog.at_level(logging.CRITICAL, logger='concurrent.futures'):
        f = ex.submit(mul, 1, 2)
        with pytest.raises(pool.BrokenInterpreterPool, match='initializer failed'):
            f.result(timeout=60)
    with pytest.raises(pool.BrokenInterpreterPool):
        ex.submit(mul, 1, 2)
    ex.shutdown()
    [record] = [r for r in caplog.records if r.name == 'concurrent.futures']
    assert record.getMessage() == 'Exception in initializer:'
    exc = record.exc_info[1]
    assert type(exc) is RuntimeError and str(exc) == 'init failed'
    assert isinstance(exc.__cause__, xinterp.ExecutionFailed)


@pytest.mark.parametrize('initializer, initargs, fragment', [
    pytest.param(42, (), "TypeError: 'int' object is not callable", id='not-callable'),
    pytest.param(identity, 1, 'TypeError', id='initargs-not-a-tuple'),
    pytest.param(lambda: threading.Lock(), (threading.Lock(),), 'NotShareableError',
                 id='unshareable-initargs'),
])
def test_bad_initializer_breaks_the_pool_when_a_worker_starts(caplog, initializer, initargs,
                                                              fragment):
    # 3.14 takes any non-str initializer at construction; a worker that cannot run it logs why.
    ex = xinterp.InterpreterPoolExecutor(max_workers=1, initializer=initializer,
                                         initargs=initargs)
    with caplog.at_level(logging.CRITICAL, logger='concurrent.futures'):
        f = ex.submit(mul, 1, 2)
        with pytest.raises(pool.BrokenInterpreterPool):
            f.result(timeout=60)
    ex.shutdown()
    assert fragment in caplog.text


def test_initializer_failure_goes_to_stderr_as_in_314():
    # With logging not configured, the concurrent.futures logger's record reaches stderr.
    proc = run_script(f'''
        import sys
        sys.path.insert(0, {TESTS_DIR!r})
        import xinterp
        from xinterp import pool
        from shared_helpers import mul
        from test_pool_314 import fail_init
        ex = xinterp.InterpreterPoolExecutor(max_workers=1, initializer=fail_init)
        try:
            ex.submit(mul, 1, 2).result(timeout=60)
        except pool.BrokenInterpreterPool as e:
            print('broken:', e)
        ex.shutdown()
        print('done')
    ''')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        'broken: A thread initializer failed, the thread pool is not usable anymore', 'done']
    for fragment in ('Exception in initializer:', 'ExecutionFailed: RuntimeError: init failed',
                     'Uncaught in the interpreter:',
                     'The above exception was the direct cause of the following exception:',
                     'RuntimeError: init failed'):
        assert fragment in proc.stderr, proc.stderr


# --- map(buffersize=) ----------------------------------------------------------------------------

@pytest.mark.parametrize('buffersize', ['foo', 2.0, [1]])
def test_map_buffersize_type(buffersize):
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        with pytest.raises(TypeError, match='buffersize must be an integer or None'):
            ex.map(identity, range(4), buffersize=buffersize)


@pytest.mark.parametrize('buffersize', [0, -1, -2**70])
def test_map_buffersize_value(buffersize):
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        with pytest.raises(ValueError, match='buffersize must be None or > 0'):
            ex.map(identity, range(4), buffersize=buffersize)


def test_map_buffersize_reads_ahead_only_that_far():
    source = Counting()  # endless
    with xinterp.InterpreterPoolExecutor(max_workers=2) as ex:
        results = ex.map(mul, source, itertools.repeat(10), buffersize=3)
        assert source.taken == 3  # submitted at once: buffersize tasks, no more
        assert next(results) == 0
        assert source.taken == 4  # one more for each result taken
        assert [next(results) for _ in range(5)] == [10, 20, 30, 40, 50]
        assert source.taken == 9
        results.close()  # the buffered tasks not started are cancelled


def test_map_buffersize_keeps_order_and_finishes():
    with xinterp.InterpreterPoolExecutor(max_workers=2) as ex:
        assert list(ex.map(mul, range(20), range(20), buffersize=4)) == [i * i for i in range(20)]
        assert list(ex.map(mul, range(5), buffersize=True)) == [0, 2, 4, 6, 8]  # bool is int
        assert list(ex.map(mul, [], buffersize=2)) == []
        assert list(ex.map(mul, range(3), timeout=60, chunksize=5)) == [0, 2, 4]


def test_map_reraises_task_exception_as_itself():
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        with pytest.raises(KeyError):
            list(ex.map(fail, [KeyError], ['k'], buffersize=1))


# --- shutdown and dropping -----------------------------------------------------------------------

def test_shutdown_waits_for_workers_and_returns_their_interpreters():
    ex = xinterp.InterpreterPoolExecutor(max_workers=2)
    assert list(ex.map(mul, range(6), range(6))) == [i * i for i in range(6)]
    threads = list(ex._threads)
    ex.shutdown(wait=True)
    assert not any(t.is_alive() for t in threads)
    assert pool.idle_count() >= 1  # back in the warm pool, not closed
    with pytest.raises(RuntimeError, match='after shutdown'):
        ex.submit(mul, 1, 1)
    ex.shutdown()  # again: harmless


def test_shutdown_without_wait_lets_running_work_finish():
    gate = xinterp.create_queue()
    ex = xinterp.InterpreterPoolExecutor(max_workers=1)
    busy = ex.submit(wait_for_item, gate)
    assert eventually(lambda: parked_getters(gate) >= 1)
    queued = ex.submit(mul, 1, 1)
    ex.shutdown(wait=False)  # no cancel_futures: queued work still runs
    gate.put('open')
    assert busy.result(timeout=60) == 'open'
    assert queued.result(timeout=60) == 1
    for t in list(ex._threads):
        t.join(timeout=60)
        assert not t.is_alive()


def test_workers_of_a_dropped_executor_end():
    ex = xinterp.InterpreterPoolExecutor(max_workers=2)
    assert ex.submit(mul, 3, 3).result(timeout=60) == 9
    assert ex.submit(mul, 4, 4).result(timeout=60) == 16
    threads = list(ex._threads)
    assert threads
    del ex  # no shutdown(): the workers hold it weakly and end once it is collected
    gc.collect()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()


def test_executor_left_running_at_exit_is_joined_cleanly():
    proc = run_script(f'''
        import sys
        sys.path.insert(0, {TESTS_DIR!r})
        import xinterp
        from shared_helpers import mul
        ex = xinterp.InterpreterPoolExecutor(max_workers=2)
        print(ex.submit(mul, 6, 7).result(timeout=60))
        keep = ex  # never shut down: joined at interpreter exit, as ThreadPoolExecutor's
        print('done')
    ''')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ['42', 'done']
    assert 'Traceback' not in proc.stderr and 'Fatal' not in proc.stderr, proc.stderr
