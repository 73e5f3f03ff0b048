"""Hostile cases from outside xinterp's own API (issue 13): interpreters made by CPython's private
`_interpreters` module (`_xxsubinterpreters` on 3.12) lending to xinterp, that module aimed at
xinterp's interpreters, and thread states outliving their OS thread. Each case runs in its own
process: before the fixes they crashed or aborted it.
"""

import pytest

from conftest import run_script

PRELUDE = '''
import gc, sys, threading
try:
    import _interpreters as cpython_interps
except ImportError:
    import _xxsubinterpreters as cpython_interps
import xinterp
from xinterp import queues
'''


def run(body, timeout=120):
    proc = run_script(PRELUDE + body, timeout=timeout)
    assert 'Fatal Python error' not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    return proc


def test_foreign_lender_destroyed_while_its_buffer_is_borrowed():
    """Case 6: a `_interpreters` interpreter lends a PEP 688 exporter through an xinterp queue
    and is destroyed while main holds the view. Its xinterp module outlives it (the exporter,
    kept by the view, holds its globals), so m_free never runs: xinterp learns of the death
    from CPython's per-interpreter exit callback, gives the borrow up (counted) and forgets it;
    dropping the view then runs its release raw (owner closed) instead of posting into a freed
    interpreter."""
    proc = run('''
q = queues.create()
fid = cpython_interps.create()
cpython_interps.run_string(fid, f"""
from xinterp import queues
q = queues.Queue({q.id})
class Exporter:
    def __init__(self):
        self.data = bytearray(b"x" * 64)
    def __buffer__(self, flags):
        return memoryview(self.data)
    def __release_buffer__(self, view):
        view.release()
q.put(memoryview(Exporter()))
""")
v = q.get(timeout=10)
assert bytes(v[:3]) == b"xxx"
assert fid in [i.id for i in xinterp.list_all()]
assert xinterp.stats()[fid]["borrows"] == 1
before = xinterp.runtime_stats()
cpython_interps.destroy(fid)
after = xinterp.runtime_stats()
print("listed", fid in [i.id for i in xinterp.list_all()], fid in xinterp.stats())
print("given up", after.get("foreign_ended_with_borrows", 0) - before.get("foreign_ended_with_borrows", 0))
del v
gc.collect()
print("done")
''')
    assert 'listed False False' in proc.stdout, proc.stdout
    assert 'given up 1' in proc.stdout, proc.stdout
    assert 'done' in proc.stdout


def test_foreign_lender_destroyed_after_its_buffer_came_back():
    """Case 6, the quiet path: nothing borrowed at the end, nothing given up, and the foreign
    interpreter is forgotten all the same."""
    proc = run('''
q = queues.create()
fid = cpython_interps.create()
cpython_interps.run_string(fid, f"""
from xinterp import queues
q = queues.Queue({q.id})
class Exporter:
    def __buffer__(self, flags):
        return memoryview(bytearray(16))
q.put(memoryview(Exporter()))
""")
v = q.get(timeout=10)
del v
gc.collect()
cpython_interps.destroy(fid)
print("listed", fid in [i.id for i in xinterp.list_all()])
print("given up", xinterp.runtime_stats().get("foreign_ended_with_borrows"))
''')
    assert 'listed False' in proc.stdout, proc.stdout
    assert 'given up 0' in proc.stdout, proc.stdout


