"""Interpreter.interrupt(): the exception reaches the exec()/call() running in the target at
its next bytecode boundary, xinterp's own waits there wake for it, a nested call is interrupted
too, a stale interrupt never hits a later call, and the target stays usable."""

import threading

import pytest

import xinterp
from xinterp import channels

import interrupt_helpers as ih


def start_call(interp, fn, *args):
    """Runs interp.call(fn, *args) on a thread; returns (thread, outcome dict)."""
    out = {}

    def run():
        try:
            out['result'] = interp.call(fn, *args)
        except BaseException as e:  # noqa: BLE001
            out['error'] = e
    t = threading.Thread(target=run)
    t.start()
    return t, out


def interrupted_with(out, name):
    err = out.get('error')
    assert isinstance(err, xinterp.ExecutionFailed), out
    assert err.excinfo.type.__name__ == name, err
    return err


@pytest.fixture
def interp():
    i = xinterp.create()
    yield i
    i.close()


@pytest.fixture
def ready():
    return xinterp.create_queue()


def test_idle_interpreter_returns_false_and_leaves_no_stale_interrupt(interp):
    assert interp.interrupt() is False
    assert interp.interrupt(ValueError('stale')) is False
    assert interp.call(sum, [1, 2]) == 3
    interp.exec('x = 1')


def test_busy_loop_raises_keyboardinterrupt_and_target_stays_usable(interp, ready):
    t, out = start_call(interp, ih.spin, ready)
    assert ready.get(timeout=60) == 'running'
    assert interp.interrupt() is True
    t.join(60)
    interrupted_with(out, 'KeyboardInterrupt')
    assert interp.call(sum, [1, 2]) == 3
    assert interp.interrupt() is False  # the run ended: nothing left behind


def test_exec_is_interrupted_too(interp, ready):
    interp.prepare_main(ready=ready)
    out = {}

    def run():
        try:
            interp.exec('ready.put(1)\nwhile True: pass')
        except BaseException as e:  # noqa: BLE001
            out['error'] = e
    t = threading.Thread(target=run)
    t.start()
    ready.get(timeout=60)
    assert interp.interrupt(TimeoutError) is True
    t.join(60)
    interrupted_with(out, 'TimeoutError')


def test_instance_keeps_its_args(interp, ready):
    t, out = start_call(interp, ih.spin_and_report, ready)
    ready.get(timeout=60)
    assert interp.interrupt(ValueError('stop', 3)) is True
    t.join(60)
    assert out['result'] == ('ValueError', ('stop', 3))


def test_class_is_instantiated_in_the_target(interp, ready):
    t, out = start_call(interp, ih.spin_and_report, ready)
    ready.get(timeout=60)
    assert interp.interrupt(ih.NotRebuildable.__mro__[1]) is True  # Exception
    t.join(60)
    assert out['result'] == ('Exception', ())


def test_first_pending_interrupt_wins(interp, ready):
    t, out = start_call(interp, ih.spin_and_report, ready)
    ready.get(timeout=60)
    assert interp.interrupt(ValueError('first')) is True
    assert interp.interrupt(KeyError('second')) is True
    t.join(60)
    if 'result' in out:  # the second was still pending behind the first: dropped
        assert out['result'][0] == 'ValueError'
    else:  # the first had been raised already: the second is a new interrupt of the same run
        assert out['result' if 'result' in out else 'error']
        interrupted_with(out, 'KeyError')
    assert interp.call(sum, [1]) == 1


def test_queue_get_wait_wakes_and_loses_no_item(interp, ready):
    q = xinterp.create_queue()
    t, out = start_call(interp, ih.get_forever, ready, q)
    ready.get(timeout=60)
    assert interp.interrupt() is True
    t.join(60)
    interrupted_with(out, 'KeyboardInterrupt')
    q.put('kept')
    assert q.get(timeout=60) == 'kept'
    assert interp.call(sum, [1, 2]) == 3


def test_queue_put_wait_wakes(interp, ready):
    q = xinterp.create_queue(maxsize=1)
    q.put('first')
    t, out = start_call(interp, ih.put_forever, ready, q)
    ready.get(timeout=60)
    assert interp.interrupt() is True
    t.join(60)
    interrupted_with(out, 'KeyboardInterrupt')
    assert q.get_nowait() == 'first'
    assert q.empty()  # the interrupted put enqueued nothing


def test_channel_recv_wait_wakes(interp, ready):
    recv, send = channels.create()
    t, out = start_call(interp, ih.recv_forever, ready, recv)
    ready.get(timeout=60)
    assert interp.interrupt(ValueError('recv')) is True
    t.join(60)
    interrupted_with(out, 'ValueError')
    send.send_nowait('kept')
    assert recv.recv(timeout=60) == 'kept'
    recv.close()


def test_channel_send_wait_wakes_and_withdraws(interp, ready):
    recv, send = channels.create()
    t, out = start_call(interp, ih.send_and_wait, ready, send)
    ready.get(timeout=60)
    assert interp.interrupt() is True
    t.join(60)
    interrupted_with(out, 'KeyboardInterrupt')
    with pytest.raises(channels.ChannelEmptyError):
        recv.recv_nowait()  # the interrupted send withdrew its item
    recv.close()


