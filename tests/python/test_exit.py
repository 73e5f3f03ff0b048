"""Process exit with interpreters alive: everything closed in a safe order, nothing hangs or
crashes, the exit code is preserved. Each case runs in a fresh process."""

import pytest

from conftest import run_script

PRELUDE = '''
import atexit, sys, threading, time
import os
sys.path.insert(0, {helpers!r})
def report():
    # Registered before xinterp is imported, so it runs after xinterp's own exit handler.
    s = xinterp.runtime_stats()
    print("alive", s["interpreters_alive"], "backlog", s["closed_interpreters"]["backlog"],
          "stranded", s["stranded_at_exit"], flush=True)
    print("closed_with_borrows", s["closed_with_borrows_at_exit"], flush=True)
    print("exit_interrupts_refused", s["exit_interrupts_refused"], flush=True)
    print("interrupted_at_exit", s["interrupted_at_exit"], flush=True)
atexit.register(report)
after_xinterp_exit = []  # run after xinterp's exit handler (registered before it), before report
atexit.register(lambda: [f() for f in after_xinterp_exit])
import xinterp
from xinterp import _xinterp
import shared_helpers

def wait_until(predicate, what):
    if not shared_helpers.wait_until(predicate):
        print("timed out waiting until", what, flush=True)

def blocked_in_the_kernel(thread):
    """The thread sleeps in a system call (state S), not running code."""
    with open("/proc/self/task/%d/stat" % thread.native_id) as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "S"
'''


def script(body):
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    return PRELUDE.format(helpers=here) + body


def assert_clean(proc, code=0):
    assert proc.returncode == code, proc.stderr
    assert 'Fatal Python error' not in proc.stderr
    assert 'remaining subinterpreters' not in proc.stderr  # CPython 3.13 warns if we left any
    assert 'timed out waiting' not in proc.stdout, proc.stdout
    assert 'alive 0 backlog 0 stranded 0' in proc.stdout, proc.stdout + proc.stderr
    # Every running interpreter got its exit interrupt queued (CPython's queue had room).
    assert 'exit_interrupts_refused 0' in proc.stdout, proc.stdout


def test_exit_closes_live_interpreters_and_runs_their_pending_calls():
    proc = run_script(script('''
a = xinterp.create()
b = xinterp.create()
b.exec("import xinterp; nested = xinterp.create(); nested.exec('x = 1')")
_xinterp._post_test_calls(a.id, "ok", 1000)
print("done", flush=True)
'''))
    assert_clean(proc)
    assert 'done' in proc.stdout


def test_exit_with_daemon_thread_running_code_in_an_interpreter():
    proc = run_script(script('''
from shared_helpers import busy_until
a = xinterp.create()
t = threading.Thread(target=a.call, args=(busy_until, 60), daemon=True)
t.start()
wait_until(a.is_running, "it runs")
print("exiting", flush=True)
'''))
    assert_clean(proc)
    assert 'exiting' in proc.stdout
    # The daemon thread's call ends quietly (SystemExit in that thread, which threading
    # ignores) instead of touching a closed interpreter or printing a traceback. Counted.
    assert proc.stderr == '', proc.stderr
    assert 'interrupted_at_exit 1' in proc.stdout, proc.stdout


def test_exit_is_quiet_for_daemon_threads_calling_in_a_loop():
    # As pyperf's workers do in the hot-path benchmark: each loop iteration is a new call, and
    # the one running at exit ends silently; so does one waiting in a queue, and a nested one.
    proc = run_script(script('''
from shared_helpers import busy_until, wait_for_item
a = xinterp.create()
b = xinterp.create()
c = xinterp.create()
q = xinterp.create_queue()
def loop():
    while True:
        a.call(busy_until, 0.001)
def wait():
    b.call(wait_for_item, q)
def nested():
    c.exec("import xinterp, shared_helpers; inner = xinterp.create(); "
           "inner.call(shared_helpers.busy_until, 60)")
for fn in (loop, wait, nested):
    threading.Thread(target=fn, daemon=True).start()
def all_running():  # b, c and the one c created (a runs in between its calls)
    others = [i for i in xinterp.list_all() if i.id not in (xinterp.get_main().id, a.id)]
    return len(others) == 3 and all(i.is_running() for i in others)
wait_until(all_running, "they run")
print("exiting", flush=True)
'''))
    assert_clean(proc)
    assert 'exiting' in proc.stdout
    assert proc.stderr == '', proc.stderr


def test_exit_waits_for_non_daemon_call_in_thread():
    # The call can only finish after the main thread has ended (the item it waits for is put
    # once the main thread is no longer alive): the exit must wait for it.
    proc = run_script(script('''
q = xinterp.create_queue()
a = xinterp.create()
a.prepare_main(q=q)
def work():
    from shared_helpers import evaluate
    a.exec("got = q.get(timeout=60)")
    print("finished", a.call(evaluate, "got"), flush=True)
def release_after_main_ends():
    wait_until(lambda: not threading.main_thread().is_alive(), "the main thread ended")
    q.put(True)
threading.Thread(target=release_after_main_ends, daemon=True).start()
threading.Thread(target=work).start()
'''))
    assert_clean(proc)
    assert 'finished True' in proc.stdout


