"""Bad input (issue 6, item 6): every public function, given wrong types, out-of-range values,
closed or destroyed objects, ids of dead interpreters or huge values, raises a clear Python
exception (the specific type, and a message that says what was wrong), never crashes, and
leaks nothing.

The cases are tables: (call, expected exception type, fragment of its message). The private
``xinterp._xinterp`` functions are swept too, since a user can reach them. Conftest's leak
check runs after every case. What could take the process down runs in a fresh process
(run_script), whose exit status and stderr are checked.
"""

import decimal
import gc
import math
import pickle
import threading
import time

import pytest

import xinterp
from xinterp import _xinterp, channels, pool, queues
from conftest import eventually, run_script
from shared_helpers import evaluate, identity

INF = float('inf')
NAN = float('nan')
NOT_FOUND = 'unrecognized interpreter ID'


class BadBool:
    """An object whose truth value raises: a block=/syncobj= flag that cannot be read."""

    def __bool__(self):
        raise ZeroDivisionError('bad bool')


def with_closure():
    y = 1

    def f():
        return y
    return f


def a_generator():
    yield 1


async def a_coroutine():
    pass


async def an_async_generator():
    yield 1


def nested_tuple(depth):
    t = ()
    for _ in range(depth):
        t = (t,)
    return t


def nested_list(depth):
    v = []
    for _ in range(depth):
        v = [v]
    return v


DEEP_TUPLE = nested_tuple(100_000)
DEEP_LIST = nested_list(100_000)


def _check(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value), str(info.value)
    return info.value


# --- ids: wrong types, out of range, too large, unknown -----------------------------------------

BAD_IDS = [
    pytest.param(-1, ValueError, 'must be a non-negative int', id='-1'),
    pytest.param(-2**70, ValueError, 'must be a non-negative int', id='-2**70'),
    pytest.param(2**63, OverflowError, 'too large', id='2**63'),
    pytest.param(2**64 + 1, OverflowError, 'too large', id='2**64+1'),
    pytest.param(10**100, OverflowError, 'too large', id='10**100'),
    pytest.param('1', TypeError, 'must be an int', id='str'),
    pytest.param(1.0, TypeError, 'must be an int', id='float'),
    pytest.param(None, TypeError, 'must be an int', id='None'),
    pytest.param(b'\x01', TypeError, 'must be an int', id='bytes'),
]

INTERPRETER_ID_FUNCS = {
    'Interpreter': lambda v: xinterp.Interpreter(v),
    '_xinterp.whence': lambda v: _xinterp.whence(v),
    '_xinterp.is_running': lambda v: _xinterp.is_running(v),
    '_xinterp.incref': lambda v: _xinterp.incref(v),
    '_xinterp.decref': lambda v: _xinterp.decref(v),
    '_xinterp.destroy': lambda v: _xinterp.destroy(v),
    '_xinterp.exec': lambda v: _xinterp.exec(v, 'pass'),
    '_xinterp.call': lambda v: _xinterp.call(v, len, ((),), None),
    '_xinterp.set___main___attrs': lambda v: _xinterp.set___main___attrs(v, {}),
}

QUEUE_ID_FUNCS = {
    'queues.Queue': lambda v: queues.Queue(v),
    '_xinterp.queue_handle': lambda v: _xinterp.queue_handle(v),
    '_xinterp.queue_release': lambda v: _xinterp.queue_release(v),
}

CHANNEL_ID_FUNCS = {
    'RecvChannel.recv': lambda v: channels.RecvChannel(v).recv(timeout=0),
    'RecvChannel.recv_nowait': lambda v: channels.RecvChannel(v).recv_nowait(),
    'RecvChannel.close': lambda v: channels.RecvChannel(v).close(),
    'RecvChannel.is_closed': lambda v: channels.RecvChannel(v).is_closed,
    'SendChannel.send': lambda v: channels.SendChannel(v).send(1, timeout=0),
    'SendChannel.send_nowait': lambda v: channels.SendChannel(v).send_nowait(1),
    'SendChannel.send_buffer': lambda v: channels.SendChannel(v).send_buffer(b'x', timeout=0),
    'SendChannel.send_buffer_nowait': lambda v: channels.SendChannel(v).send_buffer_nowait(b'x'),
    'SendChannel.close': lambda v: channels.SendChannel(v).close(),
    '_xinterp.channel_info': lambda v: _xinterp.channel_info(v),
}

ALL_ID_FUNCS = {**INTERPRETER_ID_FUNCS, **QUEUE_ID_FUNCS, **CHANNEL_ID_FUNCS}


@pytest.mark.parametrize('value, exc, fragment', BAD_IDS)
@pytest.mark.parametrize('fn', ALL_ID_FUNCS.values(), ids=ALL_ID_FUNCS.keys())
def test_bad_ids_are_refused(fn, value, exc, fragment):
    _check(lambda: fn(value), exc, fragment)


def test_id_errors_name_the_kind_of_id():
    _check(lambda: xinterp.Interpreter(-1), ValueError, 'interpreter ID')
    _check(lambda: queues.Queue(-1), ValueError, 'queue ID')
    _check(lambda: channels.RecvChannel(-1).recv_nowait(), ValueError, 'channel ID')
    _check(lambda: channels.SendChannel(2**64).close(), OverflowError, 'channel ID too large')


UNUSED = 2**63 - 1  # valid, never handed out

UNKNOWN_ID_CASES = [
    *[pytest.param(fn, xinterp.InterpreterNotFoundError, NOT_FOUND, id=name)
      for name, fn in INTERPRETER_ID_FUNCS.items() if name != '_xinterp.decref'],
    pytest.param(QUEUE_ID_FUNCS['queues.Queue'], queues.QueueNotFoundError, 'not found',
                 id='queues.Queue'),
    pytest.param(QUEUE_ID_FUNCS['_xinterp.queue_handle'], queues.QueueNotFoundError, 'not found',
                 id='_xinterp.queue_handle'),
    *[pytest.param(fn, channels.ChannelNotFoundError, 'not found', id=name)
      for name, fn in CHANNEL_ID_FUNCS.items()
      if name not in ('RecvChannel.is_closed', '_xinterp.channel_info')],
]


@pytest.mark.parametrize('fn, exc, fragment', UNKNOWN_ID_CASES)
def test_unknown_ids_raise_not_found(fn, exc, fragment):
    _check(lambda: fn(UNUSED), exc, fragment)
    assert issubclass(exc, xinterp.InterpreterError)


