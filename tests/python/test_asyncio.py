"""asyncio: Queue.aget/aput, channel arecv/asend, Interpreter.acall/aexec (README "asyncio").

No thread per wait (a coroutine waiting on a queue parks no thread), exact cancellation (a
cancelled aget takes nothing, a cancelled aput puts nothing, a wake-up a cancelled waiter got is
passed on), timeouts, asyncio.timeout / wait_for / TaskGroup, clear errors with no running loop
or a closed queue, and a loop running inside a sub-interpreter.
"""

import asyncio
import os
import random
import textwrap
import threading

import pytest

import xinterp
from xinterp import _aio, _xinterp, channels, queues

from conftest import run_script

try:
    import anyio
except ImportError:
    anyio = None

GUARD = 30  # seconds: only a guard against a hang (a lost wake-up), never a measured duration


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, GUARD))


async def until(predicate):
    """Yields to the loop until predicate() holds (what 'the coroutine is parked' looks like)."""
    for _ in range(1_000_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError('condition never held')


def async_getters(q):
    return q._handle.async_waiters()[0]


def async_putters(q):
    return q._handle.async_waiters()[1]


def os_threads():
    return len(os.listdir('/proc/self/task'))


PUT_RANGE = textwrap.dedent('''
    from xinterp import queues
    q = queues.Queue(QID)
    for i in range(START, STOP):
        q.put(i)
''')


def put_range_in(interp, q, start, stop):
    interp.exec(PUT_RANGE.replace('QID', str(q.id)).replace('START', str(start))
                .replace('STOP', str(stop)))


# --- queues ------------------------------------------------------------------------------------

def test_aget_resumes_when_an_interpreter_puts(q, interp):
    async def main():
        t = asyncio.create_task(q.aget())
        await until(lambda: async_getters(q) == 1)
        put_range_in(interp, q, 7, 8)
        return await t
    assert run(main()) == 7
    assert async_getters(q) == 0


def test_aget_takes_an_item_already_there_at_once(q):
    q.put('x')
    assert run(q.aget()) == 'x'


def test_aget_timeout_raises_queue_empty_and_takes_nothing_later(q):
    async def main():
        with pytest.raises(queues.QueueEmpty):
            await q.aget(timeout=0.01)
        assert async_getters(q) == 0
        q.put(1)
        return q.qsize()
    assert run(main()) == 1


@pytest.mark.parametrize('timeout, exc', [(-1, ValueError), ('1', TypeError),
                                          (float('nan'), ValueError)])
def test_aget_bad_timeout_is_refused(q, timeout, exc):
    with pytest.raises(exc, match='timeout'):
        run(q.aget(timeout=timeout))


def test_cancelled_aget_takes_nothing(q):
    async def main():
        t = asyncio.create_task(q.aget())
        await until(lambda: async_getters(q) == 1)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert async_getters(q) == 0
        q.put('kept')
    run(main())
    assert q.get_nowait() == 'kept'


def test_a_wake_up_of_a_cancelled_getter_is_passed_on(q):
    # The put wakes the oldest waiter, which is cancelled before it runs: without passing the
    # wake-up on, the second waiter would sleep forever beside the item.
    async def main():
        first = asyncio.create_task(q.aget())
        await until(lambda: async_getters(q) == 1)
        second = asyncio.create_task(q.aget())
        await until(lambda: async_getters(q) == 2)
        q.put('item')   # wakes `first` (its token is on the way to the loop)
        first.cancel()  # before it ran
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second
    assert run(main()) == 'item'


def test_aput_waits_for_room_and_puts(q1):
    async def main():
        await q1.aput('a')
        t = asyncio.create_task(q1.aput('b'))
        await until(lambda: async_putters(q1) == 1)
        assert q1.get_nowait() == 'a'
        await t
    run(main())
    assert q1.get_nowait() == 'b'


def test_cancelled_aput_puts_nothing(q1):
    async def main():
        await q1.aput('a')
        t = asyncio.create_task(q1.aput('b'))
        await until(lambda: async_putters(q1) == 1)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert async_putters(q1) == 0
        assert q1.get_nowait() == 'a'
    run(main())
    assert q1.empty()


def test_a_wake_up_of_a_cancelled_putter_is_passed_on(q1):
    async def main():
        q1.put('a')
        first = asyncio.create_task(q1.aput('first'))
        await until(lambda: async_putters(q1) == 1)
        second = asyncio.create_task(q1.aput('second'))
        await until(lambda: async_putters(q1) == 2)
        assert q1.get_nowait() == 'a'  # room: wakes `first`
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await second
    run(main())
    assert q1.get_nowait() == 'second'


def test_aput_timeout_raises_queue_full(q1):
    q1.put(1)
    with pytest.raises(queues.QueueFull):
        run(q1.aput(2, timeout=0.01))
    assert q1.qsize() == 1


def test_aput_unbounditems_is_passed_on(q):
    run(q.aput(b'x', unbounditems=queues.UNBOUND_REMOVE))
    assert q.get_nowait() == b'x'
    with pytest.raises(ValueError, match='unbounditems'):
        run(q.aput(1, unbounditems='nope'))


def test_wait_for_timeout_and_taskgroup_leave_items_alone(q):
    async def main():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(q.aget(), 0.01)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await q.aget()
        with pytest.raises(ExceptionGroup):
            async with asyncio.TaskGroup() as tg:
                for _ in range(5):
                    tg.create_task(q.aget())
                await until(lambda: async_getters(q) == 5)
                raise ValueError('boom')  # cancels the five getters
        assert async_getters(q) == 0
        q.put(1)
        async with asyncio.TaskGroup() as tg:
            t = tg.create_task(q.aget())
        return t.result()
    assert run(main()) == 1


def test_thousands_of_waiting_coroutines_park_no_thread():
    qs = [queues.create() for _ in range(100)]
    n = 10_000
    interps = [xinterp.create() for _ in range(2)]

    async def main():
        before = threading.active_count(), os_threads()
        tasks = [asyncio.create_task(qs[k % 100].aget()) for k in range(n)]
        await until(lambda: sum(async_getters(q) for q in qs) == n)
        during = threading.active_count(), os_threads()
        # Items come from sub-interpreters, on threads of their own (made after the count).
        producers = [threading.Thread(target=fill, args=(interps[j], qs[j::2]))
                     for j in range(2)]
        for p in producers:
            p.start()
        got = await asyncio.gather(*tasks)
        for p in producers:
            p.join()
        return before, during, got

    def fill(interp, some):
        for q in some:
            put_range_in(interp, q, q.id * 1000, q.id * 1000 + n // 100)

    try:
        before, during, got = run(main())
    finally:
        for i in interps:
            i.close()
    assert during[0] - before[0] <= 0
    assert during[1] - before[1] <= 1  # at most the loop's own helper, if any
    expected = sorted(q.id * 1000 + k for q in qs for k in range(n // 100))
    assert sorted(got) == expected  # each item exactly once
    assert all(q.empty() for q in qs)


def _storm(seed, producers, consumers, items_each):
    """Producers in sub-interpreters, consumer coroutines cancelled at random points: every
    item is received exactly once or still in the queue."""
    rng = random.Random(seed)
    q = queues.create(maxsize=rng.choice([0, 1, 3]))
    interps = [xinterp.create() for _ in range(producers)]
    received = []

    async def consumer():
        while True:
            received.append(await q.aget())

    async def main():
        threads = [threading.Thread(target=put_range_in,
                                    args=(interps[p], q, p * 100_000, p * 100_000 + items_each))
                   for p in range(producers)]
        tasks = {asyncio.create_task(consumer()) for _ in range(consumers)}
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) or len(received) < producers * items_each // 2:
            await asyncio.sleep(0)
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)
            victim = rng.choice(sorted(tasks, key=id))
            victim.cancel()
            tasks.discard(victim)
            tasks.add(asyncio.create_task(consumer()))
        for t in threads:
            await asyncio.to_thread(t.join)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        run(main())
        left = []
        while not q.empty():
            left.append(q.get_nowait())
    finally:
        for i in interps:
            i.close()
    everything = sorted(received + left)
    assert everything == sorted(p * 100_000 + k for p in range(producers)
                                for k in range(items_each))
    assert async_getters(q) == 0 and async_putters(q) == 0


hypothesis = pytest.importorskip('hypothesis')


@hypothesis.settings(max_examples=8, deadline=None, database=None)
@hypothesis.given(seed=hypothesis.strategies.integers(0, 2**32),
                  producers=hypothesis.strategies.integers(1, 3),
                  consumers=hypothesis.strategies.integers(1, 20))
def test_storm_of_cancellations_loses_and_duplicates_nothing(seed, producers, consumers):
    _storm(seed, producers, consumers, items_each=300)


def test_queue_released_while_awaiting_raises_queue_error():
    q = queues.create()

    async def main():
        t = asyncio.create_task(q.aget())
        await until(lambda: async_getters(q) == 1)
        _xinterp.queue_release(q.id)  # misused on purpose: the queue closes under the waiter
        with pytest.raises(queues.QueueError, match='closed'):
            await t
    run(main())


@pytest.mark.parametrize('make', [
    lambda q, r, s, i: q.aget(),
    lambda q, r, s, i: q.aput(1),
    lambda q, r, s, i: r.arecv(),
    lambda q, r, s, i: s.asend(1),
    lambda q, r, s, i: i.acall(int),
    lambda q, r, s, i: i.aexec('pass'),
], ids=['aget', 'aput', 'arecv', 'asend', 'acall', 'aexec'])
def test_awaiting_with_no_running_loop_is_a_clear_error(q1, chan, interp, make):
    q1.put(0)  # aput would have to wait; the check comes first for every one of them anyway
    r, s = chan
    outcome = {}

    def drive():  # a thread with no event loop steps the coroutine by hand
        coro = make(q1, r, s, interp)
        try:
            coro.send(None)
        except BaseException as exc:  # noqa: B036
            outcome['exc'] = exc
        finally:
            coro.close()

    t = threading.Thread(target=drive)
    t.start()
    t.join()
    exc = outcome.get('exc')
    assert isinstance(exc, RuntimeError), exc
    assert 'running asyncio event loop' in str(exc)


def test_a_loop_in_a_sub_interpreter_awaits_queues_too(q, interp):
    # The coroutine runs in the sub-interpreter; the put comes from the main one. (Its 'ready'
    # and its answer go through another queue: on q it could take its own 'ready'.)
    back = queues.create()
    t = interp.call_in_thread(_run_loop_in_sub, q, back)
    assert back.get(timeout=GUARD) == 'ready'
    assert_eventually(lambda: async_getters(q) == 1)
    q.put('to-sub')
    t.join(GUARD)
    assert back.get(timeout=GUARD) == ('got', 'to-sub')


def _run_loop_in_sub(q, back):
    import asyncio

    async def main():
        back.put('ready')
        item = await q.aget()
        back.put(('got', item))
    asyncio.run(main())


def assert_eventually(predicate):
    from conftest import eventually
    assert eventually(predicate, timeout=GUARD)


def test_no_running_loop_in_a_fresh_process_is_clear():
    proc = run_script('''
        from xinterp import queues
        q = queues.create()
        coro = q.aget()
        try:
            coro.send(None)
        except RuntimeError as e:
            print(e)
        print('done')
    ''')
    assert proc.returncode == 0, proc.stderr
    assert 'must be awaited in a running asyncio event loop' in proc.stdout


# --- channels ----------------------------------------------------------------------------------

def test_arecv_and_asend(chan, interp):
    r, s = chan

    async def main():
        t = asyncio.create_task(r.arecv())
        await until(lambda: async_getters_of_channel(r) == 1)
        s.send_nowait('one')
        assert await t == 'one'
        send = asyncio.create_task(s.asend('two'))
        await until(lambda: _xinterp.channel_info(r.id)[1] == 1)
        assert not send.done()  # a rendezvous: waits for the receiver
        assert interp.call(channels.RecvChannel.recv, r) == 'two'
        await send
    run(main())


def async_getters_of_channel(r):
    # A channel's queue is not reachable from Python; a waiting arecv shows as its task's state.
    notifier = _aio._notifiers.get(asyncio.get_running_loop())
    return 0 if notifier is None else notifier.pending()


def test_cancelled_asend_withdraws_the_object(chan):
    r, s = chan

    async def main():
        send = asyncio.create_task(s.asend('never'))
        await until(lambda: _xinterp.channel_info(r.id)[1] == 1)
        send.cancel()
        with pytest.raises(asyncio.CancelledError):
            await send
        assert r.recv_nowait(None) is None  # withdrawn: skipped by receivers
    run(main())


def test_cancelled_arecv_receives_nothing(chan):
    r, s = chan

    async def main():
        t = asyncio.create_task(r.arecv())
        await until(lambda: async_getters_of_channel(r) == 1)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        s.send_nowait('kept')
    run(main())
    assert r.recv_nowait() == 'kept'


def test_asend_and_arecv_time_out(chan):
    r, s = chan
    with pytest.raises(TimeoutError):
        run(r.arecv(timeout=0.01))
    with pytest.raises(TimeoutError):
        run(s.asend('late', timeout=0.01))
    assert r.recv_nowait(None) is None  # the timed-out send was withdrawn


def test_channel_closed_while_awaiting(chan):
    r, s = chan

    async def main():
        send = asyncio.create_task(s.asend('x'))
        await until(lambda: _xinterp.channel_info(r.id)[1] == 1)
        _xinterp.channel_close(r.id, True, True, True)
        with pytest.raises(channels.ChannelClosedError):
            await send
        with pytest.raises(channels.ChannelClosedError):
            await r.arecv()
    run(main())


# --- Interpreter.acall / aexec -----------------------------------------------------------------

def test_acall_and_aexec_return_and_raise_as_call_and_exec(interp):
    async def main():
        assert await interp.acall(pow, 2, 10) == 1024
        assert await interp.acall(int, '11', base=2) == 3
        await interp.aexec('x = 41')
        assert await interp.acall(eval, 'x + 1') == 42
        with pytest.raises(xinterp.ExecutionFailed) as ei:
            await interp.aexec('raise KeyError(5)')
        assert ei.value.excinfo.type.__name__ == 'KeyError'
        with pytest.raises(xinterp.ExecutionFailed):
            await interp.acall(int, 'nope')
        with pytest.raises(ValueError):
            await interp.aexec('a\0b')
    run(main())


def test_acall_of_a_closed_interpreter(dead):
    with pytest.raises(xinterp.InterpreterNotFoundError):
        run(dead.acall(int))


def test_acall_uses_one_thread_per_interpreter_in_fifo_order(interp):
    gate = queues.create()
    interp.prepare_main(gate=gate)
    n = 50

    assert_eventually(lambda: _aio.worker_threads() == 0)  # earlier tests' workers ended

    async def main():
        before = threading.active_count()
        first = asyncio.create_task(interp.acall(_wait_on_gate, gate))
        rest = [asyncio.create_task(interp.acall(_record, k)) for k in range(n)]
        await until(lambda: _aio.worker_threads() == 1 and gate.qsize() == 0
                    and async_tasks_waiting(rest))
        during = threading.active_count()
        gate.put('go')
        await first
        await asyncio.gather(*rest)
        return before, during

    before, during = run(main())
    assert during - before == 1
    assert interp.call(_recorded) == list(range(n))
    assert_eventually(lambda: _aio.worker_threads() == 0)  # gone when idle


def async_tasks_waiting(tasks):
    return not any(t.done() for t in tasks)


def _wait_on_gate(gate):
    return gate.get(timeout=60)


def _record(k):
    import __main__
    __main__.__dict__.setdefault('order', []).append(k)


def _recorded():
    import __main__
    return __main__.__dict__.get('order')


def test_cancelled_acall_that_has_not_started_never_runs(interp):
    gate = queues.create()

    async def main():
        first = asyncio.create_task(interp.acall(_wait_on_gate, gate))
        second = asyncio.create_task(interp.acall(_record, 'ran'))
        await until(lambda: _aio.worker_threads() == 1)
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        gate.put('go')
        await first
    run(main())
    assert interp.call(_recorded) is None


def test_taskgroup_cancels_queued_acalls(interp):
    gate = queues.create()

    async def fail():
        await until(lambda: _aio.worker_threads() == 1)
        raise ValueError('boom')

    async def main():
        first = asyncio.create_task(interp.acall(_wait_on_gate, gate))
        with pytest.raises(ExceptionGroup):
            async with asyncio.TaskGroup() as tg:
                for k in range(5):
                    tg.create_task(interp.acall(_record, k))
                tg.create_task(fail())
        gate.put('go')
        await first
    run(main())
    assert interp.call(_recorded) is None


needs_interrupt = pytest.mark.skipif(
    not hasattr(xinterp.Interpreter, 'interrupt'),
    reason='Interpreter.interrupt (branch i15-intr) is not merged yet')


@needs_interrupt
def test_cancelled_running_acall_is_interrupted_and_waited_for(interp):
    started = queues.create()

    async def main():
        t = asyncio.create_task(interp.acall(_spin_until_interrupted, started))
        await asyncio.to_thread(started.get, timeout=GUARD)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        # The target stopped before the coroutine saw CancelledError.
        assert started.get_nowait() == 'interrupted'
    run(main())
    assert interp.call(pow, 2, 3) == 8  # usable afterwards


def _spin_until_interrupted(started):
    import asyncio
    started.put('running')
    try:
        while True:
            pass
    except asyncio.CancelledError:
        started.put('interrupted')
        raise


def _drain(q):
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queues.QueueEmpty:
            return out


@needs_interrupt
def test_wait_for_and_timeout_interrupt_a_running_acall(interp):
    started = queues.create()

    async def main():
        # wait_for: a call its timeout ends before it started never runs; one that started is
        # interrupted, and stopped before wait_for raised. No duration is assumed: the timeout
        # doubles until a run started in time was seen.
        timeout = 0.01
        while True:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(interp.acall(_spin_until_interrupted, started), timeout)
            seen = _drain(started)
            assert seen in ([], ['running', 'interrupted']), seen
            if seen:
                break
            timeout *= 2
            assert timeout < GUARD
        # asyncio.timeout, expired once the target announced it runs.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as cm:
                t = asyncio.ensure_future(interp.acall(_spin_until_interrupted, started))
                assert await asyncio.to_thread(started.get, timeout=GUARD) == 'running'
                cm.reschedule(asyncio.get_running_loop().time())
                await t
        assert _drain(started) == ['interrupted']
    run(main())
    assert interp.call(pow, 2, 3) == 8


# --- the executor --------------------------------------------------------------------------------

def test_interpreter_pool_executor_with_run_in_executor_and_as_default():
    from xinterp.pool import InterpreterPoolExecutor

    async def main():
        loop = asyncio.get_running_loop()
        with InterpreterPoolExecutor(max_workers=2) as ex:
            results = await asyncio.gather(*(loop.run_in_executor(ex, pow, k, 2)
                                             for k in range(8)))
            assert results == [k * k for k in range(8)]
            loop.set_default_executor(ex)
            assert await loop.run_in_executor(None, divmod, 7, 2) == (3, 1)
            with pytest.raises(ZeroDivisionError):
                await loop.run_in_executor(None, divmod, 1, 0)
    run(main())


# --- anyio ---------------------------------------------------------------------------------------

@pytest.mark.skipif(anyio is None, reason='anyio is not installed')
def test_anyio_asyncio_backend_cancel_scopes(q, interp, chan):
    r, s = chan

    async def main():
        with anyio.move_on_after(0.01) as scope:
            await q.aget()
        assert scope.cancelled_caught
        assert async_getters(q) == 0
        results = []
        async with anyio.create_task_group() as tg:
            async def getter():
                results.append(await q.aget())
            tg.start_soon(getter)
            await until(lambda: async_getters(q) == 1)
            q.put('via anyio')
        assert results == ['via anyio']
        async with anyio.create_task_group() as tg:
            tg.start_soon(q.aget)
            await until(lambda: async_getters(q) == 1)
            tg.cancel_scope.cancel()
        assert async_getters(q) == 0
        assert await interp.acall(pow, 3, 2) == 9
        with anyio.fail_after(GUARD):
            async with anyio.create_task_group() as tg:
                tg.start_soon(s.asend, 'rendezvous')
                assert await r.arecv() == 'rendezvous'
        q.put('left')
    anyio.run(main, backend='asyncio')
    assert q.get_nowait() == 'left'


def test_acall_in_a_fork_child_on_an_inherited_interpreter_is_a_clear_error():
    # The parent's worker thread (lingering after its call) did not survive the fork; the
    # child's acall must not queue behind it forever.
    proc = run_script('''
        import asyncio, os
        import xinterp
        interp = xinterp.create()
        async def main():
            return await interp.acall(int, 7)
        assert asyncio.run(main()) == 7
        pid = os.fork()
        if pid == 0:
            try:
                asyncio.run(main())
                print('no error', flush=True)
            except xinterp.InterpreterError as e:
                print('InterpreterError', 'parent process' in str(e), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
    ''')
    assert proc.stdout.split() == ['InterpreterError', 'True'], proc.stdout + proc.stderr


def _spin_forever(arg):
    while True:
        pass


@needs_interrupt
def test_acall_cancelled_while_its_arguments_are_pickled_is_still_interrupted(interp):
    # The worker has taken the call but its run has not begun (the argument's __reduce__ runs):
    # the interrupt finds nothing running yet and is tried again until the run begins. Without
    # that, the call spun forever.
    encoding, go_on = threading.Event(), threading.Event()

    class PickledSlowly:
        def __reduce__(self):
            encoding.set()
            go_on.wait(GUARD)
            return (int, (5,))

    async def main():
        task = asyncio.ensure_future(interp.acall(_spin_forever, PickledSlowly()))
        assert await asyncio.to_thread(encoding.wait, GUARD)
        task.cancel()
        # The pickling cannot end before go_on: the task's cancellation runs first unless
        # go_on is set in this very step, so the yield below is order, not timing.
        await asyncio.sleep(0)
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    run(main())
    assert interp.call(pow, 2, 3) == 8
