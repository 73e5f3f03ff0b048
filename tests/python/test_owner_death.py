"""Owner death: an interpreter that lent buffers closes while others still borrow them, while its
items sit in queues, while releases are on their way to it; or the borrowing side closes instead.

Every scenario ends with every export given back *inside the owner*, seen through the exporter
itself: the owner keeps a PEP 688 exporter (`Tracked`) whose `__release_buffer__` reports, on a
log queue, which interpreter ran it and whether the bytearray behind it was resizable again once
the last export went. Then the stats must balance: nothing backlogged, lost, run raw or still
borrowed, in the live interpreters and in the totals of the closed ones.
"""

import gc
import threading

import pytest

import xinterp
from xinterp import queues
from shared_helpers import evaluate, run_in_main

TRACKED = '''
import xinterp

class Tracked:
    """A buffer exporter that reports each release on `log`."""

    def __init__(self, n):
        self.data = bytearray(n)
        self.exports = 0

    def __buffer__(self, flags):
        self.exports += 1
        return memoryview(self.data)

    def __release_buffer__(self, view):
        view.release()
        self.exports -= 1
        resizable = False
        if self.exports == 0:
            try:
                self.data.append(0)
                self.data.pop()
                resizable = True
            except BufferError:
                pass
        log.put((xinterp.get_current().id, self.exports, resizable))

tracked = Tracked(16)
'''

RUN_KEYS = ('run_inline', 'run_by_owner', 'run_by_housekeeper', 'run_raw')


def closed_totals():
    return xinterp.runtime_stats()['closed_interpreters']


def make_owner(log, q):
    owner = xinterp.create()
    owner.prepare_main(log=log, q=q)
    owner.exec(TRACKED)
    return owner


def drain(log, n, timeout=60):
    """Takes n release reports from log (waiting up to timeout for each)."""
    return [log.get(timeout=timeout) for _ in range(n)]


def assert_all_released_in(owner_id, reports, exports):
    """`exports` releases, each run in the owner; the last left no export behind, and whenever
    none was left (exports may rise again while a borrower streams) the bytearray was resizable."""
    assert len(reports) == exports
    assert all(r[0] == owner_id for r in reports), reports[:5]
    assert all(r[1] >= 0 for r in reports), reports[:5]
    assert reports[-1][1] == 0
    assert all(r[2] for r in reports if r[1] == 0), [r for r in reports if r[1] == 0][:5]


def assert_balanced(live, closed_before):
    """Live interpreters have nothing pending or borrowed; the closed ones' totals balance."""
    stats = xinterp.stats()
    for i in live:
        s = stats[i.id]
        assert s['borrows'] == 0 and s['backlog'] == 0, (i.id, s)
        assert s['lost'] == 0 and s['run_raw'] == 0 and s['failed'] == 0, (i.id, s)
    after = closed_totals()
    delta = {k: after[k] - closed_before[k] for k in after}
    assert delta['posted'] == sum(delta[k] for k in RUN_KEYS), delta
    assert delta['lost'] == 0 and delta['run_raw'] == 0 and delta['failed'] == 0, delta
    assert after['backlog'] == 0
    assert xinterp.runtime_stats()['closed_with_borrows_at_exit'] == 0


@pytest.fixture
def world():
    """A log queue, a queue for the items, and the totals of closed interpreters before."""
    gc.collect()
    return queues.create(), queues.create(), closed_totals()


def make_borrower(where, q):
    if where == 'main':
        return None
    b = xinterp.create()
    b.prepare_main(q=q)
    return b


def receive(borrower, q, n):
    """The borrower takes n views off q and keeps them (main keeps them in the returned list)."""
    if borrower is None:
        return [q.get(timeout=5) for _ in range(n)]
    borrower.exec(f'views = [q.get(timeout=5) for _ in range({n})]')
    return None


def drop(borrower, held):
    if borrower is None:
        held.clear()
        gc.collect()
    else:
        borrower.exec('views.clear(); import gc; gc.collect()')