def test_unknown_ids_where_absence_is_an_answer():
    # Dropping a reference nobody holds is a no-op; an unknown channel reads as closed.
    assert _xinterp.decref(UNUSED) is None
    assert _xinterp.queue_release(UNUSED) is None
    assert channels.RecvChannel(UNUSED).is_closed
    assert channels.SendChannel(UNUSED).is_closed
    assert _xinterp.channel_info(UNUSED)[0] == 2


# --- closed ("dead") interpreters ---------------------------------------------------------------

DEAD_CASES = {
    'close': lambda i: i.close(),
    'close(timeout=0)': lambda i: i.close(timeout=0),
    'exec': lambda i: i.exec('pass'),
    'exec(function)': lambda i: i.exec(lambda: None),
    'call': lambda i: i.call(len, ()),
    'call(by code)': lambda i: i.call(lambda: 1),
    'prepare_main': lambda i: i.prepare_main(a=1),
    'prepare_main()': lambda i: i.prepare_main(),
    'is_running': lambda i: i.is_running(),
    '_xinterp.whence': lambda i: _xinterp.whence(i.id),
    '_xinterp.incref': lambda i: _xinterp.incref(i.id),
    '_xinterp.destroy': lambda i: _xinterp.destroy(i.id, 0),
    '_xinterp.exec': lambda i: _xinterp.exec(i.id, 'pass'),
    '_xinterp.call': lambda i: _xinterp.call(i.id, len, ((),), None),
    '_xinterp.set___main___attrs': lambda i: _xinterp.set___main___attrs(i.id, {'a': 1}),
    '_xinterp._post_test_calls': lambda i: _xinterp._post_test_calls(i.id, 'ok', 1),
}


@pytest.mark.parametrize('fn', DEAD_CASES.values(), ids=DEAD_CASES.keys())
def test_closed_interpreter_raises_not_found(dead, fn):
    _check(lambda: fn(dead), xinterp.InterpreterNotFoundError, NOT_FOUND)


def test_closed_interpreter_keeps_its_plain_attributes(dead):
    assert dead.id > 0
    assert dead.whence == '_interpreters module'
    assert repr(dead) == f'Interpreter({dead.id})'
    assert dead == dead and hash(dead) == hash(dead.id)
    assert xinterp.is_shareable(dead)  # by id; whoever decodes it learns it is gone
    assert dead not in xinterp.list_all()
    _xinterp.decref(dead.id)  # dropping a reference to a dead interpreter: nothing to do


def test_closed_interpreter_call_in_thread_reports_in_the_thread(dead, monkeypatch):
    seen = []
    monkeypatch.setattr(threading, 'excepthook', lambda args: seen.append(args.exc_value))
    dead.call_in_thread(len, ()).join()
    assert len(seen) == 1 and isinstance(seen[0], xinterp.InterpreterNotFoundError)


def test_id_of_a_dead_interpreter():
    i = xinterp.create()
    iid = i.id
    i.close()
    del i
    gc.collect()
    _check(lambda: xinterp.Interpreter(iid), xinterp.InterpreterNotFoundError,
           f'{NOT_FOUND} {iid}')
    assert iid not in [x.id for x in xinterp.list_all()]


def test_interpreter_received_after_it_closed(q1):
    i = xinterp.create()
    q1.put(i)
    q2 = xinterp.create_queue()
    q2.put(i)
    i.close()
    got = q1.get_nowait()  # this interpreter's one object for that id: it reports the close
    assert got is i
    _check(lambda: got.exec('pass'), xinterp.InterpreterNotFoundError, NOT_FOUND)
    del i, got
    gc.collect()
    _check(q2.get_nowait, xinterp.InterpreterNotFoundError, NOT_FOUND)  # no object left


def test_queue_of_a_closed_interpreter_is_gone():
    def make_queue_id():  # nested: travels by code
        import __main__
        import xinterp
        __main__.kept = xinterp.create_queue()
        return __main__.kept.id

    i = xinterp.create()
    qid = i.call(make_queue_id)  # made there, referenced only there
    i.close()
    _check(lambda: queues.Queue(qid), queues.QueueNotFoundError, f'queue {qid} not found')


def test_dropping_the_reference_of_an_interpreter_object_closes_it():
    # decref() drops a reference the caller must own; misused on one an Interpreter object
    # holds, it closes the interpreter under that object, which then reports it as gone.
    i = xinterp.create()
    _xinterp.decref(i.id)
    _check(lambda: i.exec('pass'), xinterp.InterpreterNotFoundError, NOT_FOUND)
    del i  # its own decref finds nothing to drop
    gc.collect()


# --- the main interpreter, a running one ---------------------------------------------------------

MAIN_CASES = [
    pytest.param(lambda m: m.close(), xinterp.InterpreterError,
                 'cannot close the current interpreter', id='close'),
    pytest.param(lambda m: m.close(timeout=-1), ValueError, 'non-negative', id='close-bad'),
    pytest.param(lambda m: m.exec('pass'), xinterp.InterpreterError, 'not created by xinterp',
                 id='exec'),
    pytest.param(lambda m: m.call(len, ()), xinterp.InterpreterError, 'not created by xinterp',
                 id='call'),
    pytest.param(lambda m: m.prepare_main(a=1), xinterp.InterpreterError,
                 'not created by xinterp', id='prepare_main'),
    pytest.param(lambda m: pool.release(m), ValueError, 'not made by xinterp.create()',
                 id='pool.release'),
]


@pytest.mark.parametrize('fn, exc, fragment', MAIN_CASES)
def test_main_interpreter_refuses(fn, exc, fragment):
    main = xinterp.get_main()
    _check(lambda: fn(main), exc, fragment)
    assert main.is_running()


def test_closing_main_or_current_from_a_subinterpreter(interp):
    for code, fragment in [('xinterp.get_main().close()', 'cannot close the main interpreter'),
                           ('xinterp.get_current().close()', 'cannot close the current')]:
        with pytest.raises(xinterp.ExecutionFailed) as info:
            interp.exec(f'import xinterp\n{code}')
        assert info.value.excinfo.type.__name__ == 'InterpreterError'
        assert fragment in info.value.excinfo.msg


def test_running_interpreter_refuses_close_and_reentry(interp):
    def wait_on_ev():  # nested: travels by code
        import __main__
        __main__.ev.get(timeout=30)

    ev = xinterp.create_queue()
    interp.prepare_main(ev=ev)
    t = interp.call_in_thread(wait_on_ev)
    assert eventually(interp.is_running)
    try:
        _check(interp.close, xinterp.InterpreterError, 'interpreter running')
        _check(lambda: interp.close(timeout=INF), xinterp.InterpreterError, 'running')
        _check(lambda: interp.exec('pass'), xinterp.InterpreterError, 'already running')
        _check(lambda: interp.call(len, ()), xinterp.InterpreterError, 'already running')
        _check(lambda: interp.prepare_main(a=1), xinterp.InterpreterError, 'already running')
    finally:
        ev.put(None)
        t.join()
    interp.exec('pass')  # usable again


