"""Regressions found in review: each case ran into a hang or an abort before its fix, so each
runs in its own process with a timeout."""

import pytest

from conftest import run_script


def test_closing_a_sender_whose_item_holds_the_last_reference_to_its_queue():
    # The unbound policy dropped the item under the queue's own lock; dropping it released the
    # queue, which took that lock again: the closer hung.
    proc = run_script('''
import gc, xinterp
from xinterp import queues
q = queues.create()
a = xinterp.create()
a.prepare_main(q=q)
a.exec("q.put((memoryview(bytearray(b'x' * 10)), q)); del q; import gc; gc.collect()")
del q
gc.collect()
a.close()
print("closed", flush=True)
''', timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert 'closed' in proc.stdout


def test_closing_channel_emptied_by_its_sender_closing_wakes_receivers():
    proc = run_script('''
import xinterp
from xinterp import channels
r, s = channels.create(unbounditems=channels.UNBOUND_REMOVE)
a = xinterp.create()
a.prepare_main(s=s)
a.exec("s.send_buffer_nowait(bytearray(b'abc'))")
s.close()   # closing: one item left
a.close()   # its item is removed: the channel is empty, so it must be closed now
try:
    r.recv(timeout=20)
except channels.ChannelClosedError:
    print("closed", flush=True)
''', timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert 'closed' in proc.stdout


@pytest.mark.parametrize('run', range(6))
def test_daemon_thread_creating_interpreters_at_exit(run):
    # An interpreter created after xinterp's exit handler took its list was never closed, and
    # CPython 3.12 aborted on it ("remaining subinterpreters").
    proc = run_script('''
import sys, threading, xinterp
under_way = threading.Event()
def loop():
    n = 0
    while True:
        try:
            xinterp.create()
        except Exception:
            return
        n += 1
        if n == 3:
            under_way.set()  # the loop is under way: exit now races with it
threading.Thread(target=loop, daemon=True).start()
if not under_way.wait(60):
    sys.exit('the loop created nothing')
''', timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'Fatal Python error' not in proc.stderr
