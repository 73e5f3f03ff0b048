"""Adversarial user code run by the housekeeper (issue 13, cases 1 and 9): the __release_buffer__
and __del__ of an idle interpreter's objects run on a housekeeper thread, which must give them a
full stack, and one that never returns must delay nobody but its own interpreter, nor process
exit. Each case runs in a fresh process with a timeout."""

import os

from conftest import run_script

HERE = os.path.dirname(os.path.abspath(__file__))

PRELUDE = '''
import atexit, sys, threading
sys.path.insert(0, {helpers!r})
def report():
    # Registered before xinterp is imported, so it runs after xinterp's own exit handler.
    s = xinterp.runtime_stats()
    print("stranded", s["stranded_at_exit"], "abandoned", s.get("calls_abandoned_at_exit"),
          "inline", s.get("housekeeper_inline_drains"), flush=True)
atexit.register(report)
import xinterp
import shared_helpers

def wait_until(predicate, what):
    if not shared_helpers.wait_until(predicate, timeout=30):
        print("timed out waiting until", what, flush=True)
        sys.exit(3)

def released(i):
    s = xinterp.stats()[i.id]
    return s["borrows"] == 0 and s["backlog"] == 0

# An exporter whose release blocks until its interpreter's `go` is set (it needs `entered`).
STUCK_EXPORTER = """
import threading
go = threading.Event()
class E:
    def __buffer__(s, f): return memoryview(bytearray(5))
    def __release_buffer__(s, v):
        v.release()
        entered.put("in release")
        go.wait()
"""

def stuck_interpreter(q, entered):
    """A new interpreter whose release of a view main dropped is blocked on its `go`."""
    x = xinterp.create()
    x.prepare_main(q=q, entered=entered)
    x.exec(STUCK_EXPORTER + "q.put(memoryview(E()))")
    v = q.get()
    del v  # x is idle: the housekeeper runs the release, which blocks until x's go is set
    assert entered.get(timeout=30) == "in release"
    return x
'''


def script(body):
    return PRELUDE.format(helpers=HERE) + body


def assert_ok(proc, *expected):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'Fatal Python error' not in proc.stderr, proc.stderr
    for line in expected:
        assert line in proc.stdout, proc.stdout + proc.stderr


# Deep recursion through C (len() -> __len__ -> len() ...): about 500 levels need far more than
# the 256 KiB stack the housekeeper used to have; an ordinary Python thread runs it fine.
RECURSIVE = '''
class R:
    def __init__(s, n): s.n = n
    def __len__(s): return len(R(s.n - 1)) + 1 if s.n else 0
'''


def test_deep_recursion_in_release_buffer_run_by_the_housekeeper():
    proc = run_script(script('''
x = xinterp.create()
q = xinterp.create_queue()
x.prepare_main(q=q)
x.exec(%r + """
class E:
    def __buffer__(s, f): return memoryview(bytearray(5))
    def __release_buffer__(s, v):
        v.release()
        global depth
        depth = len(R(500))
q.put(memoryview(E()))""")
v = q.get()
del v  # x is idle: the housekeeper runs the release
wait_until(lambda: released(x), "the release ran")
print("depth", x.call(shared_helpers.evaluate, "depth"), "by_housekeeper", xinterp.stats()[x.id]["run_by_housekeeper"])
x.close()
''' % RECURSIVE), timeout=60)
    assert_ok(proc, 'depth 500 by_housekeeper 1', 'stranded 0 abandoned 0 inline 0')


def test_deep_recursion_in_del_run_by_the_housekeeper():
    proc = run_script(script('''
x = xinterp.create()
q = xinterp.create_queue()
x.prepare_main(q=q)
x.exec(%r + """
class E:
    def __buffer__(s, f): return memoryview(bytearray(5))
    def __del__(s):
        global depth
        depth = len(R(500))
q.put(memoryview(E()))""")
v = q.get()
del v  # the release drops x's last reference to the E: its __del__ runs on the housekeeper
wait_until(lambda: released(x), "the release ran")
print("depth", x.call(shared_helpers.evaluate, "depth"), "by_housekeeper", xinterp.stats()[x.id]["run_by_housekeeper"])
x.close()
''' % RECURSIVE), timeout=60)
    assert_ok(proc, 'depth 500 by_housekeeper 1', 'stranded 0 abandoned 0 inline 0')


STUCK = '''
q = xinterp.create_queue()
entered = xinterp.create_queue()
x = stuck_interpreter(q, entered)
'''


