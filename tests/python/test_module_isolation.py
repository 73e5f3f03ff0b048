"""The extension imports in every sub-interpreter (multi-phase init, per-interpreter GIL) and
works there, including interpreters xinterp did not create."""

import sys

import pytest

import xinterp
from shared_helpers import evaluate


def test_import_in_subinterpreter_and_nest(interp):
    interp.exec(
        'import xinterp\n'
        'inner = xinterp.create()\n'
        'inner.exec("v = 6 * 7")\n'
        'from shared_helpers import evaluate\n'
        'v = inner.call(evaluate, "v")\n'
        'try:\n'
        '    inner.exec("1/0")\n'
        'except xinterp.ExecutionFailed as e:\n'
        '    err = e.excinfo.type.__name__\n'
        'inner.close()\n')
    assert interp.call(evaluate, 'v') == 42
    assert interp.call(evaluate, 'err') == 'ZeroDivisionError'


def test_module_state_is_per_interpreter(interp):
    interp.exec('import xinterp, xinterp._xinterp as m; mod_id = id(m); exc = xinterp.InterpreterError')
    # Same module name, separate module objects and exception classes in each interpreter.
    assert interp.call(evaluate, 'exc.__module__') == 'xinterp'
    assert interp.call(evaluate, "type(m).__name__") == 'module'
    assert interp.call(evaluate, 'm is not None')


def cpython_interpreters():
    if sys.version_info >= (3, 13):
        import _interpreters as mod
        return mod.create, mod.exec, mod.destroy
    import _xxsubinterpreters as mod
    return (lambda: mod.create(isolated=True)), mod.run_string, mod.destroy


def test_interpreter_created_by_cpython_is_known_but_not_ours():
    create, run, destroy = cpython_interpreters()
    handle = create()  # 3.12: an InterpreterID whose last reference destroys the interpreter
    cid = int(handle)
    try:
        alive_before = xinterp.runtime_stats()['interpreters_alive']
        run(cid, 'import sys; sys.path[:] = %r\nimport xinterp\nme = xinterp.get_current()' %
            (sys.path,))
        other = xinterp.Interpreter(cid)
        assert other in xinterp.list_all()
        assert other.whence in ('unknown', '_interpreters module', 'cross-interpreter C-API')
        assert xinterp.runtime_stats()['interpreters_alive'] == alive_before + 1
        with pytest.raises(xinterp.InterpreterError, match='not created by xinterp'):
            other.exec('pass')
        with pytest.raises(xinterp.InterpreterError, match='not created by xinterp'):
            other.close()
    finally:
        destroy(handle)
    # Its xinterp module was freed with it, closing its core owner.
    assert cid not in [i.id for i in xinterp.list_all()]
