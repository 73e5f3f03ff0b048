"""asyncio support: what Queue.aget/aput, channel arecv/asend and Interpreter.acall/aexec use.

Queues and channels: no thread per wait. Each running event loop (in the interpreter that runs
it) gets one notifier: a C++ waker owning an eventfd, registered once with ``loop.add_reader``.
A coroutine that must wait registers a token with the queue (a FIFO of async waiters beside the
queue's condition variables) and awaits a future. Whoever puts or gets (any thread, any
interpreter, with or without a GIL) only appends the token to the waker's list and writes the
eventfd; the loop's reader callback resolves the futures. The woken coroutine then takes the
item (or puts its own) with a non-blocking call inside its own step, and registers again if
someone else was faster. So nothing is ever taken or put on a coroutine's behalf: a
CancelledError means nothing was taken / nothing was put. A waiter cancelled after its wake-up
passes the wake-up on to the next one.

Calls: one worker thread per interpreter (a thread of the main interpreter, started on demand,
gone when its queue of calls is empty), however many coroutines await; the calls run in FIFO
order, and each completion resumes its coroutine through ``loop.call_soon_threadsafe``.
"""

import asyncio
import os
import collections
import itertools
import numbers
import threading
import weakref

from . import _xinterp


def _running_loop(what):
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            f'{what} must be awaited in a running asyncio event loop '
            f'(none runs in this thread)') from None


def _check_timeout(timeout):
    """As the sync methods check theirs: a real number of seconds >= 0, or None."""
    if timeout is None:
        return None
    if not isinstance(timeout, numbers.Real):
        raise TypeError(f'timeout must be a number of seconds or None, '
                        f'got {type(timeout).__name__}')
    timeout = float(timeout)
    if not timeout >= 0:  # also NaN
        raise ValueError('timeout value must be non-negative')
    return timeout


class _Notifier:
    """The per-(loop, interpreter) waker: an eventfd the loop watches, and token -> future."""

    def __init__(self, loop):
        self.waker = _xinterp.loop_waker_create()
        self._fd = _xinterp.loop_waker_fileno(self.waker)
        self._futures = {}
        self._tokens = itertools.count(1)
        loop.add_reader(self._fd, self._on_ready)

    def _on_ready(self):
        tokens, lost = _xinterp.loop_waker_drain(self.waker)
        if lost:  # some token could not be recorded: everyone looks again
            tokens = list(self._futures)
        futures = self._futures
        for token in tokens:
            fut = futures.get(token)
            if fut is not None and not fut.done():
                fut.set_result(True)

    def waiter(self, loop):
        token = next(self._tokens)
        fut = loop.create_future()
        self._futures[token] = fut
        return token, fut

    def forget(self, token):
        self._futures.pop(token, None)

    def pending(self):
        return len(self._futures)


_notifiers = weakref.WeakKeyDictionary()  # loop -> _Notifier (this interpreter's loops)


def _notifier(loop):
    n = _notifiers.get(loop)
    if n is None:
        if loop.is_closed():
            raise RuntimeError('the event loop is closed')
        n = _notifiers[loop] = _Notifier(loop)
    return n


def _expire(fut):
    if not fut.done():
        fut.set_result(False)


async def _wait_once(loop, notifier, watch, unwatch, pass_on, deadline):
    """Registers with the queue and waits for a wake-up (True) or the deadline (False)."""
    token, fut = notifier.waiter(loop)
    try:
        ticket = watch(notifier.waker, token)
    except BaseException:
        notifier.forget(token)
        raise
    timer = None if deadline is None else loop.call_at(deadline, _expire, fut)
    try:
        await fut
    except BaseException:  # cancelled: never take; a wake-up we got goes to the next waiter
        if not unwatch(ticket):
            pass_on()
        raise
    finally:
        notifier.forget(token)
        if timer is not None:
            timer.cancel()
    if fut.result():
        return True
    # The deadline passed; a wake-up may have raced with it (then we are off the list already).
    return not unwatch(ticket)


