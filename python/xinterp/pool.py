"""A process-wide pool of warm interpreters, and InterpreterPoolExecutor over it.

See InterpreterPoolExecutor for how it follows CPython 3.14's.

Creating an isolated interpreter costs ~8 ms and CPython never gives back ~1.5 MiB of it on
close, so repeated work should reuse interpreters. ``acquire()`` hands out an idle one (or a
new one), ``release()`` takes it back: its ``__main__`` globals are cleared, its imported
modules stay (that is the warmth). At most ``max_idle`` are kept; the rest are closed.
"""

import collections as _collections
import concurrent.futures as _futures
import concurrent.futures.thread as _thread
import itertools as _itertools
import os as _os
import queue as _queue
import threading as _threading
import time as _time
import weakref as _weakref

from . import create as _create, ExecutionFailed, Interpreter as _Interpreter, InterpreterError
from ._executor_task import run_task as _run_task
from .queues import create as _create_queue, QueueEmpty as _QueueEmpty
from ._xinterp import WHENCE_STDLIB as _WHENCE_STDLIB

__all__ = ['acquire', 'release', 'idle_count', 'InterpreterPoolExecutor', 'BrokenInterpreterPool']

_lock = _threading.Lock()
_idle = []
max_idle = 2 * (_os.cpu_count() or 2)

_RESET = ("[globals().pop(_k) for _k in list(globals()) if _k not in "
          "('__name__', '__doc__', '__package__', '__loader__', '__spec__', '__builtins__')]")


# A fork child inherits the parent's idle interpreters as records only: they belong to the
# parent and cannot run here. The child's pool starts empty (and with a fresh lock, which another
# thread of the parent may have held at the fork). The inherited Interpreter objects are kept,
# untouched, rather than dropped: dropping one would try to close an interpreter of the parent.
_inherited = []


def _after_fork_in_child():
    global _lock
    _lock = _threading.Lock()
    _inherited.extend(_idle)
    _idle.clear()


_os.register_at_fork(after_in_child=_after_fork_in_child)


def acquire():
    """An idle pooled interpreter, or a new one."""
    with _lock:
        while _idle:
            interp = _idle.pop()
            try:
                if not interp.is_running():
                    return interp
            except InterpreterError:
                continue  # closed meanwhile
    return _create()


def release(interp):
    """Gives an interpreter back to the pool (its __main__ globals are cleared).

    It must be an Interpreter made by ``xinterp.create()`` (TypeError for anything else,
    ValueError for the main interpreter or one xinterp did not create). Releasing one that is
    already idle in the pool raises ValueError (it would be handed out twice); one that is
    closed, or still running code, is not pooled and no error is raised.
    """
    if not isinstance(interp, _Interpreter):
        raise TypeError(f'release() expects an xinterp.Interpreter, got {type(interp).__name__}')
    if interp._whence != _WHENCE_STDLIB:
        raise ValueError(f'interpreter {interp.id} was not made by xinterp.create(): '
                         'it cannot be pooled')
    with _lock:
        if any(i is interp for i in _idle):
            raise ValueError(f'interpreter {interp.id} was already released to the pool')
    try:
        interp.exec(_RESET)
    except InterpreterError:
        return  # closed or broken: not pooled
    with _lock:
        if any(i is interp for i in _idle):  # released twice concurrently
            raise ValueError(f'interpreter {interp.id} was already released to the pool')
        if len(_idle) < max_idle:
            _idle.append(interp)
            return
    interp.close()


def idle_count():
    with _lock:
        return len(_idle)


def _default_max_workers():
    """CPython 3.14's ThreadPoolExecutor default: min(32, process_cpu_count() + 4)."""
    count = getattr(_os, 'process_cpu_count', None)  # 3.13+
    if count is not None:
        n = count()
    else:  # 3.12: the CPUs this process may run on, as process_cpu_count() reads them
        try:
            n = len(_os.sched_getaffinity(0))
        except (AttributeError, OSError):
            n = _os.cpu_count()
    return min(32, (n or 1) + 4)


# Every InterpreterPoolExecutor not yet collected. At exit, before concurrent.futures joins the
# workers of every executor (threading's atexit callbacks run last registered first, and
# concurrent.futures.thread registered its own when this module imported it), each of them is
# shut down as by shutdown(cancel_futures=True): its running tasks are interrupted, not waited
# for, and the tasks not started are cancelled.
# The workers' contexts are kept apart from their executors: a worker outlives an executor
# dropped without shutdown() until its task ends, and that task is interrupted too.
_live_executors = _weakref.WeakSet()
_live_workers = _weakref.WeakSet()


