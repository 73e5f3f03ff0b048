"""PEP 734 interpreter objects: create, list, identity, whence, is_running, close and its errors."""

import gc
import pickle
import sys
import threading

import pytest

import xinterp
from xinterp import _xinterp
from conftest import eventually
from shared_helpers import evaluate


def test_create_returns_new_isolated_interpreter(interp):
    assert isinstance(interp, xinterp.Interpreter)
    assert interp.id > 0
    assert interp.whence == '_interpreters module'
    assert interp in xinterp.list_all()
    assert not interp.is_running()


def test_each_interpreter_has_its_own_state(interp):
    other = xinterp.create()
    try:
        interp.exec('x = 1')
        other.exec('x = 2')
        assert interp.call(evaluate, 'x') == 1
        assert other.call(evaluate, 'x') == 2
        # Its own module objects, sys included.
        interp.exec('import sys; sys.marker = "a"')
        other.exec('import sys; assert not hasattr(sys, "marker")')
    finally:
        other.close()


def test_main_and_current():
    main = xinterp.get_main()
    assert main.id == 0
    assert main.whence == 'runtime init'
    assert xinterp.get_current() == main
    assert main.is_running()
    assert main in xinterp.list_all()


def test_get_current_inside_subinterpreter(interp):
    interp.exec('import xinterp; cur = xinterp.get_current(); main = xinterp.get_main()')
    assert interp.call(evaluate, 'cur.id') == interp.id
    assert interp.call(evaluate, 'main.id') == 0
    assert interp.call(evaluate, 'cur.is_running()') is True
    assert interp.call(evaluate, 'cur.whence') == '_interpreters module'


def test_get_current_works_while_the_interpreter_closes():
    """atexit handlers run in an interpreter being closed and can still ask which interpreter
    they are in. (Buffer releases run later in close, when the interpreter refuses new owning
    references; test_owner_death's exporter checks get_current() there.)"""
    i = xinterp.create()
    log = xinterp.create_queue()
    i.prepare_main(log=log)
    i.exec('import atexit, xinterp\n'
           'atexit.register(lambda: log.put(xinterp.get_current().id))')
    i.close()
    assert log.get(timeout=5) == i.id


def test_identity_equality_hash_repr(interp):
    same = xinterp.Interpreter(interp.id)
    assert same is interp
    assert same == interp and hash(same) == hash(interp.id)
    assert interp != xinterp.get_main()
    assert repr(interp) == f'Interpreter({interp.id})'
    assert len({interp, same, xinterp.get_main()}) == 2


def test_pickle_round_trip_gives_same_object(interp):
    assert pickle.loads(pickle.dumps(interp)) is interp


def test_interpreter_objects_travel_to_other_interpreters(interp):
    other = xinterp.create()
    try:
        assert interp.call(getattr, other, 'id') == other.id
    finally:
        other.close()


@pytest.mark.parametrize('bad', ['1', 1.0, None])
def test_interpreter_id_must_be_int(bad):
    with pytest.raises(TypeError):
        xinterp.Interpreter(bad)


def test_unknown_id_is_not_found():
    with pytest.raises(xinterp.InterpreterNotFoundError):
        xinterp.Interpreter(10**9)
    assert issubclass(xinterp.InterpreterNotFoundError, xinterp.InterpreterError)


def test_close_removes_it_and_second_close_is_not_found():
    i = xinterp.create()
    i.close()
    assert i not in xinterp.list_all()
    with pytest.raises(xinterp.InterpreterNotFoundError):
        i.close()
    with pytest.raises(xinterp.InterpreterNotFoundError):
        i.exec('pass')
    with pytest.raises(xinterp.InterpreterNotFoundError):
        i.is_running()


def test_close_main_is_refused():
    with pytest.raises(xinterp.InterpreterError, match='current interpreter|main interpreter'):
        xinterp.get_main().close()


def test_close_current_is_refused(interp):
    interp.exec(
        'import xinterp\n'
        'try:\n'
        '    xinterp.get_current().close()\n'
        'except xinterp.InterpreterError as e:\n'
        '    err = str(e)\n')
    assert 'current interpreter' in interp.call(evaluate, 'err')
    assert interp in xinterp.list_all()


def test_close_main_from_subinterpreter_is_refused(interp):
    interp.exec(
        'import xinterp\n'
        'try:\n'
        '    xinterp.get_main().close()\n'
        'except xinterp.InterpreterError as e:\n'
        '    err = str(e)\n')
    assert 'main interpreter' in interp.call(evaluate, 'err')


def test_close_running_is_refused_and_interpreter_stays_usable(interp):
    release = xinterp.create_queue()
    interp.prepare_main(release=release)
    t = interp.call_in_thread(evaluate, 'release.get(timeout=60)')  # runs until released
    try:
        assert eventually(interp.is_running)
        with pytest.raises(xinterp.InterpreterError, match='running'):
            interp.close()
    finally:
        release.put(None)
        t.join()
    assert not interp.is_running()
    interp.exec('y = 1')  # still intact


def test_concurrent_run_in_same_interpreter_is_refused(interp):
    release = xinterp.create_queue()
    interp.prepare_main(release=release)
    t = interp.call_in_thread(evaluate, 'release.get(timeout=60)')  # runs until released
    try:
        assert eventually(interp.is_running)
        with pytest.raises(xinterp.InterpreterError, match='already running'):
            interp.exec('pass')
    finally:
        release.put(None)
        t.join()


