"""Ctrl-C: a real SIGINT while the process's main thread waits in exec()/call() on another
interpreter interrupts that interpreter and raises KeyboardInterrupt in the main thread; the
interpreter stays usable. Each case runs in a child process that the test signals."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

PRELUDE = f'''
import sys, threading
sys.path.insert(0, {HERE!r})
import xinterp
import interrupt_helpers as ih
ready = xinterp.create_queue()
a = xinterp.create()
def announce():  # once the target says it runs: tell the test, which then signals us
    ready.get(timeout=60)
    print("ready", flush=True)
threading.Thread(target=announce, daemon=True).start()
'''


def run_and_interrupt(body):
    """Starts the child, sends SIGINT once it printed 'ready', returns (stdout, stderr, rc)."""
    proc = subprocess.Popen(
        [sys.executable, '-c', PRELUDE + textwrap.dedent(body)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONFAULTHANDLER='1'))
    try:
        line = proc.stdout.readline()
        assert line == 'ready\n', (line, proc.stderr.read() if proc.poll() is not None else '')
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return out, err, proc.returncode


@pytest.mark.parametrize('call', [
    'a.call(ih.spin, ready)',
    'a.call(ih.get_forever, ready, xinterp.create_queue())',
    'a.exec("import interrupt_helpers as ih; ih.spin(ready)")',
])
def test_sigint_interrupts_the_call_and_raises_keyboardinterrupt_in_main(call):
    setup = 'a.prepare_main(ready=ready)\n' if 'exec' in call else ''
    out, err, rc = run_and_interrupt(setup + f'''
try:
    {call}
except KeyboardInterrupt:
    print("KeyboardInterrupt in main", flush=True)
except BaseException as e:
    print("wrong:", type(e).__name__, e, flush=True)
print("later call:", a.call(sum, [1, 2]), flush=True)
''')
    assert rc == 0, err
    assert out.splitlines() == ['KeyboardInterrupt in main', 'later call: 3'], out + err


def test_sigint_with_a_custom_python_handler_runs_it_after_the_call():
    # Decision (sigint_watch.h): the call is interrupted, then the main interpreter's handler
    # runs; one that does not raise lets the call's own ExecutionFailed through.
    out, err, rc = run_and_interrupt('''
import signal
signal.signal(signal.SIGINT, lambda *a: print("handler ran", flush=True))
try:
    a.call(ih.spin, ready)
except xinterp.ExecutionFailed as e:
    print("ExecutionFailed:", e.excinfo.type.__name__, flush=True)
print("later call:", a.call(sum, [1, 2]), flush=True)
''')
    assert rc == 0, err
    assert out.splitlines() == [
        'handler ran', 'ExecutionFailed: KeyboardInterrupt', 'later call: 3'], out + err


def test_sigint_reaches_a_call_in_a_fork_child():
    # The child inherits the chained handler but not the watcher thread: the first watched call
    # in the child starts it again (it waited for the call to end before).
    script = f'''
import os, sys, threading
sys.path.insert(0, {HERE!r})
import xinterp
import interrupt_helpers as ih
xinterp.create().exec("x = 1")   # the parent's handler and watcher
pid = os.fork()
if pid == 0:
    ready = xinterp.create_queue()
    b = xinterp.create()
    def announce():
        ready.get(timeout=60)
        print("ready", os.getpid(), flush=True)
    threading.Thread(target=announce, daemon=True).start()
    try:
        b.call(ih.spin, ready)
    except KeyboardInterrupt:
        print("KeyboardInterrupt in child", flush=True)
    print("later call:", b.call(sum, [1, 2]), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
'''
    proc = subprocess.Popen([sys.executable, '-W', 'ignore::DeprecationWarning', '-c', script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child = None
    try:
        word, child = proc.stdout.readline().split()
        assert word == 'ready'
        os.kill(int(child), signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            if child is not None:  # the fork child spins until interrupted
                try:
                    os.kill(int(child), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.splitlines() == ['KeyboardInterrupt in child', 'later call: 3'], out + err
