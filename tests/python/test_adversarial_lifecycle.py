"""Hostile lifecycle cases (issue 13, "no crash from the public API"): exit while daemon threads
churn interpreters, a closing interpreter lending a buffer from its atexit handler, Ctrl-C while
close() waits, list_all() racing create(). Each runs in its own subprocess with a timeout.

XINTERP_EXIT_CHURN_RUNS sets how many times the exit-churn script runs (default 20; tools/test.sh
runs it 200 times per Python).
"""

import concurrent.futures
import os

from conftest import run_script

CHURN_RUNS = int(os.environ.get('XINTERP_EXIT_CHURN_RUNS', '20'))

CHURN_SCRIPT = '''
import threading
import xinterp
done = [0, 0]
started = threading.Event()

def churn(k):
    while True:
        try:
            i = xinterp.create()
            i.call(len, 'x')
            i.close()
        except xinterp.InterpreterError:
            return  # xinterp is shut down: create/call/close refuse from now on
        done[k] += 1
        if min(done) >= 3:
            started.set()

for k in range(2):
    threading.Thread(target=churn, args=(k,), daemon=True).start()
assert started.wait(60), done
print("ready", flush=True)
'''


def _one_churn_run(k):
    try:
        proc = run_script(CHURN_SCRIPT, timeout=90)
    except Exception as e:  # a hang shows up as TimeoutExpired
        return k, f'{type(e).__name__}: {e}'
    if proc.returncode != 0 or proc.stdout != 'ready\n' or 'Fatal' in proc.stderr:
        return k, f'exit {proc.returncode}; stdout={proc.stdout!r}; stderr={proc.stderr[-600:]!r}'
    return k, None


def test_exit_while_daemon_threads_create_call_and_close():
    # Four runs at a time: each spends much of its life starting up and waiting.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(_one_churn_run, range(CHURN_RUNS)))
    failures = [(k, why) for k, why in results if why is not None]
    assert not failures, f'{len(failures)} of {CHURN_RUNS} runs failed: {failures[:3]}'


def test_atexit_handler_of_a_closing_interpreter_cannot_lend_a_buffer():
    # Decision: once close() has begun ending an interpreter, it lends nothing more (its memory
    # is about to go): the put in its atexit handler sends a copy instead (bytes), and the
    # refusal is counted. x is not listed after close().
    proc = run_script('''
        import xinterp
        q = xinterp.create_queue()
        x = xinterp.create()
        x.prepare_main(q=q)
        x.exec("""if True:
            import atexit
            class E:
                def __buffer__(s, f): return memoryview(bytearray(100))
            atexit.register(lambda: q.put(memoryview(E())))
        """)
        x.close()
        print("listed", [i.id for i in xinterp.list_all()])
        v = q.get_nowait()
        print("got", type(v).__name__, len(v))
        del v
        stats = xinterp.runtime_stats()
        print("refused", stats['refused_while_closing'], "copied", stats['fallback_buffer_copied'])
    ''', timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == 'listed [0]\ngot bytes 100\nrefused 1 copied 1\n', \
        proc.stdout + proc.stderr


def test_list_all_racing_create_leaks_nothing_and_never_raises():
    proc = run_script('''
        import gc, threading
        import xinterp
        stop = threading.Event()
        errors = []

        def lister():
            while not stop.is_set():
                try:
                    xinterp.list_all()
                except Exception as e:
                    errors.append(repr(e))

        t = threading.Thread(target=lister)
        t.start()
        for _ in range(60):
            i = xinterp.create()
            del i
        stop.set()
        t.join()
        gc.collect()
        print("left", [i.id for i in xinterp.list_all()][1:])
        print("alive", xinterp.runtime_stats()['interpreters_alive'])
        print("errors", errors[:3])
    ''', timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == 'left []\nalive 1\nerrors []\n', proc.stdout + proc.stderr


def test_ctrl_c_while_close_waits_for_borrowed_buffers():
    # The helper thread sends SIGINT once close() is observably waiting: the interpreter is
    # marked closing, so list_all() leaves it out. close() then raises KeyboardInterrupt and
    # the interpreter is intact (listed, usable, closable once the view is given back).
    proc = run_script('''
        import os, signal, threading
        import xinterp
        from xinterp import _xinterp
        q = xinterp.create_queue()
        x = xinterp.create()
        x.prepare_main(q=q)
        x.exec("buf = bytearray(b'mine'); q.put(memoryview(buf))")
        view = q.get()

        def interrupt_when_waiting():
            while x.id in [i for i, _ in _xinterp.list_all()]:
                pass
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt_when_waiting).start()
        try:
            x.close(timeout=600)
        except KeyboardInterrupt:
            print("interrupted")
        print("listed", x in xinterp.list_all())
        x.exec("buf[0] = ord('M')")
        print(bytes(view))
        del view
        x.close()
        print("closed", x not in xinterp.list_all())
    ''', timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "interrupted\nlisted True\nb'Mine'\nclosed True\n", \
        proc.stdout + proc.stderr


STUCK_THREAD = '''
import threading
ev = threading.Event()
t = threading.Thread(target=ev.wait, name="stuck-worker")
t.start()
'''


def test_close_with_a_non_daemon_thread_honours_its_timeout():
    proc = run_script(f'''
        import xinterp
        x = xinterp.create()
        x.exec({STUCK_THREAD!r})
        try:
            x.close(timeout=0.2)
        except xinterp.InterpreterError as e:
            print("refused", "stuck-worker" in str(e))
        print("listed", x in xinterp.list_all())
        x.exec("ev.set(); t.join()")
        x.close()
        print("closed", x not in xinterp.list_all())
    ''', timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == 'refused True\nlisted True\nclosed True\n', proc.stdout + proc.stderr


def test_exit_with_a_non_daemon_thread_in_an_interpreter_ends():
    # Registered before xinterp is imported, so it runs after xinterp's exit handler.
    proc = run_script(f'''
        import atexit
        atexit.register(lambda: print("abandoned",
                                      xinterp.runtime_stats()['threads_abandoned_at_exit']))
        import xinterp
        x = xinterp.create()
        x.exec({STUCK_THREAD!r})
        print("exiting", flush=True)
    ''', timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == 'exiting\nabandoned 1\n', proc.stdout + proc.stderr


def test_exit_with_a_threading_atexit_callback_that_never_returns_ends():
    # concurrent.futures waits for its workers in such a callback: a task that never ends must
    # not hang the exit (the interpreter is abandoned after the grace period, and counted).
    proc = run_script('''
        import atexit
        atexit.register(lambda: print("abandoned",
                                      xinterp.runtime_stats()['threads_abandoned_at_exit']))
        import xinterp
        x = xinterp.create()
        x.exec("""if True:
            import concurrent.futures, threading
            started = threading.Event()
            def forever():
                started.set()
                threading.Event().wait()
            ex = concurrent.futures.ThreadPoolExecutor(1)
            ex.submit(forever)
            started.wait()
            """)
        print("exiting", flush=True)
    ''', timeout=60)
    assert proc.returncode == 0, proc.stderr
    # Two threads abandoned: the executor's worker, and the one running the callbacks.
    assert proc.stdout == 'exiting\nabandoned 2\n', proc.stdout + proc.stderr