# --- exec, call, prepare_main, is_shareable: wrong types and values ------------------------------

EXEC_CASES = [
    pytest.param(None, TypeError, 'expects a str, a function or a code object', id='None'),
    pytest.param(42, TypeError, 'expects a str, a function or a code object', id='int'),
    pytest.param(b'pass', TypeError, 'expects a str, a function or a code object', id='bytes'),
    pytest.param(['pass'], TypeError, 'expects a str, a function or a code object', id='list'),
    pytest.param(print, TypeError, 'expects a str, a function or a code object', id='builtin'),
    pytest.param('x = 1\0raise', ValueError, 'null bytes', id='NUL'),
    pytest.param('x = "\ud800"', UnicodeEncodeError, 'surrogates not allowed', id='surrogate'),
    pytest.param(lambda a: a, ValueError, 'takes no arguments', id='function-with-args'),
    pytest.param(lambda *a: a, ValueError, 'takes no arguments', id='function-varargs'),
    pytest.param(lambda **k: k, ValueError, 'takes no arguments', id='function-varkw'),
    pytest.param((lambda a: a).__code__, ValueError, 'takes no arguments', id='code-with-args'),
    pytest.param(with_closure(), ValueError, 'closure', id='closure'),
    pytest.param(with_closure().__code__, ValueError, 'free variables', id='code-freevars'),
    pytest.param(a_generator, ValueError, 'generator or coroutine', id='generator'),
    pytest.param(a_coroutine, ValueError, 'generator or coroutine', id='coroutine'),
    pytest.param(an_async_generator, ValueError, 'generator or coroutine', id='async-generator'),
]


@pytest.mark.parametrize('code, exc, fragment', EXEC_CASES)
def test_exec_refuses(interp, code, exc, fragment):
    interp.exec('ran = False')
    _check(lambda: interp.exec(code), exc, fragment)
    assert interp.call(evaluate, 'ran') is False  # refused before anything ran


@pytest.mark.parametrize('code, typename', [
    ('x = (', 'SyntaxError'),
    ('class E(Exception):\n    def __str__(self): raise ValueError\nraise E', 'E'),
    ('raise ValueError("x" * (10 << 20))', 'ValueError'),
    ('raise SystemExit(3)', 'SystemExit'),
    ('def f(): f()\nf()', 'RecursionError'),
    ('import no_such_module_xinterp', 'ModuleNotFoundError'),
    ('raise KeyboardInterrupt', 'KeyboardInterrupt'),
])
def test_exec_failures_in_the_interpreter_are_execution_failed(interp, code, typename):
    with pytest.raises(xinterp.ExecutionFailed) as info:
        interp.exec(code)
    assert info.value.excinfo.type.__name__ == typename
    interp.exec('pass')  # still usable


def test_exec_accepts_str_subclasses(interp):
    interp.exec(type('Source', (str,), {})('x = 7'))
    assert interp.call(evaluate, 'x') == 7


CALL_CASES = [
    pytest.param(None, (), {}, TypeError, 'expected a callable', id='None'),
    pytest.param(42, (), {}, TypeError, 'expected a callable', id='int'),
    pytest.param(with_closure(), (), {}, xinterp.NotShareableError, 'closure', id='closure'),
    pytest.param(len, (threading.Lock(),), {}, xinterp.NotShareableError, 'cannot be pickled',
                 id='unpicklable-arg'),
    pytest.param(identity, (), {'x': threading.Lock()}, xinterp.NotShareableError,
                 'cannot be pickled', id='unpicklable-kwarg'),
    pytest.param(threading.Lock, (), {}, xinterp.NotShareableError,
                 "the call's result cannot be returned", id='unpicklable-result'),
]


@pytest.mark.parametrize('fn, args, kwargs, exc, fragment', CALL_CASES)
def test_call_refuses(interp, fn, args, kwargs, exc, fragment):
    _check(lambda: interp.call(fn, *args, **kwargs), exc, fragment)
    assert interp.call(identity, 5) == 5


def test_call_with_wrong_arguments_fails_in_the_interpreter(interp):
    with pytest.raises(xinterp.ExecutionFailed) as info:
        interp.call(len, 1)
    assert info.value.excinfo.type.__name__ == 'TypeError'
    with pytest.raises(xinterp.ExecutionFailed) as info:
        interp.call(identity, 1, 2, 3)
    assert info.value.excinfo.type.__name__ == 'TypeError'


def test_call_in_thread_with_a_bad_callable_reports_in_the_thread(interp, monkeypatch):
    seen = []
    monkeypatch.setattr(threading, 'excepthook', lambda args: seen.append(args.exc_value))
    interp.call_in_thread(None).join()
    assert len(seen) == 1 and isinstance(seen[0], TypeError)
    assert 'expected a callable' in str(seen[0])


PREPARE_MAIN_CASES = [
    pytest.param((1,), {}, TypeError, 'not iterable', id='int'),
    pytest.param(({1: 2},), {}, TypeError, 'names must be str', id='int-key'),
    pytest.param(([(b'a', 2)],), {}, TypeError, 'names must be str', id='bytes-key'),
    pytest.param(({'\ud800': 2},), {}, UnicodeEncodeError, 'surrogates', id='surrogate-key'),
    pytest.param((), {'a': threading.Lock()}, xinterp.NotShareableError, 'cannot be pickled',
                 id='unpicklable'),
    pytest.param(({}, {}), {}, TypeError, 'positional argument', id='two-positional'),
]


@pytest.mark.parametrize('args, kwargs, exc, fragment', PREPARE_MAIN_CASES)
def test_prepare_main_refuses(interp, args, kwargs, exc, fragment):
    _check(lambda: interp.prepare_main(*args, **kwargs), exc, fragment)
    assert interp.call(evaluate, "'a' in globals()") is False  # nothing half-bound


def test_is_shareable_signature_and_odd_objects():
    _check(lambda: xinterp.is_shareable(), TypeError, 'takes exactly one argument')
    _check(lambda: xinterp.is_shareable(1, 2), TypeError, 'takes exactly one argument')
    assert xinterp.is_shareable(NAN) and xinterp.is_shareable(INF)
    assert not xinterp.is_shareable(decimal.Decimal(1))
    assert not xinterp.is_shareable((1, [2]))