def test_nested_call_is_interrupted_and_outer_exception_raised(interp, ready):
    inner = xinterp.create()
    try:
        t, out = start_call(interp, ih.call_into, inner, ready)
        ready.get(timeout=60)
        assert inner.is_running()
        assert interp.interrupt(ValueError('outer')) is True
        t.join(60)
        # Raised in the outer interpreter in place of the inner call's ExecutionFailed (which
        # call_into would have caught and reported).
        err = interrupted_with(out, 'ValueError')
        assert 'outer' in str(err)
        assert not inner.is_running()
        assert inner.call(sum, [1, 2]) == 3
        assert interp.call(sum, [1, 2]) == 3
    finally:
        inner.close()


def test_c_call_is_interrupted_when_it_returns(interp, ready):
    t, out = start_call(interp, ih.sleep_then_return, ready, 1.0)
    assert ready.get(timeout=60) == 'sleeping'
    assert interp.interrupt() is True
    t.join(60)
    interrupted_with(out, 'KeyboardInterrupt')  # not 'slept': raised as the sleep returned


def test_interrupt_run_by_another_thread_of_the_target_is_handed_over(interp, ready):
    before = xinterp.runtime_stats()['interrupt_async_handoffs']
    t, out = start_call(interp, ih.sleep_beside_a_spinning_thread, ready, 1.0)
    ready.get(timeout=60)
    assert interp.interrupt(ValueError('args are lost')) is True
    t.join(60)
    err = interrupted_with(out, 'ValueError')
    # Handed over as PyThreadState_SetAsyncExc does: the class only (documented).
    assert 'args are lost' not in str(err)
    assert xinterp.runtime_stats()['interrupt_async_handoffs'] == before + 1
    assert interp.call(sum, [1, 2]) == 3


def test_exception_the_target_cannot_rebuild_is_a_clear_runtimeerror(interp, ready):
    before = xinterp.runtime_stats()['interrupt_rebuild_failed']
    t, out = start_call(interp, ih.spin_and_report, ready)
    ready.get(timeout=60)
    assert interp.interrupt(ih.NotRebuildable()) is True
    t.join(60)
    name, args = out['result']
    assert name == 'RuntimeError'
    assert 'could not be rebuilt' in args[0]
    assert xinterp.runtime_stats()['interrupt_rebuild_failed'] == before + 1


def test_many_interrupts_and_calls_never_hit_a_later_call(interp, ready):
    for _ in range(20):
        t, out = start_call(interp, ih.spin, ready)
        ready.get(timeout=60)
        assert interp.interrupt() is True
        t.join(60)
        interrupted_with(out, 'KeyboardInterrupt')
        assert interp.interrupt() is False
        assert interp.call(sum, [2, 3]) == 5


def test_interrupt_while_arguments_are_rebuilt_is_the_interrupt_not_notshareable(interp, ready):
    # The argument's unpickling runs bytecode in the target; an interrupt landing there is the
    # call's outcome (ExecutionFailed naming it), not "args not shareable".
    t, out = start_call(interp, len, ih.SpinsWhileRebuilt(ready))
    assert ready.get(timeout=60) == 'rebuilding'
    assert interp.interrupt(TimeoutError('stop')) is True
    t.join(60)
    err = interrupted_with(out, 'TimeoutError')
    assert 'stop' in str(err)
    assert interp.call(sum, [1, 2]) == 3


def test_interrupt_inside_an_import_leaves_the_interpreter_clean(interp, ready, tmp_path):
    # Interrupted in pkg/__init__ after pkg.sub was imported: pkg is dropped from sys.modules but
    # pkg.sub stays; a later `import pkg` would then fail (`sub` not bound on the new package,
    # NameError), as asyncio's own __init__ did. The orphan is forgotten as the run ends.
    pkg = tmp_path / 'xinterp_orphan_pkg'
    pkg.mkdir()
    (pkg / 'sub.py').write_text('VALUE = 1\n')
    (pkg / '__init__.py').write_text(
        'from .sub import *\n'
        'ANSWER = sub.VALUE\n'
        'import builtins\n'
        'if not getattr(builtins, "stop_spinning", False):\n'
        '    builtins.ready.put("importing")\n'
        '    while True:\n'
        '        pass\n')
    interp.exec(f'import sys, builtins\nsys.path.insert(0, {str(tmp_path)!r})\n'
                f'from xinterp import queues\nbuiltins.ready = queues.Queue({ready.id})\n')
    before = xinterp.runtime_stats()['modules_forgotten_after_interrupt']
    out = {}

    def run():
        try:
            interp.exec('import xinterp_orphan_pkg')
        except BaseException as e:  # noqa: BLE001
            out['error'] = e
    t = threading.Thread(target=run)
    t.start()
    assert ready.get(timeout=60) == 'importing'
    assert interp.interrupt() is True
    t.join(60)
    interrupted_with(out, 'KeyboardInterrupt')
    assert xinterp.runtime_stats()['modules_forgotten_after_interrupt'] > before
    interp.exec('import builtins\nbuiltins.stop_spinning = True\n'
                'import xinterp_orphan_pkg\nassert xinterp_orphan_pkg.ANSWER == 1\n')