def _interrupt_executors_at_exit():
    for executor in list(_live_executors):
        executor._stop_at_exit()
    for ctx in list(_live_workers):
        future = ctx.current
        if future is not None:
            future.cancel()


try:
    _threading._register_atexit(_interrupt_executors_at_exit)
except RuntimeError:  # imported while the interpreter shuts down: nothing left to interrupt
    pass


class BrokenInterpreterPool(_thread.BrokenThreadPool):
    """Raised when a worker of an InterpreterPoolExecutor failed initializing."""


_BROKEN_REASON = 'A thread initializer failed, the thread pool is not usable anymore'


def _resolve_task(fn, args, kwargs):
    if isinstance(fn, str):  # 3.14 refuses scripts (at submit(), before anything is queued)
        raise TypeError('scripts not supported')
    return (fn, args, kwargs)


def _cancelled_error():
    # Imported only when a running task is cancelled: asyncio is heavy, and the executor
    # needs it for nothing else.
    import asyncio
    return asyncio.CancelledError


def _is_cancellation(exc):
    """exc is how a task interrupted with asyncio.CancelledError ends: that exception sent back
    as itself; or, interrupted outside the task's own code (while its function or arguments
    were rebuilt in the worker's interpreter, say), the ExecutionFailed naming it."""
    if isinstance(exc, ExecutionFailed):
        t = exc.excinfo.type
        return (getattr(t, '__module__', None), getattr(t, '__qualname__', None)) == \
            ('asyncio.exceptions', 'CancelledError')
    return isinstance(exc, _cancelled_error())


class _TaskFuture(_futures.Future):
    """The future of an InterpreterPoolExecutor task: cancel() also interrupts the task while
    it runs (see InterpreterPoolExecutor)."""

    def __init__(self):
        super().__init__()
        self._worker = None  # the _WorkerContext running its call, while it runs
        self._interrupted = False  # an interrupt was posted to its call

    def cancel(self):
        """Cancels the task if it has not started (True, as any Future). If it is running, it is
        interrupted: asyncio.CancelledError is raised in it at its next bytecode boundary, and
        if that ends it the future ends cancelled; this returns False, as for any running task
        (the future is not cancelled yet when it returns). False once done, True once
        cancelled."""
        if super().cancel():
            return True
        worker = self._worker
        if worker is not None:
            worker.interrupt(self, block=False)
        return False

    def _cancel_running(self):
        """RUNNING -> cancelled, the task having ended by its interrupt: as cancel() of a pending
        future followed by set_running_or_notify_cancel(), waiters and callbacks told."""
        with self._condition:
            if self._state != _futures._base.RUNNING:
                return
            self._state = _futures._base.CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()


class _WorkerContext:
    """One worker's interpreter (from the warm pool), the queue its task exceptions come back
    on, and the future whose call it is running (under `lock`, so that an interrupt reaches
    that task's call and never the next one)."""

    def __init__(self, initdata):
        self.initdata = initdata
        self.interp = None
        self.results = None
        self.lock = _threading.Lock()
        self.current = None

    def interrupt(self, future, block=True):
        """Interrupts the call of future's task if this worker is running it. Between taking
        the task and beginning its run (its arguments being pickled) there is nothing to
        interrupt yet: tried again until the run begins, here (block) or, for Future.cancel(),
        which may be called on an event loop's thread, on a short-lived thread of its own."""
        if not block:
            if self._try_interrupt(future) is None:
                _threading.Thread(target=self.interrupt, args=(future,), daemon=True,
                                  name='InterpreterPoolExecutor interrupt').start()
            return
        while self._try_interrupt(future) is None:
            # The call is about to start (or has just ended) but is not running right now:
            # an interrupt would not be posted. Let the worker thread get on, look again.
            _time.sleep(0.0001)

    def _try_interrupt(self, future):
        """True: posted; False: nothing to do (another task, done, closed, already posted);
        None: the task is this worker's but its run has not begun (or has just ended)."""
        exc = _cancelled_error()
        with self.lock:
            if self.current is not future or future._interrupted:
                return False
            try:
                posted = self.interp.interrupt(exc)
            except InterpreterError:  # closed under us: nothing runs there any more
                return False
            if posted:
                future._interrupted = True
                return True
            return None

    def initialize(self):
        self.interp = acquire()
        try:
            self.results = _create_queue()
            if self.initdata is not None:
                self.run(self.initdata)
        except BaseException:
            self.finalize()
            raise

    def finalize(self):
        interp, self.interp, self.results = self.interp, None, None
        if interp is not None:
            release(interp)

    def run(self, task):
        fn, args, kwargs = task
        try:
            return self.interp.call(_run_task, self.results, fn, args, kwargs or None)
        except ExecutionFailed as wrapper:
            # Its traceback is xinterp's own frames, whose locals hold the results queue: dropped,
            # so that a future's exception does not keep the queue alive.
            wrapper.__traceback__ = None
            # run_task put the exception before raising it on, so it is here already (unless
            # the call failed before run_task ran, e.g. an argument would not unpickle there).
            try:
                exc = self.results.get_nowait()
            except _QueueEmpty:
                raise wrapper from None
            except Exception:  # noqa: BLE001 - it would not unpickle here: report the wrapper
                raise wrapper  # (its __context__ says why)
            if exc is None:  # it could not cross (reported on stderr there)
                raise
            raise exc from wrapper
        except BaseException as exc:
            # What call() refused before anything ran (NotShareableError, ...): raised as it is,
            # without xinterp's frames, for the same reason as above.
            raise exc.with_traceback(None)