class FailingBuffer:
    """A buffer exporter (PEP 688) whose __buffer__ raises."""

    def __buffer__(self, flags):
        raise ValueError('no buffer today')


def test_a_failing_buffer_exporter_raises_its_own_error(interp, q1, chan):
    _check(lambda: q1.put(FailingBuffer()), ValueError, 'no buffer today')
    _check(lambda: interp.call(identity, FailingBuffer()), ValueError, 'no buffer today')
    _check(lambda: chan[1].send_nowait(FailingBuffer()), ValueError, 'no buffer today')
    assert q1.empty()


def test_released_or_resized_buffers(q1):
    m = memoryview(bytearray(b'abc'))
    m.release()
    _check(lambda: q1.put(m), ValueError, 'released memoryview')
    b = bytearray(b'lent')
    q1.put(b)
    _check(lambda: b.extend(b'x'), BufferError, 're-sized')  # held while the item is queued
    view = q1.get_nowait()
    del view
    b.extend(b'x')  # given back: resizable again
    assert q1.empty()


# --- Interpreter.close(timeout=...) --------------------------------------------------------------

BAD_TIMEOUTS = [
    pytest.param(-1, ValueError, 'non-negative', id='-1'),
    pytest.param(-1e-9, ValueError, 'non-negative', id='-1e-9'),
    pytest.param(NAN, ValueError, 'non-negative', id='nan'),
    pytest.param(-INF, ValueError, 'non-negative', id='-inf'),
    pytest.param(-2**64, ValueError, 'non-negative', id='-2**64'),
    pytest.param(10**400, OverflowError, 'too large to convert to float', id='10**400'),
    pytest.param('1', TypeError, 'number of seconds', id='str'),
    pytest.param(b'1', TypeError, 'number of seconds', id='bytes'),
    pytest.param([], TypeError, 'number of seconds', id='list'),
    pytest.param(1j, TypeError, 'number of seconds', id='complex'),
    pytest.param(decimal.Decimal('0.5'), TypeError, 'number of seconds', id='Decimal'),
]

HUGE_TIMEOUTS = [
    pytest.param(INF, id='inf'), pytest.param(1e300, id='1e300'),
    pytest.param(2**64, id='2**64'), pytest.param(10**18, id='10**18'),
]


@pytest.mark.parametrize('timeout, exc, fragment', BAD_TIMEOUTS)
def test_close_refuses_bad_timeouts_and_leaves_the_interpreter_intact(interp, timeout, exc,
                                                                      fragment):
    _check(lambda: interp.close(timeout=timeout), exc, fragment)
    interp.exec('pass')


def test_close_timeout_is_keyword_only(interp):
    _check(lambda: interp.close(1), TypeError, 'positional argument')


@pytest.mark.parametrize('timeout', [*HUGE_TIMEOUTS, pytest.param(True, id='True'),
                                     pytest.param(0, id='0'), pytest.param(-0.0, id='-0.0')])
def test_close_with_huge_or_edge_timeouts(timeout):
    i = xinterp.create()
    i.close(timeout=timeout)  # nothing borrowed: closes at once
    _check(i.close, xinterp.InterpreterNotFoundError, NOT_FOUND)


def test_close_of_a_lender_with_bad_then_short_timeouts(q1):
    i = xinterp.create()
    i.prepare_main(q=q1)
    i.exec('b = bytearray(b"lent")\nq.put(b)')
    view = q1.get()
    _check(lambda: i.close(timeout=NAN), ValueError, 'non-negative')
    _check(lambda: i.close(timeout=0), xinterp.InterpreterError, 'still borrowed')
    assert bytes(view) == b'lent'  # intact after both refusals
    del view
    i.close(timeout=INF)  # nothing borrowed any more: returns at once


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
    _check(lambda: queues.create(*args, **kwargs), exc, fragment)
    assert len(queues.list_all()) == before


def test_create_queue_edge_values():
    assert xinterp.create_queue(2**62).maxsize == 2**62  # huge but valid: nothing allocated
    assert xinterp.create_queue(True).maxsize == 1       # a bool is an int
    # Negative means unbounded, as in queue.Queue and CPython 3.14 (default -1).
    assert xinterp.create_queue(-1).maxsize == 0
    assert xinterp.create_queue(-2**70).maxsize == 0


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
    _check(lambda: op(q1, timeout), exc, fragment)  # checked even when no wait is needed
    assert q1.qsize() == (1 if fill else 0)


@pytest.mark.parametrize('timeout', [0, -0.0, 1e-9, 0.01, False])
def test_queue_zero_and_tiny_timeouts(q1, timeout):
    t0 = time.monotonic()
    _check(lambda: q1.get(timeout=timeout), queues.QueueEmpty, 'is empty')
    q1.put(1)
    _check(lambda: q1.put(2, timeout=timeout), queues.QueueFull, 'is full')
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize('timeout', HUGE_TIMEOUTS)
def test_queue_huge_timeouts_wait_and_wake(q1, timeout):
    timer = threading.Timer(0.05, q1.put, ('woken',))
    timer.start()
    assert q1.get(timeout=timeout) == 'woken'
    timer.join()
    q1.put('fill')
    timer = threading.Timer(0.05, q1.get)
    timer.start()
    q1.put('second', timeout=timeout)  # waits for the get to make room
    timer.join()
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
    _check(lambda: fn(q1), exc, fragment)
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
    q.put(bytearray(16))  # a lent buffer: given back when the queue goes
    qid = q.id
    blob = pickle.dumps(q)
    del q
    gc.collect()
    _check(lambda: queues.Queue(qid), queues.QueueNotFoundError, f'queue {qid} not found')
    _check(lambda: pickle.loads(blob), queues.QueueNotFoundError, 'not found')
    assert qid not in [x.id for x in queues.list_all()]


def test_queue_released_once_too_often_is_closed_not_crashed():
    # queue_release() drops a reference the caller must own; misused, it ends the queue under
    # its Queue objects, which then report it closed.
    q = xinterp.create_queue()
    q.put(bytearray(16))
    _xinterp.queue_release(q.id)
    _check(lambda: q.put(1), queues.QueueError, 'is closed')
    _check(q.get_nowait, queues.QueueError, 'is closed')
    _check(lambda: q.get(timeout=1e300), queues.QueueError, 'is closed')
    assert q.qsize() == 0 and q.id not in [x.id for x in queues.list_all()]
    del q
    gc.collect()


