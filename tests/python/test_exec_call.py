"""exec(), call(), call_in_thread(), prepare_main(), ExecutionFailed and sharing rules."""

import functools
import math
import operator
import threading

import pytest
from hypothesis import given, settings, strategies as st

import xinterp
from conftest import run_script
from shared_helpers import evaluate, identity, make_lock, mul, plain_function


def test_exec_source_runs_in_main_namespace(interp):
    interp.exec('import sys\nresult = sys.version_info[:2]')
    import sys
    assert interp.call(evaluate, 'result') == tuple(sys.version_info[:2])
    assert interp.call(evaluate, '__name__') == '__main__'



def test_exec_function_runs_its_body(interp):
    interp.exec(plain_function)
    assert interp.call(evaluate, 'ran_from_function') is True


def test_exec_code_object(interp):
    interp.exec(compile('z = 6 * 7', '<test>', 'exec'))
    assert interp.call(evaluate, 'z') == 42


def test_exec_rejects_bad_code(interp):
    with pytest.raises(TypeError):
        interp.exec(42)
    with pytest.raises(ValueError, match='no arguments'):
        interp.exec(lambda a: a)

    def with_closure():
        return interp

    with pytest.raises(ValueError, match='closure'):
        interp.exec(with_closure)


def test_exec_syntax_error_is_execution_failed(interp):
    with pytest.raises(xinterp.ExecutionFailed) as info:
        interp.exec('def (')
    assert info.value.excinfo.type.__name__ == 'SyntaxError'


def test_execution_failed_carries_excinfo(interp):
    with pytest.raises(xinterp.ExecutionFailed) as info:
        interp.exec('def inner():\n    raise KeyError("boom")\ninner()')
    e = info.value
    assert isinstance(e, xinterp.InterpreterError)
    assert e.excinfo.type.__name__ == 'KeyError'
    assert e.excinfo.type.__qualname__ == 'KeyError'
    assert e.excinfo.type.__module__ == 'builtins'
    assert e.excinfo.msg == "'boom'"
    assert e.excinfo.formatted == "KeyError: 'boom'"
    assert 'Traceback (most recent call last)' in e.excinfo.errdisplay
    assert 'in inner' in e.excinfo.errdisplay
    assert "KeyError: 'boom'" in str(e)
    assert 'Uncaught in the interpreter' in str(e)


def test_exception_does_not_leak_into_interpreter_state(interp):
    with pytest.raises(xinterp.ExecutionFailed):
        interp.exec('raise RuntimeError("x")')
    interp.exec('ok = True')  # the next exec starts clean
    assert interp.call(evaluate, 'ok')


def test_system_exit_is_reported_not_fatal(interp):
    with pytest.raises(xinterp.ExecutionFailed) as info:
        interp.exec('raise SystemExit(3)')
    assert info.value.excinfo.type.__name__ == 'SystemExit'
    interp.exec('pass')



def test_call_with_args_and_kwargs(interp):
    assert interp.call(mul, 3) == 6
    assert interp.call(mul, 3, 4) == 12
    assert interp.call(mul, 3, b=4, c=5) == 60


def test_call_builtin_and_module_callables(interp):
    assert interp.call(math.factorial, 25) == math.factorial(25)
    assert interp.call(operator.add, 'a', 'b') == 'ab'
    assert interp.call(len, (1, 2, 3)) == 3


def test_call_stateless_lambda_and_nested_function_travel_by_code(interp):
    # As 3.14: only stateless functions travel by code (test_main_functions.py has the rest).
    assert interp.call(lambda x: x + 1, 41) == 42

    def nested(x, y):
        return x * y

    assert interp.call(nested, 4, 10) == 40


# A fresh interpreter's __main__ in 3.14 (3.12 and 3.13 add '__annotations__').
FRESH_MAIN = ['__builtins__', '__doc__', '__loader__', '__name__', '__package__', '__spec__']


def test_call_builtins_that_read_the_frame_act_on_main(interp):
    # As 3.14, where call() runs with no frame and these fall back to __main__.
    assert interp.call(eval, '1+1') == 2
    assert interp.call(eval, 'sum([1, 2, 3])') == 6
    assert interp.call(exec, '...') is None
    assert interp.call(len, 'x') == 1
    names = interp.call(dir)
    assert [n for n in names if n != '__annotations__'] == FRESH_MAIN
    assert interp.call(eval, '__name__') == '__main__'
    interp.prepare_main(spam=42)
    assert interp.call(eval, 'spam') == 42
    assert 'spam' in interp.call(dir)
    interp.call(exec, 'eggs = spam + 1')
    assert interp.call(eval, 'eggs') == 43
    assert interp.call(eval, "'eggs' in vars() and 'eggs' in globals() and 'eggs' in locals()")
    # Wrapped in a callable object too.
    assert interp.call(functools.partial(eval, 'eggs * 2')) == 86
    assert interp.call(functools.partial(exec), 'ham = eggs') is None
    assert interp.call(eval, 'ham') == 43
    # Their results hold the builtins module, which cannot be pickled.
    for fn in (globals, locals, vars):
        with pytest.raises(xinterp.NotShareableError):
            interp.call(fn)


def test_call_builtin_failure_traceback_starts_in_the_callable(interp):
    with pytest.raises(xinterp.ExecutionFailed) as info:
        interp.call(eval, 'undefined_name')
    assert info.value.excinfo.type.__name__ == 'NameError'
    assert '<xinterp call>' not in info.value.excinfo.errdisplay