async def wait_and_do(what, attempt, would_block, watch, unwatch, pass_on, timeout, on_timeout):
    """Runs attempt() (non-blocking) until it does not raise would_block, waiting in between.

    on_timeout() makes the exception raised when the timeout passes.
    """
    loop = _running_loop(what)
    timeout = _check_timeout(timeout)
    try:
        return attempt()
    except would_block:
        pass
    deadline = None if timeout is None else loop.time() + timeout
    notifier = _notifier(loop)
    while True:
        woken = await _wait_once(loop, notifier, watch, unwatch, pass_on, deadline)
        try:
            return attempt()
        except would_block:
            pass
        except BaseException:
            if woken:
                pass_on()
            raise
        if deadline is not None and loop.time() >= deadline:
            raise on_timeout()


# --- queues --------------------------------------------------------------------------------

def queue_aget(queue, timeout):
    h = queue._handle
    return wait_and_do(
        'Queue.aget()', h.get_nowait, _xinterp.QueueEmpty, h.watch_get, h.unwatch_get,
        h.pass_on_get, timeout, lambda: _xinterp.QueueEmpty(f'queue {queue.id} is empty'))


def queue_aput(queue, obj, timeout, unbounditems):
    h = queue._handle

    def attempt():
        return h.put_nowait(obj, unbounditems=unbounditems)

    return wait_and_do(
        'Queue.aput()', attempt, _xinterp.QueueFull, h.watch_put, h.unwatch_put,
        h.pass_on_put, timeout, lambda: _xinterp.QueueFull(f'queue {queue.id} is full'))


# --- Interpreter.acall / aexec ---------------------------------------------------------------

class _Job:
    __slots__ = ('fn', 'loop', 'fut', 'outcome', 'stopped')

    def __init__(self, fn, loop):
        self.fn = fn
        self.loop = loop
        self.fut = loop.create_future()
        self.outcome = None     # (ok, value), set on the loop's thread once the call ended
        self.stopped = None     # a future awaited by a cancelled coroutine until the call ends


def _settle(job, ok, value):  # on the loop's thread
    job.outcome = (ok, value)
    if not job.fut.done():
        if ok:
            job.fut.set_result(value)
        else:
            job.fut.set_exception(value)
    if job.stopped is not None and not job.stopped.done():
        job.stopped.set_result(None)


class _Worker:
    """The one thread that runs one interpreter's awaited calls, FIFO; ends when idle."""

    def __init__(self, interp_id):
        self.interp_id = interp_id
        self.jobs = collections.deque()
        self.running = None
        self.thread = None

    def run(self):
        while True:
            with _workers_lock:
                if not self.jobs:
                    # Linger a moment: a coroutine that awaits call after call reuses the thread
                    # instead of starting one per call.
                    _workers_cond.wait_for(lambda: self.jobs, IDLE_LINGER)
                if not self.jobs:
                    self.thread = None
                    if _workers.get(self.interp_id) is self:
                        del _workers[self.interp_id]
                    return
                job = self.running = self.jobs.popleft()
            try:
                ok, value = True, job.fn()
            except BaseException as exc:  # noqa: B036 - handed to the awaiting coroutine
                ok, value = False, exc
            with _workers_lock:
                self.running = None
            try:
                job.loop.call_soon_threadsafe(_settle, job, ok, value)
            except RuntimeError:
                pass  # the loop closed: nobody awaits any more
            job = value = None


_workers = {}  # interpreter id -> _Worker
_workers_lock = threading.Lock()
_workers_cond = threading.Condition(_workers_lock)


def _after_fork_in_child():
    # The parent's workers did not survive the fork: the child starts its own.
    global _workers, _workers_lock, _workers_cond
    _workers = {}
    _workers_lock = threading.Lock()
    _workers_cond = threading.Condition(_workers_lock)


os.register_at_fork(after_in_child=_after_fork_in_child)
IDLE_LINGER = 0.05  # seconds an idle worker waits for another call before it ends


def worker_threads():
    """How many acall/aexec worker threads run now (for tests and benchmarks)."""
    with _workers_lock:
        return sum(1 for w in _workers.values() if w.thread is not None)