@pytest.mark.parametrize('how,code', [('sys.exit(3)', 3), ('raise ValueError("end")', 1)])
def test_exit_code_is_preserved(how, code):
    proc = run_script(script(f'''
a = xinterp.create()
a.exec("y = 2")
{how}
'''))
    assert_clean(proc, code)


def test_interpreter_dropped_while_running_is_closed_at_exit():
    proc = run_script(script('''
q = xinterp.create_queue()
a = xinterp.create()
a.prepare_main(q=q)
iid = a.id
# The running thread holds the id only (a.call_in_thread would hold the object).
t = threading.Thread(target=_xinterp.exec, args=(iid, "q.get(timeout=60)"))
t.start()
wait_until(a.is_running, "it runs")
del a  # the last reference goes while it runs: it stays open until exit
import gc; gc.collect()
print("listed", iid in [i.id for i in xinterp.list_all()], flush=True)
q.put(None)  # the run ends
t.join()
print("still listed", iid in [i.id for i in xinterp.list_all()], flush=True)
'''))
    assert_clean(proc)
    assert 'listed True' in proc.stdout
    assert 'still listed True' in proc.stdout


def test_exit_with_daemon_threads_blocked_in_queue_get_and_put():
    proc = run_script(script('''
q = xinterp.create_queue()
full = xinterp.create_queue(maxsize=1)
full.put("x")
a = xinterp.create()
a.prepare_main(q=q)
threading.Thread(target=q.get, daemon=True).start()          # blocked in get, in main
threading.Thread(target=full.put, args=("y",), daemon=True).start()  # blocked in put
t = threading.Thread(target=a.exec, args=("q.get()",), daemon=True)  # blocked in a sub
t.start()
wait_until(lambda: q._info()[3] >= 2 and full._info()[4] >= 1, "all three are parked")
print("exiting", flush=True)
'''))
    assert_clean(proc)
    assert 'exiting' in proc.stdout


def test_exit_with_lent_buffers_still_viewed():
    proc = run_script(script('''
q = xinterp.create_queue()
a = xinterp.create()
b = xinterp.create()
a.prepare_main(q=q)
b.prepare_main(q=q)
a.exec("buf = bytearray(b'lent by a'); q.put(memoryview(buf)); q.put(memoryview(buf))")
b.exec("view = q.get()")          # b borrows from a: a must close after b
kept = q.get()                    # main borrows from a too
print("viewing", bytes(kept), flush=True)
'''))
    assert proc.returncode == 0, proc.stderr
    assert 'Fatal Python error' not in proc.stderr
    assert "viewing b'lent by a'" in proc.stdout
    # b closes first (its view goes back to a); a is closed although main still holds its
    # buffer (CPython would end it next anyway), counted; the release then runs raw.
    assert 'stranded 0' in proc.stdout
    assert 'closed_with_borrows 1' in proc.stdout


# Each puts on `ready` just before it blocks; the script then waits until the thread sleeps in
# the kernel.
BLOCKED_IN_C = {
    'sleep': 'import time; ready.put(1); time.sleep(1000)',
    # Wakes once xinterp's exit handler gave up on it (after its 2 s grace), while CPython is
    # finalizing: it must wait at the fence (its interpreter's GIL, taken for good) instead of
    # running beside finalization. (Was a 2.2 s sleep: woken during the grace on a slow machine.)
    'wakes-after-the-grace': 'import os; ready.put(1); os.read(wake_fd, 1)\nwhile True: pass',
    'lock': 'import threading; l = threading.Lock(); l.acquire(); ready.put(1); l.acquire()',
    'select': 'import os, select; r, w = os.pipe(); ready.put(1); select.select([r], [], [])',
}


@pytest.mark.parametrize('blocker', sorted(BLOCKED_IN_C))
@pytest.mark.parametrize('ending,code', [('pass', 0), ('sys.exit(4)', 4)])
def test_exit_with_daemon_thread_blocked_in_c_inside_a_subinterpreter(blocker, ending, code):
    """A daemon thread inside a sub-interpreter, blocked in C where SystemExit cannot reach it.
    The interpreter cannot be finalized; it is taken out of CPython's list (CPython 3.12 and 3.13
    abort on it otherwise), counted as stranded, and abandoned with the process."""
    proc = run_script(script(f'''
a = xinterp.create()
b = xinterp.create()          # an ordinary one beside it is still closed
ready = xinterp.create_queue()
wake_r, wake_w = os.pipe()    # only 'wakes-after-the-grace' reads it
a.prepare_main(ready=ready, wake_fd=wake_r)
after_xinterp_exit.append(lambda: os.write(wake_w, b"x"))
t = threading.Thread(target=a.exec, args=({BLOCKED_IN_C[blocker]!r},), daemon=True)
t.start()
ready.get(timeout=60)
wait_until(lambda: blocked_in_the_kernel(t), "it is blocked")
print("exiting", flush=True)
{ending}
'''))
    assert proc.returncode == code, proc.stderr
    assert 'Fatal Python error' not in proc.stderr
    assert 'exiting' in proc.stdout
    assert 'timed out waiting' not in proc.stdout, proc.stdout
    assert 'alive 0 backlog 0 stranded 1' in proc.stdout, proc.stdout + proc.stderr