@pytest.mark.parametrize('where', ['main', 'sub'])
def test_owner_closes_while_its_buffers_are_borrowed(world, where):
    log, q, before = world
    owner = make_owner(log, q)
    borrower = make_borrower(where, q)
    owner.exec('for _ in range(3): q.put(memoryview(tracked))')
    held = receive(borrower, q, 3)
    with pytest.raises(xinterp.InterpreterError, match='3 buffers'):
        owner.close(timeout=0.05)
    # Refused, not half-done: the owner works and its exporter is still locked by the views.
    owner.exec('assert tracked.exports == 3\n'
               'try:\n    tracked.data.append(0)\nexcept BufferError: pass\n'
               'else: raise AssertionError("resizable while borrowed")')
    drop(borrower, held)
    assert_all_released_in(owner.id, drain(log, 3), 3)
    owner.close()
    if borrower is not None:
        borrower.close()
    assert_balanced([], before)


@pytest.mark.parametrize('mode', ['UNBOUND', 'UNBOUND_ERROR', 'UNBOUND_REMOVE'])
def test_owner_closes_while_its_items_sit_in_a_queue(world, mode):
    log, _, before = world
    q = queues.create(unbounditems=getattr(queues, mode))
    owner = make_owner(log, q)
    owner.exec('for _ in range(5): q.put(memoryview(tracked))\nq.put(b"self-contained")')
    owner.close()  # queued items are not borrows: nothing to wait for
    # Each unreceived export was given back in the owner, before it went.
    assert_all_released_in(owner.id, drain(log, 5), 5)
    if mode == 'UNBOUND_REMOVE':
        assert q.qsize() == 1
    else:
        for _ in range(5):
            if mode == 'UNBOUND':
                assert q.get_nowait() is queues.UNBOUND
            else:
                with pytest.raises(queues.ItemInterpreterDestroyed):
                    q.get_nowait()
    assert q.get_nowait() == b'self-contained'  # copied data outlives its sender
    assert q.empty()
    assert_balanced([], before)


# Run by the dropper (in main, or in the borrowing interpreter): waits until the owner's
# close() is under way (a closing interpreter leaves xinterp.stats() at once, and cannot finish
# closing while the views are held), then drops the views, trickling (the pace only spreads the
# releases out by yielding; nothing waits on it). Sets `close_seen` to whether the close was seen.
DROP_DURING_CLOSE = """
import os, xinterp
from shared_helpers import wait_until
close_seen = wait_until(lambda: owner_id not in xinterp.stats())
while views:
    views.pop()
    if len(views) % 50 == 0:
        os.sched_yield()  # let the closer run between drops
"""


@pytest.mark.parametrize('where', ['main', 'sub'])
def test_owner_closes_while_releases_are_in_flight(world, where):
    """The borrower drops thousands of views on another thread while close() waits for them."""
    n = 2000
    log, q, before = world
    owner = make_owner(log, q)
    borrower = make_borrower(where, q)
    owner.exec(f'for _ in range({n}): q.put(memoryview(tracked))')
    held = receive(borrower, q, n)
    if borrower is not None:
        borrower.prepare_main(owner_id=owner.id)
        dropper = borrower.call_in_thread(run_in_main, DROP_DURING_CLOSE)
    else:
        ns = {'views': held, 'owner_id': owner.id}
        dropper = threading.Thread(target=exec, args=(DROP_DURING_CLOSE, ns))
        dropper.start()
    owner.close(timeout=30)  # returns once the last release ran in the owner
    dropper.join()
    if borrower is not None:
        assert borrower.call(evaluate, 'close_seen')
    else:
        assert ns['close_seen']
    assert_all_released_in(owner.id, [log.get_nowait() for _ in range(n)], n)
    assert log.empty()
    if borrower is not None:
        borrower.close()
    assert_balanced([], before)


