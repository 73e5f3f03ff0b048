"""InterpreterPoolExecutor stops running tasks with Interpreter.interrupt(): a task cancelled
through asyncio or Future.cancel(), every task running at shutdown(cancel_futures=True) and
at exit is interrupted (asyncio.CancelledError raised in it) instead of waited for, and the
worker's interpreter runs its next task as usual (no stale interrupt)."""

import asyncio
import concurrent.futures
import random
import threading

import pytest

import xinterp
from xinterp import pool
from conftest import run_script
from executor_tasks import (count_to, interpreter_id, spin_forever, spin_then_swallow,
                            spin_until_interrupted)

CANCELLED = 'asyncio.exceptions.CancelledError'
WAIT = 60  # a bound for a hung test, never a timing expectation


def spin(ex):
    """Submits a spinning task, returns (future, report queue) once it runs."""
    started, report = xinterp.create_queue(), xinterp.create_queue()
    f = ex.submit(spin_until_interrupted, started, report)
    assert started.get(timeout=WAIT) == 1
    return f, report


def assert_worker_runs_normally(ex, interp_id):
    # The same worker (max_workers=1), the same interpreter, running bytecode for a while:
    # an interrupt left behind would stop it.
    assert ex.submit(interpreter_id).result(timeout=WAIT) == interp_id
    assert ex.submit(count_to, 300_000).result(timeout=WAIT) == sum(range(300_000))


def test_cancel_of_a_running_task_interrupts_it():
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        interp_id = ex.submit(interpreter_id).result(timeout=WAIT)
        f, report = spin(ex)
        assert f.cancel() is False  # as any running Future: not cancelled yet
        done, _ = concurrent.futures.wait([f], timeout=WAIT)
        assert f in done
        assert f.cancelled()
        with pytest.raises(concurrent.futures.CancelledError):
            f.result()
        assert report.get(timeout=WAIT) == CANCELLED
        assert f.cancel() is True  # once cancelled, as any Future
        assert_worker_runs_normally(ex, interp_id)


def test_cancelled_running_future_tells_waiters_and_callbacks():
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        f, _ = spin(ex)
        seen = []
        f.add_done_callback(lambda fut: seen.append(fut.cancelled()))
        result = []
        waiter = threading.Thread(target=lambda: result.append(
            list(concurrent.futures.as_completed([f], timeout=WAIT))))
        waiter.start()
        f.cancel()
        waiter.join(WAIT)
        assert result == [[f]]
        assert seen == [True]


def test_task_that_catches_the_interrupt_keeps_its_result():
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        started = xinterp.create_queue()
        f = ex.submit(spin_then_swallow, started)
        started.get(timeout=WAIT)
        assert f.cancel() is False
        assert f.result(timeout=WAIT) == 'caught CancelledError'
        assert not f.cancelled()


def test_cancel_of_a_pending_or_finished_task_is_standard():
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        interp_id = ex.submit(interpreter_id).result(timeout=WAIT)
        done = ex.submit(count_to, 10)
        assert done.result(timeout=WAIT) == 45
        assert done.cancel() is False and not done.cancelled()
        f, report = spin(ex)
        pending = ex.submit(count_to, 10)
        assert pending.cancel() is True and pending.cancelled()
        f.cancel()
        assert report.get(timeout=WAIT) == CANCELLED
        assert_worker_runs_normally(ex, interp_id)


def test_asyncio_cancellation_interrupts_run_in_executor():
    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        interp_id = ex.submit(interpreter_id).result(timeout=WAIT)
        started, report = xinterp.create_queue(), xinterp.create_queue()

        async def main():
            loop = asyncio.get_running_loop()
            task = asyncio.ensure_future(
                loop.run_in_executor(ex, spin_until_interrupted, started, report))
            await asyncio.to_thread(started.get, timeout=WAIT)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The same through a timeout, once the task runs (it never ends: the timeout fires).
            fut = loop.run_in_executor(ex, spin_until_interrupted, started, report)
            await asyncio.to_thread(started.get, timeout=WAIT)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(fut, 0.01)
            return await loop.run_in_executor(ex, interpreter_id)

        assert asyncio.run(main()) == interp_id
        assert report.get(timeout=WAIT) == CANCELLED
        assert report.get(timeout=WAIT) == CANCELLED
        assert_worker_runs_normally(ex, interp_id)


