"""Cross-interpreter queues (PEP 734 API): round trips, blocking and timeouts, sharing queues,
unbound items, bad input."""

import math
import queue as stdlib_queue
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

import xinterp
from xinterp import _xinterp, queues
from conftest import act_when, eventually, interp_stats, parked_getters, parked_putters
from shared_helpers import evaluate


def test_api_surface(q):
    assert isinstance(q, xinterp.Queue)
    assert q.maxsize == 0 and q.qsize() == 0 and q.empty() and not q.full()
    assert q.unbounditems is queues.UNBOUND
    assert q in queues.list_all()
    assert xinterp.Queue(q.id) is q
    assert q == xinterp.Queue(q.id) and hash(q) == hash(q.id)
    assert repr(q) == f'Queue({q.id})'
    assert issubclass(xinterp.QueueEmpty, stdlib_queue.Empty)
    assert issubclass(xinterp.QueueFull, stdlib_queue.Full)
    assert issubclass(xinterp.QueueError, xinterp.InterpreterError)


def test_fifo_and_types_within_one_interpreter(q):
    items = [None, True, 7, 2**80, 1.5, 'text', b'bytes', (1, ('x', None)), [1, 2], {'k': 'v'}]
    for item in items:
        q.put(item)
    assert q.qsize() == len(items)
    out = [q.get() for _ in items]
    assert out == items
    assert [type(x) for x in out] == [type(x) for x in items]


def test_mutable_values_are_copies(q):
    data = [1, 2]
    q.put(data)
    data.append(3)
    assert q.get() == [1, 2]


def test_put_in_one_interpreter_get_in_another(interp, q):
    interp.prepare_main(q=q)  # the receiver has imported nothing yet
    interp.exec('q.put(("from sub", 42))')
    assert q.get() == ('from sub', 42)
    q.put({'back': [1]})
    interp.exec('got = q.get()')
    assert interp.call(evaluate, 'got') == {'back': [1]}


def test_queue_travels_inside_queue_and_call(interp, q):
    inner = xinterp.create_queue()
    q.put(inner)
    got = q.get()
    assert got is inner
    interp.prepare_main(q=q)
    q.put(inner)
    interp.exec('inner = q.get(); inner.put("via inner")')
    assert inner.get() == 'via inner'
    # A queue whose only reference is in transit stays alive.
    transient = xinterp.create_queue()
    transient.put('kept')
    q.put(transient)
    tid = transient.id
    del transient, got
    interp.exec('t = q.get()')
    assert interp.call(evaluate, 't.get()') == 'kept'
    assert interp.call(evaluate, 't.id') == tid


def test_interpreter_objects_are_shareable(interp, q):
    assert xinterp.is_shareable(interp)
    assert xinterp.is_shareable(q)
    q.put(interp)
    assert q.get() is interp


def test_get_nowait_and_put_nowait():
    q = xinterp.create_queue(maxsize=2)
    with pytest.raises(xinterp.QueueEmpty):
        q.get_nowait()
    q.put_nowait(1)
    q.put_nowait(2)
    assert q.full()
    with pytest.raises(xinterp.QueueFull):
        q.put_nowait(3)
    with pytest.raises(xinterp.QueueFull):
        q.put(3, block=False)
    assert q.get_nowait() == 1


# A timeout is the one duration a test may check, and only from below: the call must not come
# back before it expired (a fractional timeout truncated to 0 did). Load can only lengthen the
# wait, so the check cannot flake; how long the call overshoots is never asserted.

@pytest.mark.parametrize('timeout', [0.0, 0.015, 0.05])
def test_get_timeout_is_honoured(q, timeout):
    t0 = time.monotonic()
    with pytest.raises(xinterp.QueueEmpty):
        q.get(timeout=timeout)
    assert time.monotonic() - t0 >= timeout


def test_put_timeout_is_honoured():
    q = xinterp.create_queue(maxsize=1)
    q.put(1)
    t0 = time.monotonic()
    with pytest.raises(xinterp.QueueFull):
        q.put(2, timeout=0.025)
    assert time.monotonic() - t0 >= 0.025