def test_queue_handle_cannot_be_made_directly():
    handle_type = type(xinterp.create_queue()._handle)
    _check(handle_type, TypeError, 'cannot create')


# --- channels -----------------------------------------------------------------------------------

CHANNEL_TIMEOUT_OPS = {
    'recv': lambda r, s, t: r.recv(timeout=t),
    'send': lambda r, s, t: s.send(1, timeout=t),
    'send_buffer': lambda r, s, t: s.send_buffer(bytearray(1), timeout=t),
}


@pytest.mark.parametrize('timeout, exc, fragment', BAD_TIMEOUTS)
@pytest.mark.parametrize('op', CHANNEL_TIMEOUT_OPS.values(), ids=CHANNEL_TIMEOUT_OPS.keys())
def test_channel_refuses_bad_timeouts(chan, op, timeout, exc, fragment):
    r, s = chan
    _check(lambda: op(r, s, timeout), exc, fragment)
    assert r.recv_nowait(None) is None  # nothing was sent


@pytest.mark.parametrize('timeout', [0, -0.0, 1e-9, 0.01])
def test_channel_zero_and_tiny_timeouts(chan, timeout):
    r, s = chan
    _check(lambda: r.recv(timeout=timeout), TimeoutError, 'timed out')  # was: returned None
    _check(lambda: s.send(1, timeout=timeout), TimeoutError, 'timed out')
    _check(r.recv_nowait, channels.ChannelEmptyError, 'is empty')  # the send was withdrawn


@pytest.mark.parametrize('timeout', HUGE_TIMEOUTS)
def test_channel_huge_timeouts_wait_and_wake(chan, timeout):
    r, s = chan
    timer = threading.Timer(0.05, s.send_nowait, ('woken',))
    timer.start()
    assert r.recv(timeout=timeout) == 'woken'
    timer.join()
    got = []
    t = threading.Thread(target=lambda: got.append(r.recv(timeout=10)))
    t.start()
    s.send('rendezvous', timeout=timeout)
    t.join()
    assert got == ['rendezvous']


CHANNEL_CALL_CASES = [
    pytest.param(lambda r, s: s.send_buffer(1), TypeError, 'buffer protocol', id='send_buffer-int'),
    pytest.param(lambda r, s: s.send_buffer_nowait('x'), TypeError, 'buffer protocol',
                 id='send_buffer_nowait-str'),
    pytest.param(lambda r, s: s.send_nowait(threading.Lock()), xinterp.NotShareableError,
                 'cannot be pickled', id='send-lock'),
    pytest.param(lambda r, s: s.send_nowait(1, unbound='x'), ValueError, 'unbounditems must be',
                 id='send-unbound'),
    pytest.param(lambda r, s: s.send_nowait(1, unbounditems=2), ValueError,
                 'unbounditems must be', id='send-unbounditems'),
    pytest.param(lambda r, s: s.send(), TypeError, 'missing', id='send()'),
    pytest.param(lambda r, s: r.recv(1, 2), TypeError, 'positional', id='recv-2'),
    pytest.param(lambda r, s: r.recv_nowait(), channels.ChannelEmptyError, 'is empty',
                 id='recv_nowait'),
]


@pytest.mark.parametrize('fn, exc, fragment', CHANNEL_CALL_CASES)
def test_channel_methods_refuse(chan, fn, exc, fragment):
    _check(lambda: fn(*chan), exc, fragment)
    assert chan[0].recv_nowait(None) is None


@pytest.mark.parametrize('kwargs, exc, fragment', [
    ({'unbounditems': 'x'}, ValueError, 'unbounditems must be'),
    ({'unbounditems': None}, ValueError, 'unbounditems must be'),
    ({'unbound': queues.UNBOUND}, TypeError, 'unexpected keyword'),
])
def test_channel_create_refuses(kwargs, exc, fragment):
    _check(lambda: channels.create(**kwargs), exc, fragment)


def test_channel_ends_refuse_non_int_ids():
    for end in (channels.RecvChannel, channels.SendChannel):
        _check(lambda: end('1'), TypeError, 'channel id must be an int')


CLOSED_CHANNEL_CASES = {
    'send': lambda r, s: s.send(1, timeout=1e300),
    'send_nowait': lambda r, s: s.send_nowait(1),
    'send_buffer': lambda r, s: s.send_buffer(bytearray(1), timeout=INF),
    'send_buffer_nowait': lambda r, s: s.send_buffer_nowait(bytearray(1)),
    'recv': lambda r, s: r.recv(timeout=INF),
    'recv_nowait': lambda r, s: r.recv_nowait(),
    'recv_nowait(default)': lambda r, s: r.recv_nowait(None),
    'RecvChannel.close': lambda r, s: r.close(),
}


@pytest.mark.parametrize('which_end', ['send', 'recv'])
@pytest.mark.parametrize('fn', CLOSED_CHANNEL_CASES.values(), ids=CLOSED_CHANNEL_CASES.keys())
def test_closed_channel_raises_closed(chan, fn, which_end):
    r, s = chan
    (s if which_end == 'send' else r).close()
    _check(lambda: fn(r, s), channels.ChannelClosedError, 'is closed')
    assert r.is_closed and s.is_closed


def test_closing_a_channel_with_items(chan):
    r, s = chan
    s.send_nowait(bytearray(8))  # lent; given back when the channel ends
    _check(r.close, channels.ChannelNotEmptyError, 'still has items')
    s.close()
    s.close()  # closing the send end again is harmless
    assert isinstance(r.recv(timeout=1), memoryview)  # the receiver drains it, then it closes
    _check(r.recv_nowait, channels.ChannelClosedError, 'is closed')


# --- the warm pool and InterpreterPoolExecutor ---------------------------------------------------

@pytest.mark.parametrize('obj', [None, 1, 'x', xinterp.Interpreter, object()],
                         ids=['None', 'int', 'str', 'class', 'object'])
def test_pool_release_refuses_non_interpreters(obj):
    _check(lambda: pool.release(obj), TypeError, 'expects an xinterp.Interpreter')


def test_pool_release_refuses_queues(q1):
    _check(lambda: pool.release(q1), TypeError, 'expects an xinterp.Interpreter')


def test_pool_release_twice(monkeypatch):
    monkeypatch.setattr(pool, 'max_idle', pool.idle_count() + 4)  # room: release pools it
    i = pool.acquire()
    pool.release(i)
    idle = pool.idle_count()
    _check(lambda: pool.release(i), ValueError, 'already released')
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
    _check(lambda: pool.acquire(1), TypeError, 'positional argument')