def test_call_function_with_closure_is_not_shareable(interp):
    k = 3
    with pytest.raises(xinterp.NotShareableError, match='closure'):
        interp.call(lambda: k)


def test_call_pickles_non_shareable_arguments_and_results(interp):
    assert interp.call(sorted, [3, 1, 2]) == [1, 2, 3]
    assert interp.call(dict, a=1, b=[2]) == {'a': 1, 'b': [2]}


def test_call_with_unpicklable_argument_is_not_shareable(interp):
    with pytest.raises(xinterp.NotShareableError, match='lock'):
        interp.call(len, threading.Lock())
    # NotShareableError is both spellings CPython used.
    assert issubclass(xinterp.NotShareableError, TypeError)
    assert issubclass(xinterp.NotShareableError, ValueError)



def test_call_with_unshareable_result(interp):
    with pytest.raises(xinterp.NotShareableError, match='result'):
        interp.call(make_lock)
    interp.exec('pass')  # the interpreter is fine


def test_call_exception_is_execution_failed(interp):
    with pytest.raises(xinterp.ExecutionFailed) as info:
        interp.call(operator.truediv, 1, 0)
    assert info.value.excinfo.type.__name__ == 'ZeroDivisionError'


def test_call_rejects_non_callable(interp):
    with pytest.raises(TypeError):
        interp.call(42)


def test_call_in_thread(interp):
    interp.exec('results = []')
    t = interp.call_in_thread(evaluate, 'results.append(7)')
    assert isinstance(t, threading.Thread)
    t.join()
    assert interp.call(evaluate, 'results') == [7]


def test_prepare_main(interp):
    interp.prepare_main({'a': 1}, b='two', c=(3, b'4'), d=2**100)
    assert interp.call(evaluate, '(a, b, c, d)') == (1, 'two', (3, b'4'), 2**100)


def test_prepare_main_needs_a_name(interp):
    with pytest.raises(ValueError):
        interp.prepare_main()
    with pytest.raises(ValueError):
        interp.prepare_main({})


def test_prepare_main_pickles_nothing_and_binds_nothing_when_refused(interp):
    # As 3.14: values must be natively shareable; a refused call binds none of them.
    with pytest.raises(xinterp.NotShareableError):
        interp.prepare_main(a=1, b=[5], c=3)
    with pytest.raises(xinterp.NotShareableError):
        interp.prepare_main({'x': 1}, y=plain_function)
    assert interp.call(evaluate, "[n for n in ('a', 'b', 'c', 'x', 'y') if n in globals()]") == []


def test_prepare_main_rejects_unshareable(interp):
    with pytest.raises(xinterp.NotShareableError):
        interp.prepare_main(lock=threading.Lock())
    with pytest.raises(TypeError):
        interp.prepare_main({1: 'x'})


@pytest.mark.parametrize('value,expected', [
    (None, True), (True, True), (0, True), (2**100, True), (1.5, True), ('s', True),
    (b'b', True), ((1, ('a', None)), True), ((), True), (bytearray(b'x'), False),
    (memoryview(b'x'), True),
    ([1], False), ({}, False), (object(), False), ((1, ()), True),
    # As CPython 3.14, by type alone: a tuple is shareable whatever it holds.
    ((1, [2]), True), ((1, ((), [])), True),
])
def test_is_shareable(value, expected):
    assert xinterp.is_shareable(value) is expected


shareable = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary(),
    lambda children: st.lists(children, max_size=4).map(tuple),
    max_leaves=20)



@pytest.fixture(scope='module')
def shared_interp():
    i = xinterp.create()
    yield i
    i.close()


@settings(max_examples=150, deadline=None)
@given(shareable)
def test_shareable_values_round_trip_exactly(shared_interp, value):
    assert xinterp.is_shareable(value)
    back = shared_interp.call(identity, value)
    assert back == value
    assert repr(back) == repr(value)  # same types all the way down (1 vs 1.0 vs True)


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1))
def test_lone_surrogates_round_trip(shared_interp, value):
    assert shared_interp.call(identity, value) == value



def test_uncaught_execution_failed_shows_one_xinterp_frame_and_the_remote_traceback():
    # As CPython 3.14 displays it (its suite checks the text): the caller's line, then exec()'s
    # own `raise ExecutionFailed(excinfo)`, then the other interpreter's traceback.
    proc = run_script('''
        import xinterp
        def script():
            raise RuntimeError('uh-oh!')
        interp = xinterp.create()
        interp.exec(script)
    ''')
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    frames = [k for k, line in enumerate(lines) if line.startswith('  File ')]
    xinterp_frames = [k for k in frames if 'xinterp' in lines[k]]
    assert len(xinterp_frames) == 1, proc.stderr
    assert lines[xinterp_frames[0]].endswith(', in exec'), proc.stderr
    assert lines[xinterp_frames[0] + 1].strip() == 'raise ExecutionFailed(excinfo)', proc.stderr
    assert 'xinterp.ExecutionFailed: RuntimeError: uh-oh!' in lines, proc.stderr
    remote = [line for line in lines[lines.index('Uncaught in the interpreter:'):] if line]
    assert '  File "<string>", line 4, in script' in remote, proc.stderr
    assert remote[-1] == 'RuntimeError: uh-oh!', proc.stderr
    assert proc.stderr.endswith("line 4, in script\nRuntimeError: uh-oh!\n"), proc.stderr