def _worker(executor_ref, ctx, work_queue):
    # CPython 3.14's ThreadPoolExecutor worker loop, over a _WorkerContext. It holds the
    # executor only by a weak reference, so an executor dropped without shutdown() is collected
    # and its weakref callback wakes the workers, which then end.
    try:
        ctx.initialize()
    except BaseException:
        _futures._base.LOGGER.critical('Exception in initializer:', exc_info=True)
        executor = executor_ref()
        if executor is not None:
            executor._initializer_failed()
        return
    try:
        while True:
            try:
                item = work_queue.get_nowait()
            except _queue.Empty:
                executor = executor_ref()
                if executor is not None:
                    executor._idle_semaphore.release()
                del executor
                item = work_queue.get(block=True)
            if item is not None:
                item.run(ctx)
                del item
                continue
            executor = executor_ref()
            if _thread._shutdown or executor is None or executor._shutdown:
                if executor is not None:
                    executor._shutdown = True
                work_queue.put(None)  # wake the next worker too
                return
            del executor
    except BaseException:
        _futures._base.LOGGER.critical('Exception in worker', exc_info=True)
    finally:
        ctx.finalize()


class _WorkItem:
    __slots__ = ('future', 'task')

    def __init__(self, future, task):
        self.future, self.task = future, task

    def run(self, ctx):
        future = self.future
        # The worker is named before the future is RUNNING, so that a cancel() that finds it
        # running finds whom to interrupt; it is unnamed as soon as the call returned.
        with ctx.lock:
            ctx.current, future._worker = future, ctx
        if not future.set_running_or_notify_cancel():
            with ctx.lock:
                ctx.current = future._worker = None
            return
        try:
            try:
                result = ctx.run(self.task)
            finally:
                with ctx.lock:
                    ctx.current = future._worker = None
        except BaseException as exc:
            if future._interrupted and _is_cancellation(exc):
                future._cancel_running()
            else:
                future.set_exception(exc)
            self = future = None  # noqa: F841 - breaks the cycle through the traceback
        else:
            future.set_result(result)