def test_blocking_get_wakes_on_put_from_another_interpreter(interp, q):
    interp.prepare_main(q=q)
    waker = act_when(lambda: parked_getters(q) >= 1, lambda: interp.exec('q.put("wake up")'))
    assert q.get(timeout=60) == 'wake up'
    waker.join()
    assert waker.observed, 'get() never parked'


def test_blocking_put_wakes_on_get(interp):
    q = xinterp.create_queue(maxsize=1)
    q.put('first')
    interp.prepare_main(q=q)
    t = interp.call_in_thread(evaluate, 'q.put("second", timeout=60)')
    assert eventually(lambda: parked_putters(q) >= 1), 'put() never parked'
    assert q.get() == 'first'
    t.join()
    assert q.get_nowait() == 'second'


def test_blocking_get_releases_the_gil(q):
    # Only another thread of this interpreter can put the item, and it runs Python code (it
    # polls the parked count) while the get waits: the get completes only if it released the
    # GIL. Otherwise it would time out.
    waker = act_when(lambda: parked_getters(q) >= 1, lambda: q.put('from a thread of main'))
    assert q.get(timeout=60) == 'from a thread of main'
    waker.join()
    assert waker.observed


def test_ping_pong_between_interpreters(interp):
    ping, pong = xinterp.create_queue(), xinterp.create_queue()
    interp.prepare_main(ping=ping, pong=pong)
    t = interp.call_in_thread(evaluate, '[pong.put(ping.get() + 1) for _ in range(1000)]')
    n = 0
    for _ in range(1000):
        ping.put(n)
        n = pong.get(timeout=60)
    t.join()
    assert n == 1000


def test_many_threads_and_interpreters_lose_nothing(q):
    senders = [xinterp.create() for _ in range(3)]
    try:
        for k, s in enumerate(senders):
            s.prepare_main(q=q, k=k)
        threads = [s.call_in_thread(evaluate, '[q.put((k, i)) for i in range(2000)]')
                   for s in senders]
        got = [q.get(timeout=60) for _ in range(3 * 2000)]
        for t in threads:
            t.join()
        assert sorted(got) == sorted((k, i) for k in range(3) for i in range(2000))
        # FIFO per producer.
        for k in range(3):
            seq = [i for kk, i in got if kk == k]
            assert seq == sorted(seq)
    finally:
        for s in senders:
            s.close()


def test_self_contained_items_survive_their_sender(q):
    s = xinterp.create()
    s.prepare_main(q=q)
    s.exec('q.put((1, "a", b"b", 2.5, None)); q.put([1, {"x": 2}])')
    assert interp_stats(s)['queued'] == 2
    s.close()
    assert q.get() == (1, 'a', b'b', 2.5, None)
    assert q.get() == [1, {'x': 2}]


@pytest.mark.parametrize('policy', [queues.UNBOUND, queues.UNBOUND_ERROR, queues.UNBOUND_REMOVE])
def test_unbound_policies_for_lent_buffers(policy):
    q = xinterp.create_queue(unbounditems=policy)
    s = xinterp.create()
    s.prepare_main(q=q)
    s.exec('q.put(memoryview(bytearray(b"lent"))); q.put("plain")')
    assert interp_stats(s)['borrows'] == 1
    s.close()
    if policy is queues.UNBOUND_REMOVE:
        assert q.qsize() == 1
    elif policy is queues.UNBOUND_ERROR:
        with pytest.raises(queues.ItemInterpreterDestroyed):
            q.get_nowait()
    else:
        assert q.get_nowait() is queues.UNBOUND
    assert q.get_nowait() == 'plain'
    closed = xinterp.runtime_stats()['closed_interpreters']
    assert closed['backlog'] == 0


def test_per_put_unbound_policy_overrides_default():
    q = xinterp.create_queue()
    s = xinterp.create()
    s.prepare_main(q=q, REMOVE=None)
    s.exec('from xinterp import queues\n'
           'q.put(memoryview(bytearray(b"a")), unbounditems=queues.UNBOUND_REMOVE)\n'
           'q.put(memoryview(bytearray(b"b")))\n')
    s.close()
    assert q.qsize() == 1 and q.get() is queues.UNBOUND


