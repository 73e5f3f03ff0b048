"""Bad input to queues: ids, create_queue() arguments, put/get arguments and timeouts, queues
whose last reference went or that were released once too often, and the private queue
functions. Each case raises a clear exception and leaves the queue as it was (see
bad_input_helpers)."""

import gc
import pickle
import threading

import pytest

import xinterp
from xinterp import _xinterp, queues
from bad_input_helpers import BAD_IDS, BAD_TIMEOUTS, HUGE_TIMEOUTS, UNUSED, BadBool, check
from conftest import act_when, parked_getters, parked_putters


# --- ids: wrong types, out of range, too large, unknown -----------------------------------------

QUEUE_ID_FUNCS = {
    'queues.Queue': lambda v: queues.Queue(v),
    '_xinterp.queue_handle': lambda v: _xinterp.queue_handle(v),
    '_xinterp.queue_release': lambda v: _xinterp.queue_release(v),
}


@pytest.mark.parametrize('value, exc, fragment', BAD_IDS)
@pytest.mark.parametrize('fn', QUEUE_ID_FUNCS.values(), ids=QUEUE_ID_FUNCS.keys())
def test_bad_ids_are_refused(fn, value, exc, fragment):
    check(lambda: fn(value), exc, fragment)


def test_id_errors_name_the_kind_of_id():
    check(lambda: queues.Queue(-1), ValueError, 'queue ID')


UNKNOWN_ID_CASES = [
    pytest.param(QUEUE_ID_FUNCS['queues.Queue'], queues.QueueNotFoundError, 'not found',
                 id='queues.Queue'),
    pytest.param(QUEUE_ID_FUNCS['_xinterp.queue_handle'], queues.QueueNotFoundError, 'not found',
                 id='_xinterp.queue_handle'),
]


@pytest.mark.parametrize('fn, exc, fragment', UNKNOWN_ID_CASES)
def test_unknown_ids_raise_not_found(fn, exc, fragment):
    check(lambda: fn(UNUSED), exc, fragment)
    assert issubclass(exc, xinterp.InterpreterError)


def test_unknown_ids_where_absence_is_an_answer():
    # Dropping a reference nobody holds is a no-op.
    assert _xinterp.queue_release(UNUSED) is None


def test_queue_of_a_closed_interpreter_is_gone():
    def make_queue_id():  # nested: travels by code
        import __main__
        import xinterp
        __main__.kept = xinterp.create_queue()
        return __main__.kept.id

    i = xinterp.create()
    qid = i.call(make_queue_id)  # made there, referenced only there
    i.close()
    check(lambda: queues.Queue(qid), queues.QueueNotFoundError, f'queue {qid} not found')


# --- queues -------------------------------------------------------------------------------------

CREATE_QUEUE_CASES = [
    pytest.param((2**63,), {}, OverflowError, 'too large', id='2**63'),
    pytest.param((10**100,), {}, OverflowError, 'too large', id='10**100'),
    pytest.param(('1',), {}, TypeError, 'maxsize must be an int', id='str'),
    pytest.param((1.5,), {}, TypeError, 'maxsize must be an int', id='float'),
    pytest.param((None,), {}, TypeError, 'maxsize must be an int', id='None'),
    pytest.param((0, 1), {}, TypeError, 'positional argument', id='two-positional'),
    pytest.param((), {'unbounditems': 'x'}, ValueError, 'unbounditems must be', id='ub-str'),
    pytest.param((), {'unbounditems': 1}, ValueError, 'unbounditems must be', id='ub-int'),
    pytest.param((), {'unbounditems': None}, ValueError, 'unbounditems must be', id='ub-None'),
    pytest.param((), {'unbounditems': []}, ValueError, 'unbounditems must be', id='ub-list'),
    pytest.param((), {'unbound': object()}, ValueError, 'unbounditems must be', id='unbound'),
    pytest.param((), {'unbounditems': queues.UNBOUND_ERROR, 'unbound': queues.UNBOUND},
                 TypeError, 'not both', id='both'),
    pytest.param((), {'syncobj': BadBool()}, ZeroDivisionError, 'bad bool', id='syncobj'),
    pytest.param((), {'foo': 1}, TypeError, 'unexpected keyword', id='unknown-keyword'),
]


@pytest.mark.parametrize('args, kwargs, exc, fragment', CREATE_QUEUE_CASES)
def test_create_queue_refuses(args, kwargs, exc, fragment):
    before = len(queues.list_all())
    check(lambda: queues.create(*args, **kwargs), exc, fragment)
    assert len(queues.list_all()) == before