class InterpreterPoolExecutor(_futures.ThreadPoolExecutor):
    """CPython 3.14's concurrent.futures.InterpreterPoolExecutor, on 3.12 and 3.13.

    A ThreadPoolExecutor (so asyncio's ``set_default_executor()`` takes it) whose workers each
    run tasks in their own interpreter, with its own GIL. As in 3.14:

    - ``fn``, its arguments and its result must be shareable or picklable (functions from
      ``__main__`` travel by code); what cannot be sent fails the future with
      NotShareableError. A str ``fn`` (a script) is refused by submit() with TypeError.
    - An exception raised by ``fn`` is re-raised by ``Future.result()`` as itself (same type and
      message, sent back by pickle) with an ``ExecutionFailed`` as its ``__cause__``. If it
      cannot be pickled, it is printed on stderr by the worker interpreter and the
      ``ExecutionFailed`` is raised instead; so is it if it will not unpickle in the caller
      (3.14 would raise the unpickling error; xinterp keeps the better report).
    - ``initializer(*initargs)`` runs in each worker's interpreter before its first task. If it
      fails (or is not callable, or cannot be sent), the error is logged on the
      ``concurrent.futures`` logger ("Exception in initializer:", with the traceback, on stderr
      when logging is not configured), the executor is broken: pending and later futures fail
      with BrokenInterpreterPool, submit() raises it. A str initializer raises TypeError here.
    - ``max_workers`` defaults to ``min(32, os.process_cpu_count() + 4)``; threads are named
      ``{thread_name_prefix}_{n}``, the prefix defaulting to ``InterpreterPoolExecutor-{k}``.
    - ``map()`` takes ``buffersize`` (3.14's Executor.map): at most that many tasks are
      submitted ahead of the results consumed; it must be None or an int >= 1.
    - Worker threads end after shutdown(), at interpreter exit, or once the executor is
      dropped without shutdown() and collected.

    Where xinterp differs: worker interpreters come from the warm pool (``acquire()``) and go
    back to it when their worker ends (3.14 creates and closes one per worker), so modules a
    task or initializer imported stay imported; ``max_workers`` must be an int (TypeError).

    Beyond 3.14 (and ThreadPoolExecutor), running tasks can be stopped, with
    ``Interpreter.interrupt(asyncio.CancelledError)`` on the worker's interpreter:

    - ``Future.cancel()`` of a running task interrupts it: ``asyncio.CancelledError`` (a
      BaseException, so ``except Exception`` in the task does not swallow it) is raised in the
      task at its next bytecode boundary (a blocking C call such as ``time.sleep`` first
      returns). cancel() still returns False for a running task, as every Future does: it is
      not cancelled yet when cancel() returns. If the interrupt ends the task, its future then
      ends *cancelled* (``cancelled()`` is True, ``result()`` raises
      ``concurrent.futures.CancelledError``, waiters and done-callbacks are told); if the task
      catches it and returns or raises something else, or ends before the interrupt reaches
      it, the future gets that result or exception. Pending tasks are cancelled as usual (True).
    - So ``loop.run_in_executor(executor, fn)`` awaited in a task that is cancelled (or times
      out in ``asyncio.timeout``/``wait_for``) interrupts fn: asyncio cancels the executor's
      future, which interrupts the call. The awaiting coroutine sees CancelledError at once
      (asyncio does not wait for the executor's future); the worker is free again once fn
      stopped. ``map()`` closed early or timing out cancels, hence interrupts, its running
      tasks too.
    - ``shutdown(cancel_futures=True)`` cancels the pending tasks and interrupts the running
      ones, so that with ``wait=True`` it returns once they stopped, not once they finished.
    - At interpreter exit, every executor still alive is stopped as by
      ``shutdown(cancel_futures=True)`` before concurrent.futures joins its workers: running
      tasks are interrupted instead of waited for (quietly: their futures end cancelled), and
      pending tasks are cancelled (ThreadPoolExecutor would run them all first).
    - The worker's interpreter stays usable: the worker runs its next task there as usual
      and gives it back to the warm pool when it ends; an interrupt never reaches a later task
      (it targets the call of that one future, under the worker's lock, and xinterp drops an
      interrupt that the call ended before receiving).
    """

    BROKEN = BrokenInterpreterPool  # as 3.14's class attribute

    def __init__(self, max_workers=None, thread_name_prefix='', initializer=None, initargs=()):
        if max_workers is None:
            max_workers = _default_max_workers()
        if not isinstance(max_workers, int):
            raise TypeError(f'max_workers must be an int, got {max_workers!r}')
        if max_workers <= 0:
            raise ValueError('max_workers must be greater than 0')
        initdata = None if initializer is None else _resolve_task(initializer, initargs, {})
        self._max_workers = max_workers
        self._initdata = initdata
        self._initializer = initializer
        self._initargs = initargs
        self._work_queue = _queue.SimpleQueue()
        self._idle_semaphore = _threading.Semaphore(0)
        self._threads = set()
        self._contexts = []  # the workers' _WorkerContext, one per thread
        self._broken = False
        self._shutdown = False
        self._shutdown_lock = _threading.Lock()
        self._thread_name_prefix = (thread_name_prefix or
                                    f'InterpreterPoolExecutor-{self._counter()}')
        _live_executors.add(self)

    def submit(self, fn, /, *args, **kwargs):
        with self._shutdown_lock, _thread._global_shutdown_lock:
            if self._broken:
                raise BrokenInterpreterPool(self._broken)
            if self._shutdown:
                raise RuntimeError('cannot schedule new futures after shutdown')
            if _thread._shutdown:
                raise RuntimeError('cannot schedule new futures after interpreter shutdown')
            future = _TaskFuture()
            self._work_queue.put(_WorkItem(future, _resolve_task(fn, args, kwargs)))
            self._adjust_thread_count()
            return future

    submit.__doc__ = _futures.Executor.submit.__doc__

    def _adjust_thread_count(self):
        if self._idle_semaphore.acquire(timeout=0):
            return  # an idle worker will take it

        def wake_workers(_, q=self._work_queue):  # the executor was collected
            q.put(None)

        n = len(self._threads)
        if n < self._max_workers:
            ctx = _WorkerContext(self._initdata)
            t = _threading.Thread(name=f'{self._thread_name_prefix}_{n}', target=_worker,
                                  args=(_weakref.ref(self, wake_workers), ctx, self._work_queue))
            self._contexts.append(ctx)
            _live_workers.add(ctx)
            t.start()
            self._threads.add(t)
            _thread._threads_queues[t] = self._work_queue  # joined at interpreter exit

    def _initializer_failed(self):
        with self._shutdown_lock:
            self._broken = _BROKEN_REASON
            for item in self._take_queued():
                item.future.set_exception(BrokenInterpreterPool(self._broken))

    def map(self, fn, *iterables, timeout=None, chunksize=1, buffersize=None):
        """Returns an iterator equivalent to map(fn, *iterables), the calls run in the workers.

        As CPython 3.14's Executor.map: ``timeout`` bounds the wait for all results (the
        iterator raises TimeoutError), ``chunksize`` is ignored, and ``buffersize`` (None or an
        int >= 1) caps the tasks submitted ahead of the results consumed, so that an endless
        iterable can be mapped. Results come in order; closing the iterator early cancels the
        tasks not started.
        """
        if buffersize is not None and not isinstance(buffersize, int):
            raise TypeError('buffersize must be an integer or None')
        if buffersize is not None and buffersize < 1:
            raise ValueError('buffersize must be None or > 0')
        if timeout is not None:
            end_time = timeout + _time.monotonic()
        argtuples = zip(*iterables)
        if buffersize:
            fs = _collections.deque(self.submit(fn, *args)
                                    for args in _itertools.islice(argtuples, buffersize))
        else:
            fs = [self.submit(fn, *args) for args in argtuples]
        executor_ref = _weakref.ref(self)  # the iterator must not keep the executor alive

        def result_iterator():
            try:
                fs.reverse()  # pop() from the end takes them in submission order
                while fs:
                    if buffersize and (executor := executor_ref()) is not None:
                        args = next(argtuples, None)
                        if args is not None:
                            fs.appendleft(executor.submit(fn, *args))
                        del executor
                    if timeout is None:
                        yield _futures._base._result_or_cancel(fs.pop())
                    else:
                        yield _futures._base._result_or_cancel(fs.pop(), end_time - _time.monotonic())
            finally:
                for future in fs:
                    future.cancel()
        return result_iterator()

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Clean-up the resources associated with the Executor.

        As Executor.shutdown(): no task can be submitted afterwards; ``wait`` waits for the
        workers to end. ``cancel_futures=True`` cancels the tasks not started and, beyond
        ThreadPoolExecutor, interrupts the tasks running (their futures end cancelled, see
        the class's doc), so that it returns once they stopped instead of once they finished.
        """
        with self._shutdown_lock:
            self._shutdown = True
            if cancel_futures:
                self._cancel_pending()
            self._work_queue.put(None)  # wakes a worker blocked on the queue
        if cancel_futures:
            self._interrupt_running()
        if wait:
            for t in list(self._threads):
                t.join()

    def _take_queued(self):
        """Takes the work items still queued (not the workers' None wake-ups)."""
        while True:
            try:
                item = self._work_queue.get_nowait()
            except _queue.Empty:
                return
            if item is not None:
                yield item

    def _cancel_pending(self):
        for item in self._take_queued():
            item.future.cancel()

    def _interrupt_running(self):
        for ctx in list(self._contexts):
            future = ctx.current
            if future is not None:
                future.cancel()

    def _stop_at_exit(self):
        with self._shutdown_lock:
            self._shutdown = True
            self._cancel_pending()
            self._work_queue.put(None)

