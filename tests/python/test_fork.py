"""Fork with live sub-interpreters (DESIGN contract line 8): the child keeps a working main
interpreter and can create new interpreters; inherited ones refuse use with a clear error; the
parent is unaffected. (CPython 3.13.0 aborts such a child; 3.12.1 hangs it.)"""

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
t = threading.Thread(target=busy.exec, daemon=True,
                     args=('import time\\nend = time.monotonic() + 1\\nwhile time.monotonic() < end: pass',))
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
    q2.put(bytearray(b'child'))
    if bytes(q2.get()) != b'child':
        sys.exit(13)
    a.close()  # forgets its copy; the parent still owns it
    print('child ok', flush=True)
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print('child exit', os.waitstatus_to_exitcode(status), flush=True)
a.exec('q.put(x + 1)')
print('parent a:', q.get(), flush=True)
t.join()
'''


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