@pytest.mark.parametrize('owner_where', ['main', 'sub'])
def test_borrower_closes_while_holding_views(world, owner_where):
    log, q, before = world
    if owner_where == 'main':
        ns = {'log': log}
        exec(TRACKED, ns)
        tracked = ns['tracked']
        for _ in range(4):
            q.put(memoryview(tracked))
        owner, owner_id = None, 0
    else:
        owner = make_owner(log, q)
        owner.exec('for _ in range(4): q.put(memoryview(tracked))')
        owner_id = owner.id
    borrower = make_borrower('sub', q)
    borrower.exec('views = [q.get(timeout=5) for _ in range(4)]; sub = views[0][2:5]')
    borrower.close()  # always allowed: the borrower's views go with it
    assert_all_released_in(owner_id, drain(log, 4), 4)
    live = [owner] if owner is not None else []
    assert_balanced(live + [xinterp.get_main()], before)
    if owner is not None:
        owner.close()


def test_borrower_closes_after_lending_on_a_borrowed_view(world):
    """B forwards a view of A's buffer to main. B is now a lender itself: its close waits for
    main's view; once main drops it, the chain unwinds and A gets its export back."""
    log, q, before = world
    owner = make_owner(log, q)
    borrower = make_borrower('sub', q)
    out = queues.create()
    borrower.prepare_main(out=out)
    owner.exec('q.put(memoryview(tracked))')
    borrower.exec('v = q.get(timeout=5); out.put(v); del v')
    forwarded = out.get(timeout=5)
    with pytest.raises(xinterp.InterpreterError, match='1 buffer'):
        borrower.close(timeout=0.05)
    assert log.empty()  # A's export is still held, through B, by main
    del forwarded
    gc.collect()
    borrower.close(timeout=10)
    assert_all_released_in(owner.id, drain(log, 1), 1)
    owner.close()
    assert_balanced([], before)


def test_owner_and_borrower_close_at_once(world):
    """Both sides close on two threads at the same moment, with views and queued items both
    outstanding. The owner's close waits for the borrower's views to come back."""
    log, q, before = world
    for _ in range(20):
        owner = make_owner(log, q)
        borrower = make_borrower('sub', q)
        owner.exec('for _ in range(6): q.put(memoryview(tracked))')
        borrower.exec('views = [q.get(timeout=5) for _ in range(3)]')  # 3 borrowed, 3 queued
        errors = []
        barrier = threading.Barrier(2)

        def close(i):
            barrier.wait()
            try:
                i.close(timeout=30)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=close, args=(i,)) for i in (owner, borrower)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert_all_released_in(owner.id, drain(log, 6), 6)
        while not q.empty():
            assert q.get_nowait() is queues.UNBOUND
    assert_balanced([], before)


def test_owner_closes_while_a_borrower_streams(world):
    """A borrower thread keeps taking and dropping views while the owner stops putting and
    closes: close waits out the views still held; nothing is left behind."""
    log, q, before = world
    owner = make_owner(log, q)
    borrower = make_borrower('sub', q)
    stop = queues.create()
    borrower.prepare_main(stop=stop)
    consumer = borrower.call_in_thread(run_in_main, '''
got = 0
while stop.empty() or not q.empty():
    try:
        v = q.get(timeout=0.01)
    except Exception:
        continue
    got += 1
    del v
''')
    owner.exec('for _ in range(3000): q.put(memoryview(tracked))')
    stop.put(None)
    owner.close(timeout=30)
    consumer.join()
    received = borrower.call(evaluate, 'got')
    left = 0
    while not q.empty():  # anything not yet taken became UNBOUND when the owner closed
        assert q.get_nowait() is queues.UNBOUND
        left += 1
    assert received + left == 3000
    assert_all_released_in(owner.id, drain(log, 3000), 3000)
    assert log.empty()
    borrower.close()
    assert_balanced([xinterp.get_main()], before)
