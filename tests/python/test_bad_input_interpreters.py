"""Bad input to interpreters: ids, closed interpreters, the main and a running interpreter,
exec(), call(), prepare_main(), close(timeout=...) and the private interpreter functions. Each
case raises a clear exception and leaves the interpreter intact (see bad_input_helpers)."""

import gc
import threading

import pytest

import xinterp
from xinterp import _xinterp, pool
from bad_input_helpers import BAD_IDS, BAD_TIMEOUTS, HUGE_TIMEOUTS, INF, NAN, NOT_FOUND, UNUSED
from bad_input_helpers import assert_clean_exit, check
from conftest import eventually, run_script
from shared_helpers import evaluate, identity


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


# --- ids: wrong types, out of range, too large, unknown -----------------------------------------

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


@pytest.mark.parametrize('value, exc, fragment', BAD_IDS)
@pytest.mark.parametrize('fn', INTERPRETER_ID_FUNCS.values(), ids=INTERPRETER_ID_FUNCS.keys())
def test_bad_ids_are_refused(fn, value, exc, fragment):
    check(lambda: fn(value), exc, fragment)


def test_id_errors_name_the_kind_of_id():
    check(lambda: xinterp.Interpreter(-1), ValueError, 'interpreter ID')


UNKNOWN_ID_CASES = [
    pytest.param(fn, xinterp.InterpreterNotFoundError, NOT_FOUND, id=name)
    for name, fn in INTERPRETER_ID_FUNCS.items() if name != '_xinterp.decref'
]


@pytest.mark.parametrize('fn, exc, fragment', UNKNOWN_ID_CASES)
def test_unknown_ids_raise_not_found(fn, exc, fragment):
    check(lambda: fn(UNUSED), exc, fragment)
    assert issubclass(exc, xinterp.InterpreterError)


def test_unknown_ids_where_absence_is_an_answer():
    # Dropping a reference nobody holds is a no-op.
    assert _xinterp.decref(UNUSED) is None


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
    check(lambda: fn(dead), xinterp.InterpreterNotFoundError, NOT_FOUND)


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
    check(lambda: xinterp.Interpreter(iid), xinterp.InterpreterNotFoundError,
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
    check(lambda: got.exec('pass'), xinterp.InterpreterNotFoundError, NOT_FOUND)
    del i, got
    gc.collect()
    check(q2.get_nowait, xinterp.InterpreterNotFoundError, NOT_FOUND)  # no object left


def test_dropping_the_reference_of_an_interpreter_object_closes_it():
    # decref() drops a reference the caller must own; misused on one an Interpreter object
    # holds, it closes the interpreter under that object, which then reports it as gone.
    i = xinterp.create()
    _xinterp.decref(i.id)
    check(lambda: i.exec('pass'), xinterp.InterpreterNotFoundError, NOT_FOUND)
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
    check(lambda: fn(main), exc, fragment)
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
        check(interp.close, xinterp.InterpreterError, 'interpreter running')
        check(lambda: interp.close(timeout=INF), xinterp.InterpreterError, 'running')
        check(lambda: interp.exec('pass'), xinterp.InterpreterError, 'already running')
        check(lambda: interp.call(len, ()), xinterp.InterpreterError, 'already running')
        check(lambda: interp.prepare_main(a=1), xinterp.InterpreterError, 'already running')
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
    check(lambda: interp.exec(code), exc, fragment)
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
    check(lambda: interp.call(fn, *args, **kwargs), exc, fragment)
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
    pytest.param((), {'a': threading.Lock()}, xinterp.NotShareableError, 'not shareable',
                 id='unpicklable'),
    pytest.param((), {'a': 1, 'b': [2]}, xinterp.NotShareableError, 'not shareable',
                 id='picklable-but-not-native'),
    pytest.param((), {}, ValueError, 'at least one name', id='no-names'),
    pytest.param(({}, {}), {}, TypeError, 'positional argument', id='two-positional'),
]


@pytest.mark.parametrize('args, kwargs, exc, fragment', PREPARE_MAIN_CASES)
def test_prepare_main_refuses(interp, args, kwargs, exc, fragment):
    check(lambda: interp.prepare_main(*args, **kwargs), exc, fragment)
    assert interp.call(evaluate, "'a' in globals()") is False  # nothing half-bound


# --- Interpreter.close(timeout=...) --------------------------------------------------------------

@pytest.mark.parametrize('timeout, exc, fragment', BAD_TIMEOUTS)
def test_close_refuses_bad_timeouts_and_leaves_the_interpreter_intact(interp, timeout, exc,
                                                                      fragment):
    check(lambda: interp.close(timeout=timeout), exc, fragment)
    interp.exec('pass')


def test_close_timeout_is_keyword_only(interp):
    check(lambda: interp.close(1), TypeError, 'positional argument')


@pytest.mark.parametrize('timeout', [*HUGE_TIMEOUTS, pytest.param(True, id='True'),
                                     pytest.param(0, id='0'), pytest.param(-0.0, id='-0.0')])
def test_close_with_huge_or_edge_timeouts(timeout):
    i = xinterp.create()
    i.close(timeout=timeout)  # nothing borrowed: closes at once
    check(i.close, xinterp.InterpreterNotFoundError, NOT_FOUND)


def test_close_of_a_lender_with_bad_then_short_timeouts(q1):
    i = xinterp.create()
    i.prepare_main(q=q1)
    i.exec('b = bytearray(b"lent")\nq.put(memoryview(b))')
    view = q1.get()
    check(lambda: i.close(timeout=NAN), ValueError, 'non-negative')
    check(lambda: i.close(timeout=0), xinterp.InterpreterError, 'still borrowed')
    assert bytes(view) == b'lent'  # intact after both refusals
    del view
    i.close(timeout=INF)  # nothing borrowed any more: returns at once


# --- the private interpreter functions ----------------------------------------------------------

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
    pytest.param(lambda: _xinterp._post_test_calls(0, 'bad', 1), ValueError,
                 "kind must be 'ok' or 'fail'", id='_post_test_calls-kind'),
]


@pytest.mark.parametrize('fn, exc, fragment', PRIVATE_CASES)
def test_private_functions_refuse(fn, exc, fragment):
    check(fn, exc, fragment)


# --- in a fresh process: what could crash it -----------------------------------------------------

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
    assert_clean_exit(proc)