def test_destroying_a_queue_releases_its_buffers():
    s = xinterp.create()
    try:
        s.exec('import xinterp\nq = xinterp.create_queue()\n'
               'for _ in range(5): q.put(memoryview(bytearray(100)))\n')
        assert interp_stats(s)['borrows'] == 5
        s.exec('del q\nimport gc; gc.collect()')
        assert eventually(lambda: interp_stats(s)['borrows'] == 0)
        assert interp_stats(s)['queued'] == 0
    finally:
        s.close()


def test_bad_input(q):
    assert xinterp.create_queue(-1).maxsize == -1  # negative: unbounded, as in CPython 3.14
    with pytest.raises(TypeError):
        xinterp.create_queue('3')
    with pytest.raises(ValueError):
        xinterp.create_queue(unbounditems='nope')
    with pytest.raises(ValueError, match='non-negative'):
        q.get(timeout=-1)
    with pytest.raises(ValueError, match='non-negative'):
        q.put(1, timeout=-0.5)
    with pytest.raises(ValueError):
        q.get(timeout=math.nan)
    with pytest.raises(TypeError):
        q.get(timeout='soon')
    with pytest.raises(ValueError):
        q.put(1, unbounditems=42)
    with pytest.raises(xinterp.NotShareableError):
        q.put(threading.Lock())
    assert q.empty()  # nothing half-put
    with pytest.raises(TypeError):
        xinterp.Queue('1')
    with pytest.raises(queues.QueueNotFoundError):
        xinterp.Queue(10**9)


shareable = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary(),
    lambda children: st.lists(children, max_size=4).map(tuple),
    max_leaves=20)


@pytest.fixture(scope='module')
def echo():
    """An interpreter echoing everything from `inbox` to `outbox`."""
    i = xinterp.create()
    inbox, outbox = xinterp.create_queue(), xinterp.create_queue()
    i.prepare_main(inbox=inbox, outbox=outbox)
    t = i.call_in_thread(evaluate, '[outbox.put(x) for x in iter(inbox.get, "STOP")]')
    yield inbox, outbox
    inbox.put('STOP')
    t.join()
    i.close()


@settings(max_examples=200, deadline=None)
@given(st.one_of(shareable, st.lists(shareable, max_size=3),
                 st.dictionaries(st.text(max_size=3), shareable, max_size=3)))
def test_round_trip_through_another_interpreter(echo, value):
    inbox, outbox = echo
    if value == 'STOP':
        return
    inbox.put(value)
    back = outbox.get(timeout=60)
    assert back == value
    assert repr(back) == repr(value)


def test_large_bytes_are_read_in_place_and_still_survive_their_sender(q):
    s = xinterp.create()
    s.prepare_main(q=q)
    s.exec('big = bytes(range(256)) * 1024\nq.put(big); q.put(big); q.put((1, big))')
    # Not copied when put: the sender's bytes object is lent until received.
    assert interp_stats(s)['borrows'] == 3
    first = q.get()
    assert type(first) is bytes and first == bytes(range(256)) * 1024
    assert eventually(lambda: interp_stats(s)['borrows'] == 2)
    s.close()  # copied out now: the remaining items survive
    assert q.get() == first
    assert q.get() == (1, first)


def test_every_fallback_is_counted(interp, q):
    def counts():
        s = xinterp.runtime_stats()
        return {k: s[k] for k in ('fallback_pickled', 'fallback_function_code',
                                  'fallback_buffer_copied', 'bytes_copied_out_at_sender_close')}

    c0 = counts()
    q.put([1, 2])                               # not shareable: pickled
    q.get()
    interp.call(lambda: None)                   # a lambda travels as its code
    q.put(memoryview(bytearray(b'abcdef'))[::2])  # not contiguous: copied, not lent
    q.get()
    s = xinterp.create()
    s.prepare_main(q=q)
    s.exec('q.put(bytes(100_000))')             # large bytes, read in place ...
    s.close()                                   # ... until the sender closes: copied out
    assert q.get() == bytes(100_000)
    c1 = counts()
    assert c1['fallback_pickled'] - c0['fallback_pickled'] >= 1
    assert c1['fallback_function_code'] - c0['fallback_function_code'] == 1
    assert c1['fallback_buffer_copied'] - c0['fallback_buffer_copied'] == 1
    assert c1['bytes_copied_out_at_sender_close'] - c0['bytes_copied_out_at_sender_close'] == 1