EXECUTOR_CASES = [
    pytest.param({'max_workers': 0}, ValueError, 'greater than 0', id='max_workers=0'),
    pytest.param({'max_workers': -1}, ValueError, 'greater than 0', id='max_workers=-1'),
    pytest.param({'max_workers': -2**70}, ValueError, 'greater than 0', id='max_workers=-2**70'),
    pytest.param({'max_workers': 'x'}, TypeError, 'max_workers must be an int',
                 id='max_workers=str'),
    pytest.param({'max_workers': 1.5}, TypeError, 'max_workers must be an int',
                 id='max_workers=float'),
    pytest.param({'initializer': 42}, TypeError, 'initializer must be a callable',
                 id='initializer=int'),
    pytest.param({'foo': 1}, TypeError, 'unexpected keyword', id='unknown-keyword'),
]


@pytest.mark.parametrize('kwargs, exc, fragment', EXECUTOR_CASES)
def test_executor_refuses(kwargs, exc, fragment):
    _check(lambda: xinterp.InterpreterPoolExecutor(**kwargs), exc, fragment)


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
    _check(lambda: f.result(timeout=30), pool.BrokenInterpreterPool, 'initializer failed')
    ex.shutdown()


def test_executor_after_shutdown():
    ex = xinterp.InterpreterPoolExecutor(max_workers=1)
    assert ex.submit(identity, 1).result(timeout=30) == 1
    ex.shutdown()
    _check(lambda: ex.submit(identity, 1), RuntimeError, 'after shutdown')
    _check(lambda: ex.map(identity, [1]), RuntimeError, 'after shutdown')
    ex.shutdown()  # twice: harmless


# --- huge values and deep nesting ---------------------------------------------------------------

DEEP_SENDS = {
    'queue.put': lambda i, q, s, v: q.put(v),
    'queue.put_nowait': lambda i, q, s, v: q.put_nowait(v),
    'call(arg)': lambda i, q, s, v: i.call(identity, v),
    'call(kwarg)': lambda i, q, s, v: i.call(identity, x=v),
    'prepare_main': lambda i, q, s, v: i.prepare_main(v=v),
    'send_nowait': lambda i, q, s, v: s.send_nowait(v),
}


@pytest.mark.parametrize('value', [DEEP_TUPLE, DEEP_LIST], ids=['tuple', 'list'])
@pytest.mark.parametrize('send', DEEP_SENDS.values(), ids=DEEP_SENDS.keys())
def test_deeply_nested_values_are_not_shareable(interp, q1, chan, send, value):
    # 100000 levels: not natively shareable (at most 200 deep), and pickle refuses them with
    # its RecursionError, reported as NotShareableError.
    assert not xinterp.is_shareable(value)
    _check(lambda: send(interp, q1, chan[1], value), xinterp.NotShareableError, 'recursion')
    assert q1.empty() and chan[0].recv_nowait(None) is None


def test_deep_tuple_with_syncobj_says_why():
    q = xinterp.create_queue(syncobj=True)
    _check(lambda: q.put(DEEP_TUPLE), xinterp.NotShareableError, 'nested at most 200 deep')


@pytest.mark.parametrize('depth, shareable', [(150, True), (200, True), (300, False),
                                              (800, False)])
def test_moderately_nested_tuples_travel(interp, q1, depth, shareable):
    value = nested_tuple(depth)
    assert xinterp.is_shareable(value) is shareable
    q1.put(value)  # natively, or by pickle beyond 200 levels
    assert q1.get_nowait() == value
    assert interp.call(identity, value) == value


def test_tuples_sharing_sub_tuples_do_not_blow_up(interp, q1):
    # 100 tuples referencing each other twice: 2**100 values if copied item by item (was: a
    # hang in is_shareable() and put()). Beyond 2**22 copied values a tuple goes by pickle,
    # which keeps the sharing.
    dag = ()
    for _ in range(100):
        dag = (dag, dag)
    assert not xinterp.is_shareable(dag)
    def check(got):  # (== would walk all 2**100 paths of two distinct copies)
        depth = 0
        while got:
            assert got[0] is got[1]
            got, depth = got[0], depth + 1
        assert depth == 100

    q1.put(dag)
    check(q1.get_nowait())
    check(interp.call(identity, dag))  # by pickle both ways
    _check(lambda: xinterp.create_queue(syncobj=True).put(dag), xinterp.NotShareableError,
           'values in all')
    small = ()
    for _ in range(18):  # 2**19 copied values: natively shared, copied
        small = (small, small)
    assert xinterp.is_shareable(small)
    q1.put(small)
    got = q1.get_nowait()
    assert got == small and got[0] is not got[1]


def test_wide_tuples_beyond_the_native_limit_go_by_pickle(q1):
    wide = (0,) * (1 << 22)  # 2**22 + 1 values with the tuple itself
    assert not xinterp.is_shareable(wide)
    q1.put(wide)
    assert q1.get_nowait() == wide
    assert xinterp.is_shareable(wide[1:])


HUGE_INTS = [10**5000, -(10**5000), 2**100_000, -2**63 - 1, 2**64, 2**63]


@pytest.mark.parametrize('value', HUGE_INTS, ids=['10**5000', '-10**5000', '2**100000',
                                                  '-2**63-1', '2**64', '2**63'])
def test_huge_ints_are_shareable_and_travel(interp, q1, chan, value):
    # Beyond sys.get_int_max_str_digits() (4300 digits): was a ValueError from str(int).
    assert xinterp.is_shareable(value)
    q1.put(value)
    assert q1.get_nowait() == value
    assert interp.call(identity, value) == value
    chan[1].send_nowait(value)
    assert chan[0].recv_nowait() == value
    interp.prepare_main(v=value)
    assert interp.call(evaluate, 'v == ' + ('-' if value < 0 else '') + hex(abs(value)))


def test_huge_int_result_travels_back(interp):
    assert interp.call(pow, 10, 5000) == 10**5000


def test_huge_str_bytes_and_wide_tuples_travel(interp, q1):
    big_str = 'x' * (50 << 20) + '\ud800'  # 50 MiB, and a lone surrogate
    q1.put(big_str)
    assert q1.get_nowait() == big_str
    assert interp.call(len, big_str) == len(big_str)
    del big_str
    big_bytes = b'\xff' * (50 << 20)
    q1.put(big_bytes)
    assert q1.get_nowait() == big_bytes
    del big_bytes
    wide = tuple(range(1_000_000))
    assert xinterp.is_shareable(wide)
    q1.put(wide)
    assert q1.get_nowait() == wide
    interp.exec('s = "' + 'y' * (10 << 20) + '"')  # a 10 MiB source
    assert interp.call(evaluate, 'len(s)') == 10 << 20