def test_create_queue_edge_values():
    assert xinterp.create_queue(2**62).maxsize == 2**62  # huge but valid: nothing allocated
    assert xinterp.create_queue(True).maxsize == 1       # a bool is an int
    # Negative means unbounded and reads back as given, as in CPython 3.14; beyond ssize_t it
    # is an OverflowError there too.
    assert xinterp.create_queue(-1).maxsize == -1
    assert xinterp.create_queue(-2**63).maxsize == -2**63
    check(lambda: xinterp.create_queue(-2**70), OverflowError, 'too large')


QUEUE_OPS = {  # name: (fill the queue first, op)
    'put(full)': (True, lambda q, t: q.put(2, timeout=t)),
    'put(full, block=False)': (True, lambda q, t: q.put(2, False, t)),
    'put(room)': (False, lambda q, t: q.put(2, timeout=t)),
    'get(empty)': (False, lambda q, t: q.get(timeout=t)),
    'get(empty, block=False)': (False, lambda q, t: q.get(False, t)),
    'get(item)': (True, lambda q, t: q.get(timeout=t)),
}


@pytest.mark.parametrize('timeout, exc, fragment', BAD_TIMEOUTS)
@pytest.mark.parametrize('fill, op', QUEUE_OPS.values(), ids=QUEUE_OPS.keys())
def test_queue_refuses_bad_timeouts(q1, fill, op, timeout, exc, fragment):
    if fill:
        q1.put(1)
    check(lambda: op(q1, timeout), exc, fragment)  # checked even when no wait is needed
    assert q1.qsize() == (1 if fill else 0)


@pytest.mark.parametrize('timeout', [0, -0.0, 1e-9, 0.01, False])
def test_queue_zero_and_tiny_timeouts(q1, timeout):
    # Accepted, and they expire: the calls return (raising) instead of waiting for ever.
    check(lambda: q1.get(timeout=timeout), queues.QueueEmpty, 'is empty')
    q1.put(1)
    check(lambda: q1.put(2, timeout=timeout), queues.QueueFull, 'is full')


@pytest.mark.parametrize('timeout', HUGE_TIMEOUTS)
def test_queue_huge_timeouts_wait_and_wake(q1, timeout):
    # Each call really parks (with a timeout too long to convert naively) and is woken.
    waker = act_when(lambda: parked_getters(q1) >= 1, lambda: q1.put('woken'))
    assert q1.get(timeout=timeout) == 'woken'
    waker.join()
    assert waker.observed, 'get() never parked'
    q1.put('fill')
    waker = act_when(lambda: parked_putters(q1) >= 1, q1.get_nowait)
    q1.put('second', timeout=timeout)  # waits for the get to make room
    waker.join()
    assert waker.observed, 'put() never parked'
    assert q1.get_nowait() == 'second'


QUEUE_CALL_CASES = [
    pytest.param(lambda q: q.put(), TypeError, "missing required argument 'obj'", id='put()'),
    pytest.param(lambda q: q.put(1, obj=2), TypeError, 'multiple values', id='put-obj-twice'),
    pytest.param(lambda q: q.put(1, True, None, 4), TypeError, 'at most 3 positional',
                 id='put-4-positional'),
    pytest.param(lambda q: q.put(1, foo=1), TypeError, 'unexpected keyword', id='put-foo'),
    pytest.param(lambda q: q.put(1, BadBool()), ZeroDivisionError, 'bad bool', id='put-block'),
    pytest.param(lambda q: q.put(1, unbounditems='x'), ValueError, 'unbounditems must be',
                 id='put-unbounditems-str'),
    pytest.param(lambda q: q.put(1, unbounditems=1), ValueError, 'unbounditems must be',
                 id='put-unbounditems-int'),
    pytest.param(lambda q: q.put(1, unbound=object()), ValueError, 'unbounditems must be',
                 id='put-unbound'),
    pytest.param(lambda q: q.put(1, unbounditems=queues.UNBOUND, unbound=queues.UNBOUND),
                 TypeError, 'not both', id='put-both'),
    pytest.param(lambda q: q.put(1, syncobj=BadBool()), ZeroDivisionError, 'bad bool',
                 id='put-syncobj'),
    pytest.param(lambda q: q.put([1], syncobj=True), xinterp.NotShareableError, 'only None',
                 id='put-syncobj-list'),
    pytest.param(lambda q: q.put(threading.Lock()), xinterp.NotShareableError,
                 'cannot be pickled', id='put-lock'),
    pytest.param(lambda q: q.put_nowait(1, 2), TypeError, 'at most 1 positional',
                 id='put_nowait-2'),
    pytest.param(lambda q: q.put_nowait(threading.Lock()), xinterp.NotShareableError,
                 'cannot be pickled', id='put_nowait-lock'),
    pytest.param(lambda q: q.put_nowait(1, unbounditems='x'), ValueError, 'unbounditems',
                 id='put_nowait-unbounditems'),
    pytest.param(lambda q: q.get(1, 2, 3), TypeError, 'at most 2 positional', id='get-3'),
    pytest.param(lambda q: q.get(foo=1), TypeError, 'unexpected keyword', id='get-foo'),
    pytest.param(lambda q: q.get(block=True, timeout=0, block2=1), TypeError,
                 'unexpected keyword', id='get-extra-kw'),
    pytest.param(lambda q: q.get(BadBool()), ZeroDivisionError, 'bad bool', id='get-block'),
    pytest.param(lambda q: q.get_nowait(1), TypeError, 'takes no arguments', id='get_nowait-1'),
    pytest.param(lambda q: q.get_nowait(), queues.QueueEmpty, 'is empty', id='get_nowait'),
    pytest.param(lambda q: q.get(False), queues.QueueEmpty, 'is empty', id='get-no-block'),
]