def test_a_stuck_release_delays_only_its_own_interpreter():
    proc = run_script(script(STUCK + '''
y = xinterp.create()
y.prepare_main(q=q)
y.exec("b = bytearray(b'hello'); q.put(memoryview(b))")
w = q.get()
assert bytes(w) == b"hello"
del w  # y is idle too: its release must not wait for x's
wait_until(lambda: released(y), "y's release ran")
y.close()
print("y closed", flush=True)
# x's drain and y's ran on workers of their own.
print("workers", xinterp.runtime_stats()["drain_workers_started"] >= 2, flush=True)
x.exec("go.set()")  # x is not running: exec enters it while the release waits without its GIL
wait_until(lambda: released(x), "x's release ran")
x.close()
print("x closed", flush=True)
'''), timeout=60)
    assert_ok(proc, 'y closed', 'workers True', 'x closed', 'stranded 0 abandoned 0 inline 0')


def test_exit_with_a_release_stuck_forever():
    proc = run_script(script(STUCK + '''
print("exiting", flush=True)
'''), timeout=60)
    # Exit ends: x, with a thread stuck inside, is abandoned like an interpreter whose daemon
    # thread is blocked in C (stranded), and the stuck release is counted.
    assert_ok(proc, 'exiting', 'stranded 1 abandoned 1 inline 0')
    assert 'remaining subinterpreters' not in proc.stderr


def test_close_runs_a_queued_release_instead_of_blaming_the_last_holder():
    # Every drain worker (16, RuntimeOptions::max_drain_workers) is stuck in another
    # interpreter's release, so y's release, posted when main dropped its view, stays queued.
    # close() used to refuse, naming main ("still borrowed by interpreter 0") although main had
    # let go; it now runs the queued release itself.
    proc = run_script(script('''
q = xinterp.create_queue()
entered = xinterp.create_queue()
stuck = []
for _ in range(16):
    stuck.append(stuck_interpreter(q, entered))
y = xinterp.create()
y.prepare_main(q=q)
y.exec("b = bytearray(b'hello'); q.put(memoryview(b))")
w = q.get()
del w
print("y borrows", xinterp.stats()[y.id]["borrows"], flush=True)  # its release is queued
y.close()
print("y closed", flush=True)
for s in stuck:
    s.exec("go.set()")
for s in stuck:
    wait_until(lambda: released(s), "the stuck releases ran")
    s.close()
print("all closed", flush=True)
'''), timeout=120)
    assert_ok(proc, 'y borrows 1', 'y closed', 'all closed', 'stranded 0 abandoned 0 inline 0')


def test_deep_recursion_in_a_release_of_main_run_by_the_housekeeper():
    # main lends; x drops the view and waits for the release, while main's only thread is in
    # x.exec(): main runs no code of its own, so only the housekeeper can run main's release.
    proc = run_script(script('''
exec(%r)
done = xinterp.create_queue()
class E:
    def __buffer__(s, f): return memoryview(bytearray(5))
    def __release_buffer__(s, v):
        v.release()
        done.put(len(R(500)))
x = xinterp.create()
q = xinterp.create_queue()
out = xinterp.create_queue()
x.prepare_main(q=q, done=done, out=out)
q.put(memoryview(E()))
x.exec("v = q.get(); del v; out.put(done.get(timeout=30))")
print("depth", out.get(timeout=30), "by_housekeeper", xinterp.stats()[0]["run_by_housekeeper"],
      flush=True)
x.close()
''' % RECURSIVE), timeout=60)
    assert_ok(proc, 'depth 500 by_housekeeper 1', 'stranded 0 abandoned 0 inline 0')


def test_exit_with_a_release_of_main_stuck_forever():
    # main's own release, run by the housekeeper while main's thread is in x, never returns:
    # main's owner is abandoned after the grace period instead of exit waiting for it forever.
    proc = run_script(script('''
entered = xinterp.create_queue()
exec(STUCK_EXPORTER)  # main's E: its release blocks on main's go
x = xinterp.create()
q = xinterp.create_queue()
x.prepare_main(q=q, entered=entered)
q.put(memoryview(E()))
x.exec("v = q.get(); del v; assert entered.get(timeout=30) == 'in release'")
print("exiting", flush=True)
'''), timeout=60)
    assert_ok(proc, 'exiting', 'stranded 0 abandoned 1 inline 0')