def test_cpython_module_refuses_to_destroy_or_enter_an_xinterp_interpreter():
    """Case 7: CPython's module sees xinterp's interpreters as running their __main__, so it
    refuses to destroy them (it aborted on the parked thread state: "not the last thread") and
    to run code in them; the interpreter stays intact and xinterp closes it normally."""
    proc = run('''
x = xinterp.create()
x.exec("a = 1")
ops = [lambda: cpython_interps.destroy(x.id), lambda: cpython_interps.run_string(x.id, "a = 2")]
if hasattr(cpython_interps, "exec"):  # 3.13
    ops += [lambda: cpython_interps.exec(x.id, "a = 2"),
            lambda: cpython_interps.call(x.id, lambda: None),
            lambda: cpython_interps.set___main___attrs(x.id, {"a": 2})]
for op in ops:
    try:
        op()
    except Exception as e:
        print("refused:", e)
    else:
        print("not refused")
print("cpython says running", cpython_interps.is_running(x.id))
x.exec("assert a == 1")
print("xinterp says running", x.is_running())
x.close()
print("listed", x.id in [i.id for i in xinterp.list_all()])
''')
    assert 'not refused' not in proc.stdout, proc.stdout
    assert 'refused: interpreter running' in proc.stdout, proc.stdout
    assert 'refused: interpreter already running' in proc.stdout, proc.stdout
    assert 'cpython says running True' in proc.stdout
    assert 'xinterp says running False' in proc.stdout
    assert 'listed False' in proc.stdout


def test_cpython_module_id_references_never_end_an_xinterp_interpreter():
    """Case 7, 3.13: `_interpreters.incref(id, implieslink=True)` then `decref()` ended the
    interpreter from CPython's side (aborting on its parked thread state); xinterp holds an id
    reference of its own, so the count never reaches zero."""
    proc = run('''
if not hasattr(cpython_interps, "incref"):
    print("no incref")
    sys.exit(0)
x = xinterp.create()
cpython_interps.incref(x.id, implieslink=True)
cpython_interps.decref(x.id)
x.exec("a = 1")
x.close()
print("done")
''')
    if 'no incref' in proc.stdout:
        pytest.skip('this CPython has no _interpreters.incref (3.12)')
    assert 'done' in proc.stdout


def test_cpython_module_entering_while_xinterp_closes():
    """Case 7: a thread keeps calling `_interpreters.run_string` on an xinterp interpreter while
    another closes it. Each call is refused until the close, then the id is not found; the
    close never ends the interpreter with one of those visitors inside (3.13 aborted)."""
    proc = run('''
outcomes = {}
for round in range(20):
    x = xinterp.create()
    x.exec("import threading")
    xid = x.id
    refused = threading.Event()
    def hammer():
        while True:
            try:
                cpython_interps.run_string(xid, "pass")
                outcome = "ran"
            except Exception as e:
                outcome = "refused" if "running" in str(e) else "gone"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome == "refused":
                refused.set()
            else:
                return
    t = threading.Thread(target=hammer)
    t.start()
    assert refused.wait(30)
    x.close()
    t.join()
print("ran", outcomes.get("ran", 0), "gone", outcomes.get("gone", 0))
''', timeout=240)
    assert 'ran 0 gone 20' in proc.stdout, proc.stdout


def test_threading_local_does_not_cross_to_a_thread_reusing_the_ident():
    """Case 13: the thread state xinterp keeps for a thread between its visits ends with that
    thread; a new thread that gets the dead thread's ident starts afresh in the interpreter."""
    proc = run('''
x = xinterp.create()
x.exec("import threading; loc = threading.local()")
first = []
def a():
    first.append(threading.get_ident())
    x.exec("loc.secret = 42")
t = threading.Thread(target=a)
t.start()
t.join()
def b():
    if threading.get_ident() == first[0]:
        x.exec("seen = getattr(loc, 'secret', None)")
reused = False
for _ in range(500):
    t = threading.Thread(target=b)
    t.start()
    t.join()
    if t.ident == first[0]:
        reused = True
        break
print("reused", reused)
if reused:
    x.exec("print('seen', seen)")
x.exec("loc.secret = 7; assert loc.secret == 7")  # main's own visits still keep theirs
x.close()
''')
    if 'reused False' in proc.stdout:
        pytest.skip('no new thread got the ident of the finished one (the C library did not reuse it)')
    assert 'seen None' in proc.stdout, proc.stdout