@pytest.mark.parametrize('fn, exc, fragment', QUEUE_CALL_CASES)
def test_queue_methods_refuse(q1, fn, exc, fragment):
    check(lambda: fn(q1), exc, fragment)
    assert q1.qsize() == 0  # nothing half-put


def test_queue_errors_are_the_stdlib_ones_too(q1):
    import queue as stdlib_queue
    with pytest.raises(stdlib_queue.Empty):
        q1.get_nowait()
    q1.put(1)
    with pytest.raises(stdlib_queue.Full):
        q1.put_nowait(2)


def test_queue_whose_last_reference_was_dropped():
    q = xinterp.create_queue()
    q.put(memoryview(bytearray(16)))  # a lent buffer: given back when the queue goes
    qid = q.id
    blob = pickle.dumps(q)
    del q
    gc.collect()
    check(lambda: queues.Queue(qid), queues.QueueNotFoundError, f'queue {qid} not found')
    check(lambda: pickle.loads(blob), queues.QueueNotFoundError, 'not found')
    assert qid not in [x.id for x in queues.list_all()]


def test_queue_released_once_too_often_is_closed_not_crashed():
    # queue_release() drops a reference the caller must own; misused, it ends the queue under
    # its Queue objects, which then report it closed.
    q = xinterp.create_queue()
    q.put(memoryview(bytearray(16)))
    _xinterp.queue_release(q.id)
    check(lambda: q.put(1), queues.QueueError, 'is closed')
    check(q.get_nowait, queues.QueueError, 'is closed')
    check(lambda: q.get(timeout=1e300), queues.QueueError, 'is closed')
    assert q.qsize() == 0 and q.id not in [x.id for x in queues.list_all()]
    del q
    gc.collect()


def test_queue_handle_cannot_be_made_directly():
    handle_type = type(xinterp.create_queue()._handle)
    check(handle_type, TypeError, 'cannot create')


# --- the private queue functions -----------------------------------------------------------------

PRIVATE_CASES = [
    pytest.param(lambda: _xinterp.queue_create(), TypeError, 'at least 2 arguments',
                 id='queue_create()'),
    pytest.param(lambda: _xinterp.queue_create(-2**63 - 1, 1), OverflowError, 'too large',
                 id='queue_create-maxsize'),
    pytest.param(lambda: _xinterp.queue_create(0, 9), ValueError, 'unbounditems must be',
                 id='queue_create-unbound'),
    pytest.param(lambda: _xinterp.queue_create(0, 'x'), TypeError, 'integer',
                 id='queue_create-unbound-str'),
    pytest.param(lambda: _xinterp.queue_create(0, 2**70), OverflowError, 'too large',
                 id='queue_create-unbound-huge'),
    pytest.param(lambda: _xinterp._register_class('Queue', 1), TypeError, 'must be type',
                 id='_register_class-not-a-class'),
]


@pytest.mark.parametrize('fn, exc, fragment', PRIVATE_CASES)
def test_private_functions_refuse(fn, exc, fragment):
    check(fn, exc, fragment)


def test_exceptions_still_right_after_refused_private_calls(q1):
    # The refused _register_class call above changed nothing.
    check(q1.get_nowait, queues.QueueEmpty, 'is empty')

