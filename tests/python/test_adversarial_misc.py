"""Adversarial cases of issue 13 that need no special machinery: Ctrl-C in a channel send, the
warm pool in a fork child, and namespace names that cannot be bound as given.

Each hostile case runs in its own process with a timeout: a hang fails it as a timeout, a crash
as a return code."""

import os
import sys
import textwrap

import pytest

import xinterp
from conftest import run_script

HERE = os.path.dirname(os.path.abspath(__file__))


def script(body):
    """body, able to import the suite's shared_helpers."""
    return f'import sys; sys.path.insert(0, {HERE!r})\n' + textwrap.dedent(body)


def test_ctrl_c_interrupts_a_blocking_channel_send():
    # Nobody receives: the send parks until its item is received. SIGINT must raise
    # KeyboardInterrupt in it, and the item must be withdrawn (a later receiver never sees it).
    r = run_script(script('''
        import os, signal, threading
        from xinterp import channels
        import xinterp._xinterp as _x
        from shared_helpers import wait_until

        rch, sch = channels.create()
        def interrupt():
            wait_until(lambda: _x.channel_info(sch.id)[1] == 1)  # the item is queued: parked
            os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=interrupt).start()
        try:
            sch.send('never received')
        except KeyboardInterrupt:
            print('interrupted')
        else:
            print('returned')
        try:
            print('received', rch.recv_nowait())
        except channels.ChannelEmptyError:
            print('withdrawn')
        rch.close()
    '''), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['interrupted', 'withdrawn'], r.stdout


def test_ctrl_c_in_a_timed_channel_send_leaves_other_sends_working():
    # The interrupted send's item is skipped; the next send is delivered normally.
    r = run_script(script('''
        import os, signal, threading
        from xinterp import channels
        import xinterp._xinterp as _x
        from shared_helpers import wait_until

        rch, sch = channels.create()
        def interrupt():
            wait_until(lambda: _x.channel_info(sch.id)[1] == 1)
            os.kill(os.getpid(), signal.SIGINT)
        t = threading.Thread(target=interrupt); t.start()
        try:
            sch.send('first', timeout=600)
        except KeyboardInterrupt:
            pass
        t.join()
        got = []
        receiver = threading.Thread(target=lambda: got.append(rch.recv(timeout=60)))
        receiver.start()
        sch.send('second', timeout=60)
        receiver.join()
        print(got)
        rch.close()
    '''), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['second']", r.stdout


@pytest.mark.skipif(sys.platform != 'linux', reason='fork semantics: Linux')
def test_fork_child_pool_starts_empty():
    # The parent's idle pooled interpreters belong to the parent; the child's pool and executor
    # make their own.
    r = run_script(script('''
        import os, warnings
        warnings.simplefilter('ignore', DeprecationWarning)
        import xinterp
        from xinterp import pool

        pool.release(pool.acquire())
        pool.release(pool.acquire())
        assert pool.idle_count() >= 1, pool.idle_count()
        parent_ids = {i.id for i in pool._idle}
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                assert pool.idle_count() == 0, pool.idle_count()
                i = pool.acquire()
                assert i.id not in parent_ids
                i.exec('x = 1')
                pool.release(i)
                assert pool.idle_count() == 1
                with pool.InterpreterPoolExecutor(2) as ex:
                    assert ex.submit(len, 'abc').result(timeout=60) == 3
                code = 0
            except BaseException as e:
                print('child failed:', repr(e), flush=True)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print('child', os.waitstatus_to_exitcode(status))
        print('parent idle', pool.idle_count() >= 1)
    '''), timeout=120)
    assert r.returncode == 0, r.stderr
    assert 'child 0' in r.stdout, r.stdout + r.stderr
    assert 'parent idle True' in r.stdout, r.stdout


def test_prepare_main_refuses_a_name_with_nul():
    interp = xinterp.create()
    try:
        with pytest.raises(ValueError, match='NUL'):
            interp.prepare_main({'ab\x00cd': 5})
        interp.exec('assert "ab" not in globals() and "ab\\x00cd" not in globals()')
        # Any str without NUL binds as given, as CPython's own prepare_main does.
        interp.prepare_main({'a-b': 1, 'é': 2})
        interp.exec("assert globals()['a-b'] == 1 and globals()['é'] == 2")
    finally:
        interp.close()


# Exporters that lie or misbehave in the interpreter that lends: each ends in a clear exception
# in the sender, or in the item as the exporter made it, and the lender closes cleanly after.
LYING_EXPORTERS = {
    'buffer_raises': ('''
        class E:
            def __buffer__(s, f): raise RuntimeError('nope')
        ''', 0, 'put: RuntimeError nope'),
    'buffer_returns_non_view': ('''
        class E:
            def __buffer__(s, f): return 5
        ''', 0, 'put: TypeError'),
    'buffer_returns_released_view': ('''
        class E:
            def __buffer__(s, f):
                m = memoryview(bytearray(5)); m.release(); return m
        ''', 0, 'put: ValueError'),
    'release_raises': ('''
        class E:
            def __buffer__(s, f): return memoryview(bytearray(b'abcde'))
            def __release_buffer__(s, v): v.release(); raise RuntimeError('in release')
        ''', 1, "got b'abcde'"),
    'release_reenters_the_queue': ('''
        class E:
            def __buffer__(s, f):
                q.put('from buffer'); return memoryview(bytearray(b'abcde'))
            def __release_buffer__(s, v): v.release(); q.put('from release')
        ''', 3, "got 'from buffer' | got b'abcde' | got 'from release'"),
    'release_closes_its_own_interpreter': ('''
        import xinterp
        class E:
            def __buffer__(s, f): return memoryview(bytearray(b'abcde'))
            def __release_buffer__(s, v):
                v.release()
                try:
                    xinterp.get_current().close()
                except xinterp.InterpreterError:
                    q.put('close refused')
        ''', 2, "got b'abcde' | got 'close refused'"),
}


@pytest.mark.parametrize('case', sorted(LYING_EXPORTERS))
def test_lying_exporter(case):
    exporter, n_items, expected = LYING_EXPORTERS[case]
    r = run_script(script('''
        import xinterp
        q = xinterp.create_queue()
        x = xinterp.create()
        x.prepare_main(q=q)
        x.exec(%r + """
        try:
            import xinterp
            q.put(xinterp.lend(E()))
        except Exception as e:
            print('put:', type(e).__name__, e, flush=True)
        """)
        seen = []
        for _ in range(%d):  # items queued by put() and by the release of the view
            v = q.get(timeout=50)
            seen.append('got ' + repr(bytes(v) if isinstance(v, memoryview) else v))
            del v  # the release runs in x, which queues what it queues
        print(' | '.join(seen))
        assert q.empty()
        x.close()
        print('closed')
    ''' % (textwrap.dedent(exporter), n_items)), timeout=60)
    assert r.returncode == 0, r.stderr
    assert expected in r.stdout, r.stdout + r.stderr
    assert r.stdout.rstrip().endswith('closed'), r.stdout
