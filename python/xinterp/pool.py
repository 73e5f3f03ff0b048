"""A process-wide pool of warm interpreters, and InterpreterPoolExecutor over it.

Creating an isolated interpreter costs ~8 ms and CPython never gives back ~1.5 MiB of it on
close, so repeated work should reuse interpreters. ``acquire()`` hands out an idle one (or a
new one), ``release()`` takes it back: its ``__main__`` globals are cleared, its imported
modules stay (that is the warmth). At most ``max_idle`` are kept; the rest are closed.
"""

import concurrent.futures as _futures
import os as _os
import queue as _queue
import threading as _threading

from . import create as _create, ExecutionFailed, Interpreter as _Interpreter, InterpreterError
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


class BrokenInterpreterPool(_futures.BrokenExecutor):
    """An initializer failed: the executor takes no more work."""


class _WorkItem:
    __slots__ = ('future', 'fn', 'args', 'kwargs')

    def __init__(self, future, fn, args, kwargs):
        self.future, self.fn, self.args, self.kwargs = future, fn, args, kwargs


class InterpreterPoolExecutor(_futures.Executor):
    """A concurrent.futures.Executor whose workers each own an interpreter with its own GIL.

    As in CPython 3.14: ``fn`` (and its arguments and result) must be shareable or picklable
    (functions from ``__main__`` travel by code); an exception in ``fn`` surfaces from
    ``Future.result()`` as ``ExecutionFailed``. ``initializer(*initargs)`` runs in each worker's
    interpreter before its first task; if it fails, the executor is broken. Interpreters come
    from the warm pool and go back to it at shutdown.
    """

    def __init__(self, max_workers=None, thread_name_prefix='', initializer=None, initargs=()):
        if max_workers is None:
            max_workers = _os.cpu_count() or 1
        if not isinstance(max_workers, int):
            raise TypeError(f'max_workers must be an int, got {max_workers!r}')
        if max_workers <= 0:
            raise ValueError(f'max_workers must be greater than 0, got {max_workers}')
        if initializer is not None and not callable(initializer):
            raise TypeError('initializer must be a callable')
        self._max_workers = max_workers
        self._prefix = thread_name_prefix or f'InterpreterPoolExecutor-{id(self):x}'
        self._initializer = initializer
        self._initargs = initargs
        self._work = _queue.SimpleQueue()
        self._threads = []
        self._shutdown = False
        self._broken = None
        self._lock = _threading.Lock()
        self._idle_workers = _threading.Semaphore(0)

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            if self._broken:
                raise BrokenInterpreterPool(self._broken)
            if self._shutdown:
                raise RuntimeError('cannot schedule new futures after shutdown')
            future = _futures.Future()
            self._work.put(_WorkItem(future, fn, args, kwargs))
            self._adjust_workers()
            return future

    def _adjust_workers(self):
        if self._idle_workers.acquire(blocking=False):
            return
        if len(self._threads) < self._max_workers:
            t = _threading.Thread(target=self._worker,
                                  name=f'{self._prefix}_{len(self._threads)}', daemon=True)
            self._threads.append(t)
            t.start()

    def _worker(self):
        interp = acquire()
        try:
            if self._initializer is not None:
                try:
                    interp.call(self._initializer, *self._initargs)
                except BaseException as e:  # noqa: BLE001 - reported on every future
                    self._break(f'initializer failed: {e!r}')
                    return
            while True:
                item = self._work.get()
                if item is None:
                    self._work.put(None)  # wake the next worker too
                    return
                if not item.future.set_running_or_notify_cancel():
                    continue
                try:
                    result = interp.call(item.fn, *item.args, **item.kwargs)
                except BaseException as e:  # noqa: BLE001 - goes to the future
                    item.future.set_exception(e)
                else:
                    item.future.set_result(result)
                del item
                self._idle_workers.release()
        finally:
            release(interp)

    def _break(self, reason):
        with self._lock:
            self._broken = reason
            while True:
                try:
                    item = self._work.get_nowait()
                except _queue.Empty:
                    break
                if item is not None:
                    item.future.set_exception(BrokenInterpreterPool(reason))

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        item = self._work.get_nowait()
                    except _queue.Empty:
                        break
                    if item is not None:
                        item.future.cancel()
            self._work.put(None)
        if wait:
            for t in list(self._threads):
                t.join()