async def run_call(interp, fn, what):
    loop = _running_loop(what)
    job = _Job(fn, loop)
    with _workers_lock:
        worker = _workers.get(interp.id)
        if worker is None:
            worker = _workers[interp.id] = _Worker(interp.id)
        worker.jobs.append(job)
        _workers_cond.notify_all()
        if worker.thread is None:
            worker.thread = threading.Thread(
                target=worker.run, name=f'xinterp-acall-{interp.id}', daemon=True)
            worker.thread.start()
    try:
        return await job.fut
    except asyncio.CancelledError:
        if job.outcome is None:
            await _stop(interp, worker, job)
        raise


_RETRY_INTERRUPT = 0.0005  # seconds between tries while a cancelled call's run has not begun


def _interrupt(interp):
    """Interrupts the call running in interp; whether one was. Called under _workers_lock:
    the worker cannot move on to another call of this interpreter meanwhile, so the interrupt
    reaches this call or none (an idle interpreter ignores it)."""
    return interp.interrupt(asyncio.CancelledError)


async def _stop(interp, worker, job):
    """A cancelled call: dropped if it has not started; else interrupted and waited for."""
    with _workers_lock:
        try:
            worker.jobs.remove(job)
            return  # never ran
        except ValueError:
            pass
        posted = worker.running is job and _interrupt(interp)
    if job.outcome is None:
        job.stopped = job.loop.create_future()
        # Not posted: the worker took the call but its run has not begun (the arguments are
        # still being pickled). Tried again until the run is seen or the call has ended; the
        # window is as long as that pickling.
        while not posted and not job.stopped.done():
            try:
                await asyncio.sleep(_RETRY_INTERRUPT)
            except asyncio.CancelledError:
                pass  # cancelled again: the call must still end first
            with _workers_lock:
                if worker.running is not job:
                    break
                posted = _interrupt(interp)
        while not job.stopped.done():
            try:
                await asyncio.shield(job.stopped)
            except asyncio.CancelledError:
                continue  # cancelled again: the call must still end first


# --- channels --------------------------------------------------------------------------------

def channel_arecv(end, timeout):
    h = end._channel()

    def attempt():
        found, obj = h.recv(False, None)
        if not found:
            raise _xinterp.ChannelEmptyError
        return obj

    return wait_and_do(
        'RecvChannel.arecv()', attempt, _xinterp.ChannelEmptyError, h.watch_recv,
        h.unwatch_recv, h.pass_on_recv, timeout, lambda: TimeoutError('timed out'))


_RECEIVED, _CLOSED = 1, 2


async def channel_asend(end, obj, timeout, unbound_flag, buffer_only):
    """Queues obj, then awaits its receipt. Cancelled: obj is withdrawn (never received later);
    if a receiver had taken it already, the send is complete and this returns normally."""
    loop = _running_loop('SendChannel.asend()')
    timeout = _check_timeout(timeout)
    h = end._channel()
    receipt = h.post(obj, unbound_flag, buffer_only)
    deadline = None if timeout is None else loop.time() + timeout
    state = _xinterp.channel_receipt_state
    try:
        notifier = _notifier(loop)
        while True:
            s = state(receipt)
            if s == _RECEIVED:
                return
            if s == _CLOSED:
                raise _xinterp.ChannelClosedError(f'channel {end.id} is closed')
            if deadline is not None and loop.time() >= deadline:
                if _xinterp.channel_receipt_withdraw(receipt):
                    return
                raise TimeoutError('timed out')
            await _wait_once(
                loop, notifier,
                lambda waker, token: _xinterp.channel_receipt_watch(receipt, waker, token),
                lambda ticket: _xinterp.channel_receipt_unwatch(receipt, ticket),
                _nothing, deadline)
    except asyncio.CancelledError:
        if _xinterp.channel_receipt_withdraw(receipt):
            return  # received before the cancellation took effect: the send happened
        raise


def _nothing():
    pass  # every waiter of a receipt is woken at once: nothing to pass on