def test_shutdown_cancel_futures_interrupts_running_tasks():
    ex = xinterp.InterpreterPoolExecutor(max_workers=2)
    running = [spin(ex) for _ in range(2)]
    pending = ex.submit(count_to, 10)
    returned = threading.Event()
    t = threading.Thread(target=lambda: (ex.shutdown(wait=True, cancel_futures=True),
                                         returned.set()))
    t.start()
    t.join(WAIT)
    assert returned.is_set()  # it did not wait for tasks that never end
    assert pending.cancelled()
    for f, report in running:
        assert f.cancelled()
        assert report.get_nowait() == CANCELLED
    # The workers gave their interpreters back to the warm pool, clean.
    interp = pool.acquire()
    try:
        assert interp.call(count_to, 300_000) == sum(range(300_000))
    finally:
        pool.release(interp)


def test_shutdown_without_cancel_futures_still_waits():
    ex = xinterp.InterpreterPoolExecutor(max_workers=1)
    started = xinterp.create_queue()
    f = ex.submit(spin_then_swallow, started)
    started.get(timeout=WAIT)
    g = ex.submit(count_to, 10)
    ex.shutdown(wait=False)
    assert not f.done() and not g.cancelled()
    f.cancel()  # ends the spin (it catches the interrupt and returns)
    assert f.result(timeout=WAIT) == 'caught CancelledError'
    assert g.result(timeout=WAIT) == 45
    ex.shutdown(wait=True)


def test_cancel_storm_never_hits_another_task():
    # Cancels at arbitrary moments (pending, starting, running, ending): every future ends
    # cancelled or with its own result, never with a CancelledError exception (an interrupt
    # that reached a task it was not meant for).
    rng = random.Random(15)
    with xinterp.InterpreterPoolExecutor(max_workers=2) as ex:
        futures = []
        for i in range(300):
            futures.append((i, ex.submit(count_to, rng.randrange(1, 20_000))))
            if rng.random() < 0.5:
                rng.choice(futures)[1].cancel()
        for i, f in futures:
            concurrent.futures.wait([f], timeout=WAIT)
            assert f.done()
            if not f.cancelled():
                assert f.exception() is None, (i, repr(f.exception()))
        ids = {ex.submit(interpreter_id).result(timeout=WAIT) for _ in range(8)}
        for _ in range(4):
            assert ex.submit(count_to, 300_000).result(timeout=WAIT) == sum(range(300_000))
    assert len(ids) <= 2


EXIT_SCRIPT = '''
import sys
sys.path.insert(0, {helpers!r})
import xinterp
from executor_tasks import spin_until_interrupted, count_to

kept = xinterp.InterpreterPoolExecutor(max_workers=1)
dropped = xinterp.InterpreterPoolExecutor(max_workers=1)
started, report = xinterp.create_queue(), xinterp.create_queue()
f = kept.submit(spin_until_interrupted, started, report)
g = dropped.submit(spin_until_interrupted, started, report)
started.get(timeout=60); started.get(timeout=60)
pending = kept.submit(print, 'a pending task ran', flush=True)
del dropped, g  # collected without shutdown(): its worker still runs the task
import gc; gc.collect()
import atexit
def after():  # atexit runs after threading's exit callbacks (and the workers' join)
    print('kept future cancelled:', f.cancelled(), 'pending cancelled:', pending.cancelled())
    print('reports:', sorted([report.get_nowait(), report.get_nowait()]))
    print('done', flush=True)
atexit.register(after)
'''


def test_exit_interrupts_running_tasks_quietly():
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    proc = run_script(EXIT_SCRIPT.format(helpers=here), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == '', proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines == ['kept future cancelled: True pending cancelled: True',
                     f'reports: {[CANCELLED, CANCELLED]}', 'done'], proc.stdout


def test_cancel_while_the_arguments_are_pickled_returns_without_waiting_for_the_run():
    # The worker has taken the task but is still pickling its argument: nothing runs yet to
    # interrupt. cancel() (maybe on an event loop's thread) must not wait for the run to begin:
    # here it cannot begin before cancel() returned (go_on), so a waiting cancel() would leave
    # the pickling to time out.
    encoding, go_on = threading.Event(), threading.Event()
    waited = []

    class PickledSlowly:
        def __reduce__(self):
            encoding.set()
            waited.append(go_on.wait(WAIT))
            return (int, (5,))

    with xinterp.InterpreterPoolExecutor(max_workers=1) as ex:
        ex.submit(int, 1).result(timeout=WAIT)
        f = ex.submit(spin_forever, PickledSlowly())
        assert encoding.wait(WAIT)
        assert f.cancel() is False
        go_on.set()
        with pytest.raises(concurrent.futures.CancelledError):
            f.result(timeout=WAIT)
    assert waited and all(waited), waited
