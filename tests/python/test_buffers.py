"""Zero-copy buffers: the receiver sees the owner's memory, the owner's buffer is held until the
last view goes, and every release runs in the owner and is counted."""

import array
import gc
import mmap

import pytest

import xinterp
from conftest import eventually, interp_stats, released, run_script
from shared_helpers import evaluate


def test_write_on_one_side_is_seen_on_the_other(interp):
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    interp.exec('buf = bytearray(b"hello"); q.put(memoryview(buf))')
    view = q.get()
    assert isinstance(view, memoryview) and not view.readonly
    view[0] = ord('J')  # main writes into the sub's bytearray
    assert interp.call(evaluate, 'bytes(buf)') == b'Jello'
    interp.exec('buf[1] = ord("E")')
    assert bytes(view) == b'JEllo'
    del view


def test_readonly_exporter_stays_readonly(interp):
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    interp.exec('q.put(memoryview(bytes(b"frozen")))')  # a readonly memoryview
    view = q.get()
    assert view.readonly
    with pytest.raises(TypeError):
        view[0] = 1
    assert bytes(view) == b'frozen'


def test_format_and_shape_are_kept(interp):
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    interp.exec('import array, xinterp\nq.put(xinterp.lend(array.array("d", [1.5, 2.5, 3.5])))\n'
                'q.put(memoryview(bytearray(12)).cast("i", (3, 1)))')
    v = q.get()
    assert v.format == 'd' and v.itemsize == 8 and v.tolist() == [1.5, 2.5, 3.5]
    m = q.get()
    assert m.format == 'i' and m.shape == (3, 1)


def test_exporter_stays_locked_until_the_last_view_goes(interp):
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    interp.exec('buf = bytearray(b"abc"); q.put(memoryview(buf))')
    view = q.get()
    # While exported, a bytearray cannot resize: the owner's buffer is really held.
    interp.exec('try:\n    buf.append(1)\n    resized = True\nexcept BufferError:\n'
                '    resized = False\n')
    assert interp.call(evaluate, 'resized') is False
    copy = view[1:]  # a view of the view keeps it too
    del view
    gc.collect()
    assert interp_stats(interp)['borrows'] == 1
    del copy
    assert eventually(lambda: released(interp))
    interp.exec('buf.append(1)')  # resizable again: the release ran in the owner
    assert interp.call(evaluate, 'len(buf)') == 4


def test_buffers_through_call_and_prepare_main(interp):
    data = bytearray(b'0123')
    interp.prepare_main(shared=memoryview(data))
    interp.exec('shared[0] = ord("X")')
    assert data == bytearray(b'X123')

    def poke(view):
        view[1] = ord('Y')
        return len(view)

    assert interp.call(poke, memoryview(data)) == 4
    assert data == bytearray(b'XY23')
    interp.exec('del shared')
    assert eventually(lambda: xinterp.stats()[0]['borrows'] == 0)


def test_many_exporter_kinds(interp):
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    interp.exec('import array, mmap, xinterp\n'
                'm = mmap.mmap(-1, 16); m[:4] = b"mmap"\n'
                'q.put(xinterp.lend(m)); q.put(xinterp.lend(array.array("b", [1, 2, 3])))\n'
                'q.put(memoryview(b"mv"))\n')
    assert bytes(q.get()[:4]) == b'mmap'
    assert q.get().tolist() == [1, 2, 3]
    assert bytes(q.get()) == b'mv'


def test_non_contiguous_buffers_are_copied_not_shared(interp):
    q = xinterp.create_queue()
    data = bytearray(b'abcdef')
    q.put(memoryview(data)[::2])  # not contiguous: goes through pickle, a copy
    got = q.get()
    assert bytes(got) == b'ace'