@pytest.mark.parametrize('value', [NAN, INF, -INF, -0.0, 5e-324],
                         ids=['nan', 'inf', '-inf', '-0.0', 'denormal'])
def test_special_floats_travel(q1, value):
    q1.put(value)
    got = q1.get_nowait()
    assert (math.isnan(got) and math.isnan(value)) or (got == value and
                                                       math.copysign(1, got) ==
                                                       math.copysign(1, value))


# --- the private functions ----------------------------------------------------------------------

PRIVATE_CASES = [
    pytest.param(lambda: _xinterp.create(1), TypeError, 'takes no arguments', id='create(1)'),
    pytest.param(lambda: _xinterp.exec(0), TypeError, 'exec(id, code)', id='exec(0)'),
    pytest.param(lambda: _xinterp.call(0, len, [()], None), TypeError, 'args: tuple',
                 id='call-list-args'),
    pytest.param(lambda: _xinterp.call(0, len, ((),), []), TypeError, 'kwargs: dict',
                 id='call-list-kwargs'),
    pytest.param(lambda: _xinterp.call(0), TypeError, 'call(id, callable', id='call(0)'),
    pytest.param(lambda: _xinterp.set___main___attrs(0), TypeError, 'set___main___attrs(id',
                 id='set___main___attrs(0)'),
    pytest.param(lambda: _xinterp.destroy(), TypeError, 'at least 1 argument', id='destroy()'),
    pytest.param(lambda: _xinterp.destroy(UNUSED, 'x'), TypeError, 'number of seconds',
                 id='destroy-timeout'),
    pytest.param(lambda: _xinterp.queue_create(), TypeError, 'at least 2 arguments',
                 id='queue_create()'),
    pytest.param(lambda: _xinterp.queue_create(-1, 1), ValueError, 'maxsize must be 0',
                 id='queue_create-maxsize'),
    pytest.param(lambda: _xinterp.queue_create(0, 9), ValueError, 'unbounditems must be',
                 id='queue_create-unbound'),
    pytest.param(lambda: _xinterp.queue_create(0, 'x'), TypeError, 'integer',
                 id='queue_create-unbound-str'),
    pytest.param(lambda: _xinterp.queue_create(0, 2**70), OverflowError, 'too large',
                 id='queue_create-unbound-huge'),
    pytest.param(lambda: _xinterp.channel_create(0), ValueError, 'unbounditems must be',
                 id='channel_create(0)'),
    pytest.param(lambda: _xinterp.channel_create('x'), TypeError, 'integer',
                 id='channel_create(str)'),
    pytest.param(lambda: _xinterp.channel_send(1), TypeError, 'channel_send(id',
                 id='channel_send(1)'),
    pytest.param(lambda: _xinterp.channel_recv(), TypeError, 'channel_recv(id',
                 id='channel_recv()'),
    pytest.param(lambda: _xinterp.channel_close(1), TypeError, 'exactly 4 arguments',
                 id='channel_close(1)'),
    pytest.param(lambda: _xinterp._set_queue_exceptions(1), TypeError, 'exactly 8 arguments',
                 id='_set_queue_exceptions(1)'),
    pytest.param(lambda: _xinterp._set_queue_exceptions(*[1] * 8), TypeError,
                 'expected exception classes', id='_set_queue_exceptions-ints'),
    pytest.param(lambda: _xinterp._set_channel_exceptions(*[ValueError] * 4, 'x'), TypeError,
                 'expected exception classes', id='_set_channel_exceptions-str'),
    pytest.param(lambda: _xinterp._post_test_calls(0, 'bad', 1), ValueError,
                 "kind must be 'ok' or 'fail'", id='_post_test_calls-kind'),
]


@pytest.mark.parametrize('fn, exc, fragment', PRIVATE_CASES)
def test_private_functions_refuse(fn, exc, fragment):
    _check(fn, exc, fragment)


def test_private_channel_functions_with_bad_flags(chan):
    r, s = chan
    _check(lambda: _xinterp.channel_send(r.id, 1, 7, False, None, False), ValueError,
           'unbounditems must be')
    _check(lambda: _xinterp.channel_send(r.id, 1, 'x', False, None, False), TypeError, 'integer')
    _check(lambda: _xinterp.channel_send(r.id, 1, 2**70, False, None, False), OverflowError,
           'too large')
    _check(lambda: _xinterp.channel_send(r.id, 1, 0, BadBool(), None, False), ZeroDivisionError,
           'bad bool')
    _check(lambda: _xinterp.channel_recv(r.id, BadBool(), None), ZeroDivisionError, 'bad bool')
    assert r.recv_nowait(None) is None


def test_exceptions_still_right_after_refused_private_calls(q1):
    # The refused _set_*_exceptions calls above changed nothing.
    _check(q1.get_nowait, queues.QueueEmpty, 'is empty')
    r, s = channels.create()
    try:
        _check(r.recv_nowait, channels.ChannelEmptyError, 'is empty')
    finally:
        _xinterp.channel_close(r.id, True, True, True)


# --- in a fresh process: what could crash it -----------------------------------------------------

def _assert_clean_exit(proc, expected_last_line='done'):
    assert proc.returncode == 0, proc.stderr[-3000:]
    for marker in ('Fatal Python error', 'Segmentation fault', 'SystemError', 'Traceback'):
        assert marker not in proc.stderr, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == expected_last_line, proc.stdout[-2000:]


def test_deep_nesting_in_a_subinterpreter_and_its_threads_does_not_crash():
    proc = run_script('''
        import threading, xinterp
        def deep(n, make):
            v = make()
            for _ in range(n):
                v = (v,) if isinstance(v, tuple) else [v]
            return v
        q = xinterp.create_queue()
        i = xinterp.create()
        i.prepare_main(q=q)
        for n in (10**5, 10**6):
            for make in (tuple, list):
                v = deep(n, make)
                assert not xinterp.is_shareable(v)
                for send in (q.put, lambda v: i.call(len, v), lambda v: i.prepare_main(v=v)):
                    try:
                        send(v)
                    except xinterp.NotShareableError as e:
                        assert 'recursion' in str(e), e
                    else:
                        raise AssertionError('sent')
        code = '\\n'.join([
            'import xinterp',
            'for box in (lambda v: (v,), lambda v: [v]):',
            '    v = ()',
            '    for _ in range(10**6):',
            '        v = box(v)',
            '    assert not xinterp.is_shareable(v)',
            '    try:',
            '        q.put(v)',
            '    except xinterp.NotShareableError as e:',
            '        assert "recursion" in str(e), e',
            '    else:',
            '        raise AssertionError("sent")',
            '    del v',
        ])
        i.exec(code)

        def run(source):  # from __main__: travels by code
            import __main__
            exec(source, __main__.__dict__)

        t = i.call_in_thread(run, code)  # on a thread's own C stack
        t.join()
        i.close()
        assert q.empty()
        print('done')
    ''', timeout=300)
    _assert_clean_exit(proc)