def test_not_created_by_xinterp_refuses_exec():
    with pytest.raises(xinterp.InterpreterError, match='not created by xinterp'):
        xinterp.get_main().exec('pass')
    with pytest.raises(xinterp.InterpreterError, match='not created by xinterp'):
        xinterp.get_main().call(len, ())
    with pytest.raises(xinterp.InterpreterError, match='not created by xinterp'):
        xinterp.get_main().prepare_main(a=1)


def test_dropping_last_reference_closes_interpreter():
    i = xinterp.create()
    iid = i.id
    del i
    gc.collect()
    assert iid not in [x.id for x in xinterp.list_all()]
    before = xinterp.runtime_stats()['interpreters_alive']
    assert before == len(xinterp.list_all())


def test_reference_held_by_another_interpreter_keeps_it_open(interp):
    i = xinterp.create()
    iid = i.id
    interp.prepare_main(held=i)  # pickled: an owning Interpreter object in `interp`
    del i
    gc.collect()
    assert iid in [x.id for x in xinterp.list_all()]
    interp.exec('del held; import gc; gc.collect()')
    assert iid not in [x.id for x in xinterp.list_all()]


def test_create_from_many_threads():
    made, errors = [], []

    def work():
        try:
            i = xinterp.create()
            i.exec('import math')
            made.append(i.call(evaluate, 'math.pi'))
            i.close()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(made) == 8


def test_close_after_calls_from_many_threads_that_are_gone():
    # Each calling thread keeps a thread state in the interpreter between calls; close() must
    # delete them all (CPython aborts ending an interpreter that has other thread states).
    i = xinterp.create()
    i.exec('import threading; seen = set()')
    for _ in range(6):
        t = threading.Thread(target=i.exec, args=('seen.add(threading.get_ident())',))
        t.start()
        t.join()
    i.exec('seen.add(threading.get_ident())')  # this thread keeps one too
    assert i.call(evaluate, 'len(seen)') >= 2
    i.close()
    assert i not in xinterp.list_all()


def _drop_with_decref(monkeypatch, fake_decref):
    """Creates an interpreter, then drops its only Interpreter object while _xinterp.decref is
    fake_decref; returns (its id, what sys.unraisablehook saw meanwhile)."""
    gc.collect()  # no other Interpreter object is collected while the fake is in place
    i = xinterp.create()
    iid = i.id
    seen = []
    monkeypatch.setattr(sys, 'unraisablehook', seen.append)
    monkeypatch.setattr(_xinterp, 'decref', fake_decref)
    del i  # __del__ drops the reference
    gc.collect()
    monkeypatch.undo()
    return iid, seen


def test_dropping_a_reference_to_an_interpreter_already_gone_is_silent(monkeypatch):
    real_decref = _xinterp.decref

    def decref_finds_it_gone(iid):
        real_decref(iid)
        raise xinterp.InterpreterNotFoundError(f'unrecognized interpreter ID {iid}')

    iid, seen = _drop_with_decref(monkeypatch, decref_finds_it_gone)
    assert seen == []
    assert iid not in [x.id for x in xinterp.list_all()]


def test_an_unexpected_error_dropping_a_reference_is_reported_not_swallowed(monkeypatch):
    real_decref = _xinterp.decref

    def decref_breaks(iid):
        real_decref(iid)
        raise RuntimeError('decref broke')

    iid, seen = _drop_with_decref(monkeypatch, decref_breaks)
    assert [(type(u.exc_value), str(u.exc_value)) for u in seen] == [(RuntimeError,
                                                                      'decref broke')]
    assert iid not in [x.id for x in xinterp.list_all()]


def test_close_runs_threading_atexit_callbacks_before_waiting_for_threads(interp):
    # As CPython's close (threading._shutdown): a non-daemon thread that is told to end by a
    # threading._register_atexit callback (concurrent.futures' workers are) lets close() finish.
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    interp.exec('''if True:
        import threading
        stop = threading.Event()
        def told_to_stop():
            stop.set()
            t.join()
        threading._register_atexit(told_to_stop)
        def task():
            stop.wait()
            q.put('finished')
        t = threading.Thread(target=task)
        t.start()
        ''')
    interp.close(timeout=60)
    assert q.get(timeout=60) == 'finished'
    assert interp not in xinterp.list_all()


def test_close_with_a_thread_pool_executor_inside_ends_its_workers(interp):
    interp.exec('''if True:
        import concurrent.futures
        ex = concurrent.futures.ThreadPoolExecutor(2)
        assert ex.submit(pow, 2, 10).result() == 1024
        ''')
    interp.close(timeout=60)
    assert interp not in xinterp.list_all()


def test_close_with_a_threading_atexit_callback_that_blocks_honours_its_timeout(interp):
    # The callbacks run on a thread of their own, waited for up to close()'s timeout like any
    # non-daemon thread: a blocking one makes close() refuse (naming that thread), not hang.
    interp.exec('''if True:
        import threading
        release = threading.Event()
        threading._register_atexit(release.wait)
        ''')
    with pytest.raises(xinterp.InterpreterError, match='threading atexit callbacks'):
        interp.close(timeout=0.2)
    assert interp in xinterp.list_all()
    interp.exec('release.set()')
    interp.close(timeout=60)
    assert interp not in xinterp.list_all()