def test_hundred_thousand_handovers_to_an_idle_owner_all_released(interp):
    """10^5 buffers of an idle owner are received and dropped in main: every release runs in the
    owner (by the housekeeper: the owner runs no code), none lost."""
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    n = 100_000
    interp.exec(f'buf = bytearray(64)\nfor _ in range({n}): q.put(memoryview(buf))\n')
    s0 = interp_stats(interp)
    assert s0['borrows'] == n
    for _ in range(n):
        v = q.get_nowait()
        v.release()
        del v
    assert eventually(lambda: released(interp), timeout=30)
    s = interp_stats(interp)
    assert s['posted'] == s['run_inline'] + s['run_by_owner'] + s['run_by_housekeeper'] + \
        s['run_raw']
    assert s['posted'] - s0['posted'] == n
    assert s['run_raw'] == 0 and s['failed'] == 0 and s['lost'] == 0
    assert s['borrows'] == 0 and s['queued'] == 0
    interp.exec('buf.append(0)')  # no export left


def test_release_in_the_owner_itself_runs_inline(interp):
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    s0 = interp_stats(interp)
    interp.exec('b = bytearray(8)\nfor _ in range(100):\n    q.put(memoryview(b))\n    q.get().release()\n')
    s = interp_stats(interp)
    assert s['run_inline'] - s0['run_inline'] == 100
    assert s['borrows'] == 0


def test_close_with_outstanding_borrows_raises_then_succeeds_later():
    owner = xinterp.create()
    borrower = xinterp.create()
    q = xinterp.create_queue()
    owner.prepare_main(q=q)
    borrower.prepare_main(q=q)
    owner.exec('buf = bytearray(b"mine"); q.put(memoryview(buf)); q.put(memoryview(buf))')
    borrower.exec('v = q.get()')
    main_view = q.get()
    with pytest.raises(xinterp.InterpreterError) as info:
        owner.close(timeout=0.05)
    msg = str(info.value)
    assert '2 buffers' in msg and f'interpreters {sorted([0, borrower.id])[0]}' in msg
    assert str(borrower.id) in msg
    # Intact and usable.
    owner.exec('buf[0] = ord("M")')
    assert bytes(main_view) == b'Mine'
    del main_view
    borrower.close()  # the borrower going away gives its view back
    owner.close()
    assert owner not in xinterp.list_all()


def test_closing_the_borrower_is_always_allowed(interp):
    borrower = xinterp.create()
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    borrower.prepare_main(q=q)
    interp.exec('q.put(memoryview(bytearray(4)))')
    borrower.exec('v = q.get()')
    assert interp_stats(interp)['borrows'] == 1
    borrower.close()
    assert eventually(lambda: released(interp))


@pytest.mark.skipif(not xinterp._xinterp._DEBUG_CHECKS,
                    reason='owner affinity is checked only in XINTERP_DEBUG_CHECKS builds '
                           '(the test command builds one for its ASan stage)')
def test_debug_build_names_both_interpreters_when_a_borrow_is_touched_outside_its_owner():
    # Contract line 1: the check runs on the production path (the lent buffer's own handle).
    proc = run_script('''
        import xinterp
        from xinterp import _xinterp
        sub = xinterp.create()
        q = xinterp.create_queue()
        sub.prepare_main(q=q)
        sub.exec('q.put(memoryview(bytearray(b"lent by the sub")))')
        view = q.get()
        print('owner', sub.id, flush=True)
        _xinterp._check_view_affinity(view)  # main is not the owner: aborts
        print('not reached', flush=True)
    ''')
    assert proc.returncode != 0
    assert 'not reached' not in proc.stdout
    sub_id = int(proc.stdout.split()[1])
    assert f'(engine id {sub_id}) touched from owner' in proc.stderr, proc.stderr
    assert '(engine id 0;' in proc.stderr, proc.stderr


def test_affinity_check_passes_inside_the_owner():
    # The same check, run where it belongs (in the owner), never fires, in any build: main lends
    # a buffer to itself through a queue and checks the borrow from main.
    q = xinterp.create_queue()
    q.put(memoryview(bytearray(b'lent by main')))
    view = q.get()
    assert bytes(view) == b'lent by main'
    xinterp._xinterp._check_view_affinity(view)
    with pytest.raises(TypeError, match='lent by another interpreter'):
        xinterp._xinterp._check_view_affinity(memoryview(b'not lent'))
    view.release()