def test_a_subinterpreter_with_its_state_broken_does_not_crash():
    proc = run_script('''
        import xinterp
        for setup in ('import sys; sys.modules["__main__"] = 5',
                      'import sys; del sys.modules["__main__"]',
                      'import sys; sys.modules["pickle"] = None',
                      'import sys; sys.modules["xinterp"] = 7',
                      'import sys; sys.modules["xinterp.queues"] = None',
                      '__builtins__ = 1'):
            i = xinterp.create()
            i.exec(setup)
            for fn in (lambda: i.exec('x = 1'), lambda: i.exec(lambda: None),
                       lambda: i.call(len, [1]), lambda: i.call(lambda: 2),
                       lambda: i.prepare_main(a=1, q=xinterp.create_queue()),
                       lambda: i.call(len, (i,)), lambda: i.call(dict)):
                try:
                    fn()
                except (xinterp.ExecutionFailed, xinterp.NotShareableError):
                    pass
            i.close()
        print('done')
    ''')
    _assert_clean_exit(proc)


def test_use_after_shutdown_does_not_crash():
    proc = run_script('''
        import xinterp
        from xinterp import _xinterp, channels
        i = xinterp.create()
        q = xinterp.create_queue()
        q.put(bytearray(8))
        r, s = channels.create()
        _xinterp._shutdown()
        def expect(exc, fragment, fn):
            try:
                fn()
            except exc as e:
                assert fragment in str(e), (fragment, e)
            else:
                raise AssertionError(f'no {exc.__name__}')
        expect(xinterp.InterpreterNotFoundError, 'unrecognized interpreter ID', lambda: i.exec('1'))
        expect(xinterp.QueueError, 'is closed', q.get_nowait)
        expect(xinterp.QueueError, 'is closed', lambda: q.put(1))
        expect(xinterp.InterpreterError, 'shut down', xinterp.create)
        expect(channels.ChannelClosedError, 'is closed', lambda: s.send_nowait(1))
        expect(channels.ChannelClosedError, 'is closed', r.recv_nowait)
        _xinterp._shutdown()  # twice
        print('done')
    ''')
    _assert_clean_exit(proc)


def test_exit_after_a_sweep_of_bad_input_is_clean():
    proc = run_script('''
        import gc, xinterp
        from xinterp import _xinterp, channels, pool, queues
        i = xinterp.create()
        j = xinterp.create()
        _xinterp.decref(j.id)                       # j closed under its object
        q = xinterp.create_queue()
        q.put(bytearray(8))
        _xinterp.queue_release(q.id)                # q closed under its object
        q2 = xinterp.create_queue()
        i.prepare_main(q2=q2)
        i.exec('q2.put(bytearray(b"held by main"))')
        view = q2.get()                             # main keeps a view of i's buffer at exit
        r, s = channels.create()
        s.send_nowait(bytearray(4))                 # left in an open channel at exit
        for bad in (-1, 2**64, 'x', None):
            for fn in (xinterp.Interpreter, queues.Queue, _xinterp.decref, _xinterp.destroy):
                try:
                    fn(bad)
                except (TypeError, ValueError, OverflowError):
                    pass
        try:
            pool.release(j)
        except Exception as e:
            raise AssertionError(e)
        print('done')
    ''')
    _assert_clean_exit(proc)


@pytest.mark.memory
def test_failing_calls_leak_nothing():
    proc = run_script('''
        import gc, threading, xinterp
        from xinterp import _xinterp, channels, pool, queues

        def rss_kib():
            with open('/proc/self/status') as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        return int(line.split()[1])

        i = xinterp.create()
        dead = xinterp.create()
        dead.close()
        q = xinterp.create_queue(maxsize=1)
        q.put(1)
        r, s = channels.create()
        lock = threading.Lock()
        deep = ()
        for _ in range(50_000):
            deep = (deep,)
        cases = [
            lambda: xinterp.Interpreter(-1),
            lambda: xinterp.Interpreter(2**64),
            lambda: xinterp.Interpreter(2**63 - 1),
            lambda: queues.Queue(2**63 - 1),
            lambda: dead.exec('pass'),
            lambda: dead.close(),
            lambda: i.exec(None),
            lambda: i.exec('x = ('),
            lambda: i.exec('raise ValueError("x" * 1000)'),
            lambda: i.exec('a\\0b'),
            lambda: i.call(len, 1),
            lambda: i.call(len, lock),
            lambda: i.call(len, deep),
            lambda: i.prepare_main({1: 2}),
            lambda: i.close(timeout=float('nan')),
            lambda: q.put(2, timeout=0),
            lambda: q.put(2, timeout=-1),
            lambda: q.put(lock),
            lambda: q.put(2, unbounditems='x'),
            lambda: xinterp.create_queue(1.5),
            lambda: xinterp.create_queue(unbounditems='x'),
            lambda: r.recv(timeout=0),
            lambda: r.recv_nowait(),
            lambda: s.send(1, timeout=0),
            lambda: s.send_buffer(1),
            lambda: channels.RecvChannel(2**63 - 1).recv_nowait(),
            lambda: pool.release(None),
            lambda: xinterp.InterpreterPoolExecutor(max_workers=0),
            lambda: _xinterp.channel_send(r.id, 1, 7, False, None, False),
        ]
        kinds = set()

        def sweep():
            for fn in cases:
                try:
                    fn()
                except Exception as e:
                    kinds.add(type(e).__name__)
                else:
                    raise AssertionError(f'no exception from case {cases.index(fn)}')

        for _ in range(300):
            sweep()
        gc.collect()
        rss0 = rss_kib()
        for _ in range(2000):
            sweep()
        gc.collect()
        grown = rss_kib() - rss0
        assert 'SystemError' not in kinds, kinds
        print('grown_kib', grown)
        assert grown < 4 * 1024, grown
        stats = xinterp.runtime_stats()
        assert stats['queues'] == 1 and stats['interpreters_alive'] == 2, stats
        assert all(v['borrows'] == 0 for v in xinterp.stats().values())
        i.close()
        print('done')
    ''', timeout=600)
    _assert_clean_exit(proc)