def _queue_of(cls, maxsize=0):
    """A new queue as an instance of cls (Queue(id) returns the object that exists for an id,
    so a subclass instance must be the first object made for its queue)."""
    qid = _xinterp.queue_create(maxsize, 1, False)
    try:
        return cls(qid)
    finally:
        _xinterp.queue_release(qid)  # the object holds its own reference


def test_subclass_overrides_of_put_and_get_are_called():
    calls = []

    class LoggingQueue(xinterp.Queue):
        def put(self, obj, *args, **kwargs):
            calls.append(('put', obj))
            return super().put(obj, *args, **kwargs)

        def put_nowait(self, obj, **kwargs):
            calls.append(('put_nowait', obj))
            return super().put_nowait(obj, **kwargs)

        def get(self, *args, **kwargs):
            obj = super().get(*args, **kwargs)
            calls.append(('get', obj))
            return obj

        def get_nowait(self):
            obj = super().get_nowait()
            calls.append(('get_nowait', obj))
            return obj

    q = _queue_of(LoggingQueue)
    q.put(1)
    q.put_nowait(2)
    assert q.get(timeout=5) == 1
    assert q.get_nowait() == 2
    assert calls == [('put', 1), ('put_nowait', 2), ('get', 1), ('get_nowait', 2)]


def test_methods_a_subclass_does_not_override_keep_the_fast_path():
    class PeekingQueue(xinterp.Queue):
        def get(self, *args, **kwargs):
            return ('peeked', super().get(*args, **kwargs))

    q = _queue_of(PeekingQueue)
    q.put('x')
    assert q.get(timeout=5) == ('peeked', 'x')
    # put is still the handle's own C method, bound on the object; get is the override.
    assert vars(q)['put'] == q._handle.put and 'get' not in vars(q)
    plain = xinterp.create_queue()
    assert all(vars(plain)[name] == getattr(plain._handle, name)
               for name in ('put', 'put_nowait', 'get', 'get_nowait'))


class IndexLike:
    def __index__(self):
        return 3


@pytest.mark.parametrize('maxsize', [0, -1, -10, -2**63])
def test_negative_or_zero_maxsize_reads_back_as_given_and_is_unbounded(maxsize):
    # CPython 3.14: create_queue(-10).maxsize == -10, the queue unbounded and never full().
    q = xinterp.create_queue(maxsize)
    assert q.maxsize == maxsize
    assert type(q.maxsize) is int
    for i in range(100):
        assert not q.full()
        q.put_nowait(i)
    assert q.qsize() == 100 and not q.full()
    assert repr(q) == f'Queue({q.id})'
    # Seen from another interpreter, through the same queue id: the same maxsize.
    s = xinterp.create()
    try:
        assert s.call(evaluate, f'__import__("xinterp").Queue({q.id}).maxsize') == maxsize
    finally:
        s.close()


def test_maxsize_accepts_index_objects_and_refuses_the_rest():
    # 3.14 parses maxsize as a C ssize_t: anything with __index__ goes, other types are a
    # TypeError, out-of-range values an OverflowError.
    assert xinterp.create_queue(IndexLike()).maxsize == 3
    assert xinterp.create_queue(maxsize=True).maxsize == 1
    for bad in ('3', 3.0, None, [3]):
        with pytest.raises(TypeError):
            xinterp.create_queue(bad)
    for huge in (2**63, -2**63 - 1):
        with pytest.raises(OverflowError):
            xinterp.create_queue(huge)
    assert xinterp.create_queue().maxsize == 0  # the default, as 3.14's
