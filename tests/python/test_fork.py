"""Fork with live sub-interpreters (DESIGN contract line 8): the child keeps a working main
interpreter and can create new interpreters; inherited ones refuse use with a clear error; the
parent is unaffected. (CPython 3.13.0 aborts such a child; 3.12.1 hangs it.) Also with queues
and channels busy on other threads at the moment of the fork: the child's new ones work, the
inherited ones refuse use clearly. XINTERP_FORKS sets how many forks that test makes (25)."""

import os
import sys

import pytest

from conftest import run_script

pytestmark = pytest.mark.skipif(sys.platform != 'linux', reason='fork semantics: Linux')

FORK = '''
import os, sys, threading, time, warnings
warnings.simplefilter('ignore', DeprecationWarning)  # "fork() with threads"
import xinterp
a = xinterp.create()
a.exec('x = 41')
q = xinterp.create_queue()
a.prepare_main(q=q)
busy = xinterp.create()
stop = xinterp.create_queue()
busy.prepare_main(stop=stop)
# Runs Python code in `busy` until the parent says stop: it is running when the fork happens.
t = threading.Thread(target=busy.exec, daemon=True, args=('while stop.empty(): pass',))
t.start()
while not busy.is_running():
    time.sleep(0.001)
pid = os.fork()
if pid == 0:
    try:
        a.exec('x += 1')
        sys.exit(10)
    except xinterp.InterpreterError as e:
        if 'fork' not in str(e):
            sys.exit(11)
    b = xinterp.create()
    if b.call(lambda: 6 * 7) != 42:
        sys.exit(12)
    b.close()
    q2 = xinterp.create_queue()
    q2.put(memoryview(bytearray(b'child')))
    if bytes(q2.get()) != b'child':
        sys.exit(13)
    a.close()  # forgets its copy; the parent still owns it
    print('child ok', flush=True)
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print('child exit', os.waitstatus_to_exitcode(status), flush=True)
a.exec('q.put(x + 1)')
print('parent a:', q.get(), flush=True)
stop.put(None)
t.join()
'''


@pytest.mark.no_asan  # another thread runs Python (allocating) while the main thread forks
def test_fork_with_live_subinterpreters():
    proc = run_script(FORK, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'child ok' in proc.stdout
    assert 'child exit 0' in proc.stdout
    assert 'parent a: 42' in proc.stdout
    assert 'Fatal Python error' not in proc.stderr


def test_multiprocessing_fork_after_interpreters_exist():
    proc = run_script('''
import multiprocessing, os, warnings
warnings.simplefilter('ignore', DeprecationWarning)
import xinterp
a = xinterp.create()
a.exec('y = 1')
with multiprocessing.get_context('fork').Pool(2) as pool:
    pids = pool.map(abs, [-1, -2, -3])
print('pool', pids, flush=True)
a.exec('y += 1')
print('parent fine', flush=True)
''', timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'pool [1, 2, 3]' in proc.stdout and 'parent fine' in proc.stdout


BUSY_FORKS = '''
import os, sys, threading, time, warnings
warnings.simplefilter('ignore', DeprecationWarning)  # "fork() with threads"
import xinterp
from xinterp import channels
q = xinterp.create_queue(maxsize=4)
recv, send = channels.create()
subs = [xinterp.create() for _ in range(2)]
for s in subs:
    s.prepare_main(q=q)
# Two sub-interpreters and two main-interpreter threads keep the queue's locks and condition
# variables busy (full and empty waits included) while the main thread forks.
# Each announces on `started` once its loop has gone round once; the forks begin when all have.
started = xinterp.create_queue()
for s in subs:
    s.prepare_main(started=started)
    threading.Thread(target=s.exec, daemon=True, args=(
        'first = True\\n'
        'while True:\\n    q.put(memoryview(bytearray(64)))\\n    q.get()\\n'
        '    if first:\\n        started.put(1)\\n        first = False',)).start()
def main_side():
    first = True
    while True:
        q.put(b'x' * 10)
        q.get()
        send.send_nowait(1)
        recv.recv()
        if first:
            started.put(1)
            first = False
for _ in range(2):
    threading.Thread(target=main_side, daemon=True).start()
for _ in range(4):
    started.get(timeout=60)

def child():
    # The parent's queue and channel refuse use with a clear error instead of hanging.
    for use in (lambda: q.put(1, timeout=1), lambda: q.get(timeout=1), q.qsize,
                lambda: send.send_nowait(1), lambda: recv.recv(timeout=1)):
        try:
            use()
        except xinterp.InterpreterError as e:
            if 'fork' not in str(e):
                print('unclear error:', repr(e), flush=True)
                return 20
        else:
            return 21
    # New ones work, with new interpreters, buffers included.
    q2 = xinterp.create_queue()
    b = xinterp.create()
    b.prepare_main(q2=q2)
    b.exec('q2.put(memoryview(bytearray(b"from b")))')
    if bytes(q2.get(timeout=5)) != b'from b':
        return 22
    r2, s2 = channels.create()
    s2.send_nowait(7)
    if r2.recv(timeout=5) != 7:
        return 23
    b.close()
    return 0

failures = []
for k in range({forks}):
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = child()
        finally:
            sys.stdout.flush()
            os._exit(code) if {hard_exit} else sys.exit(code)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            code = 'hang'
            break
        time.sleep(0.005)
    if code != 0:
        failures.append((k, code))
print('forks', {forks}, 'failures', failures, flush=True)
q.put(b'parent still fine', timeout=5)
'''


@pytest.mark.no_asan
@pytest.mark.parametrize('hard_exit', [False, True], ids=['sys.exit', 'os._exit'])
def test_fork_while_queues_and_channels_are_busy(hard_exit):
    forks = int(os.environ.get("XINTERP_FORKS", "25"))
    proc = run_script(BUSY_FORKS.format(forks=forks, hard_exit=hard_exit), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'forks {forks} failures []' in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert 'Fatal Python error' not in proc.stderr
