"""Bad input to Interpreter.interrupt() / _xinterp.interrupt(): each a clear error, nothing
posted. The foreign interpreter runs in a fresh process (conftest.run_script)."""

import pytest

import xinterp
from xinterp import _xinterp

from bad_input_helpers import NOT_FOUND, assert_clean_exit, check
from conftest import run_script


@pytest.fixture
def interp():
    i = xinterp.create()
    yield i
    i.close()


def test_closed_interpreter_raises_not_found():
    i = xinterp.create()
    i.close()
    check(i.interrupt, xinterp.InterpreterNotFoundError, NOT_FOUND)
    check(lambda: _xinterp.interrupt(2**63 - 1, KeyboardInterrupt),
          xinterp.InterpreterNotFoundError, NOT_FOUND)


def test_main_interpreter_refuses():
    check(xinterp.get_main().interrupt, xinterp.InterpreterError, 'main interpreter')


def test_own_interpreter_refuses(interp):
    interp.exec('''
import xinterp
try:
    xinterp.get_current().interrupt()
except xinterp.InterpreterError as e:
    msg = str(e)
''')
    assert 'cannot interrupt itself' in interp.call(eval, 'msg')


@pytest.mark.parametrize('exc', [5, 'x', None, object(), int, object,
                                 type('NotAnException', (), {})])
def test_non_exceptions_raise_typeerror(interp, exc):
    check(lambda: interp.interrupt(exc), TypeError, 'BaseException subclass or instance')


def test_bad_arguments_to_the_low_level_function(interp):
    check(lambda: _xinterp.interrupt(), TypeError, 'interrupt(id')
    check(lambda: _xinterp.interrupt(interp.id, KeyboardInterrupt, 1), TypeError, 'interrupt(id')
    check(lambda: _xinterp.interrupt('1', KeyboardInterrupt), TypeError, '')
    check(lambda: _xinterp.interrupt(-1, KeyboardInterrupt), ValueError, '')


def test_exception_whose_pickle_fails_is_notshareable(interp):
    err = ValueError(lambda: 0)  # a lambda cannot be pickled
    check(lambda: interp.interrupt(err), xinterp.NotShareableError, 'not shareable')
    # Idle anyway: nothing was posted, the next call runs normally.
    assert interp.call(sum, [1, 2]) == 3


def test_foreign_interpreter_refuses():
    proc = run_script('''
try:
    import _interpreters as cpython_interps
except ImportError:
    import _xxsubinterpreters as cpython_interps
import xinterp
handle = cpython_interps.create()  # 3.12: an InterpreterID, which owns it
fid = int(handle)
cpython_interps.run_string(handle, "import xinterp")  # now known to xinterp, not created by it
try:
    xinterp.Interpreter(fid).interrupt()
except xinterp.InterpreterError as e:
    print("refused:", "not created by xinterp" in str(e))
cpython_interps.destroy(handle)
print("done")
''', timeout=60)
    assert 'refused: True' in proc.stdout, proc.stdout + proc.stderr
    assert_clean_exit(proc)
