"""Sharing as CPython 3.14 does it: only a memoryview is lent zero-copy, a bytearray goes by an
independent copy, other buffer exporters take the ordinary fallback (pickle, or
NotShareableError where there is none), xinterp.lend() opts in to lending any C-contiguous
exporter, and is_shareable() answers as 3.14's registry. Beyond 3.14: frozenset, complex, range
and slice are natively shareable."""

import array
import gc
import mmap

import pytest

import xinterp
from conftest import eventually, interp_stats, released
from shared_helpers import evaluate, identity


# -- bytearray: an independent copy -----------------------------------------------------------

def test_bytearray_put_arrives_as_an_independent_bytearray(interp):
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    interp.exec('buf = bytearray(b"first"); q.put(buf)')
    got = q.get()
    assert type(got) is bytearray and got == bytearray(b'first')
    # The sender reuses its buffer and resizes it while the receiver holds the value.
    interp.exec('buf[:] = b"second chunk"; buf.append(33)')
    assert got == bytearray(b'first')
    got[0] = ord('F')  # and the receiver's copy is its own
    assert interp.call(evaluate, 'bytes(buf)') == b'second chunk!'
    assert interp_stats(interp)['borrows'] == 0


def test_bytearray_sender_may_resize_while_the_item_is_queued(interp):
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    interp.exec('buf = bytearray(b"abc"); q.put(buf); buf[:] = b"xyz"; buf.extend(b"123")')
    assert q.get() == bytearray(b'abc')


def test_bytearray_through_call_and_result(interp):
    data = bytearray(b'0123')
    back = interp.call(identity, data)
    assert type(back) is bytearray and back == data and back is not data
    data[0] = ord('X')
    assert back == bytearray(b'0123')
    got = interp.call(evaluate, 'bytearray(b"made there")')
    assert type(got) is bytearray and got == bytearray(b'made there')


def test_bytearray_inside_a_tuple_is_copied_too(interp):
    q = xinterp.create_queue()
    buf = bytearray(b'in a tuple')
    q.put((1, buf))
    buf[:] = b'changed'
    one, got = q.get()
    assert one == 1 and type(got) is bytearray and got == bytearray(b'in a tuple')


def test_bytearray_without_fallback_is_not_shareable():
    q = xinterp.create_queue(syncobj=True)
    with pytest.raises(xinterp.NotShareableError):
        q.put(bytearray(b'no'))
    assert q.empty()


def test_bytearray_copies_are_counted():
    before = xinterp.runtime_stats()['fallback_bytearray_copied']
    q = xinterp.create_queue()
    q.put(bytearray(b'one'))
    q.put((bytearray(b'two'), bytearray(b'three')))
    q.put(memoryview(bytearray(b'lent')))  # lent, not copied: not counted
    assert xinterp.runtime_stats()['fallback_bytearray_copied'] - before == 3
    while not q.empty():
        q.get()


# -- memoryview: still lent zero-copy ---------------------------------------------------------

def test_memoryview_is_still_lent_zero_copy(interp):
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    interp.exec('buf = bytearray(b"hello"); q.put(memoryview(buf))')
    view = q.get()
    assert isinstance(view, memoryview) and not view.readonly
    view[0] = ord('J')
    assert interp.call(evaluate, 'bytes(buf)') == b'Jello'
    assert interp_stats(interp)['borrows'] == 1
    del view
    gc.collect()
    assert eventually(lambda: released(interp))


# -- other exporters: the ordinary fallback ---------------------------------------------------

def test_array_is_pickled_not_lent(interp):
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    before = xinterp.runtime_stats()['fallback_pickled']
    interp.exec('import array\na = array.array("i", [1, 2, 3]); q.put(a); a.append(4)')
    got = q.get()
    assert type(got) is array.array and got.tolist() == [1, 2, 3]
    assert xinterp.runtime_stats()['fallback_pickled'] > before
    assert interp_stats(interp)['borrows'] == 0


def test_mmap_is_not_shareable_without_lend():
    q = xinterp.create_queue()
    m = mmap.mmap(-1, 16)
    try:
        with pytest.raises(xinterp.NotShareableError):
            q.put(m)
        assert not xinterp.is_shareable(m)
    finally:
        m.close()


def test_exporters_without_fallback_are_not_shareable():
    q = xinterp.create_queue(syncobj=True)
    with pytest.raises(xinterp.NotShareableError):
        q.put(array.array('b', b'ab'))
    q.put(xinterp.lend(array.array('b', b'ab')))  # lent on purpose: fine
    assert q.get().tolist() == [97, 98]


# -- lend() -----------------------------------------------------------------------------------

def test_lend_lends_an_array(interp):
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    interp.exec('import array, xinterp\na = array.array("d", [1.5, 2.5]); q.put(xinterp.lend(a))')
    view = q.get()
    assert isinstance(view, memoryview) and view.format == 'd' and view.tolist() == [1.5, 2.5]
    view[0] = 9.0
    assert interp.call(evaluate, 'a[0]') == 9.0
    del view
    gc.collect()
    assert eventually(lambda: released(interp))


def test_lend_lends_a_bytearray_and_locks_it(interp):
    q = xinterp.create_queue()
    interp.prepare_main(q=q)
    interp.exec('import xinterp\nbuf = bytearray(b"abc"); v = xinterp.lend(buf); q.put(v)\n'
                'del v')
    view = q.get()
    interp.exec('try:\n    buf.append(1)\n    resized = True\nexcept BufferError:\n'
                '    resized = False\n')
    assert interp.call(evaluate, 'resized') is False  # really shared: the exporter is held
    view[0] = ord('X')
    assert interp.call(evaluate, 'bytes(buf)') == b'Xbc'
    del view
    gc.collect()
    assert eventually(lambda: released(interp))
    interp.exec('buf.append(1)')


def test_lend_returns_a_memoryview():
    buf = bytearray(b'xy')
    v = xinterp.lend(buf)
    assert type(v) is memoryview and v.obj is buf and xinterp.is_shareable(v)
    v.release()


@pytest.mark.parametrize('obj', [object(), 'text', 42, [1, 2], None])
def test_lend_refuses_non_exporters(obj):
    with pytest.raises(TypeError, match='buffer protocol'):
        xinterp.lend(obj)


def test_lend_refuses_non_contiguous_and_released_buffers():
    with pytest.raises(ValueError, match='C-contiguous'):
        xinterp.lend(memoryview(bytearray(8))[::2])
    v = memoryview(bytearray(4))
    v.release()
    with pytest.raises(ValueError):
        xinterp.lend(v)


# -- is_shareable(), as 3.14's registry answers -------------------------------------------------

class SubBytes(bytes):
    pass


class SubStr(str):
    pass


class SubInt(int):
    pass


class SubFloat(float):
    pass


class SubTuple(tuple):
    pass


SHAREABLE_314 = [
    None, True, False, 0, -10, 2**100, 1.5, float('nan'), 'spam', '', b'spam', b'',
    (), (1, ('spam', b'eggs'), None), memoryview(b'ro'), memoryview(bytearray(3)),
    # 3.14 answers by type: any exact tuple, whatever it holds.
    (1, []), (object(),), ((), ([],)),
]
NOT_SHAREABLE_314 = [
    bytearray(b'x'), SubBytes(b'x'), SubStr('x'), SubInt(1), SubFloat(1.0), SubTuple(),
    [], {}, set(), object(), object, type, NotImplemented, ..., Exception(),
    array.array('b'), len, lambda: None,
]


@pytest.mark.parametrize('obj', SHAREABLE_314, ids=repr)
def test_is_shareable_true_as_in_314(obj):
    assert xinterp.is_shareable(obj)


@pytest.mark.parametrize('obj', NOT_SHAREABLE_314, ids=repr)
def test_is_shareable_false_as_in_314(obj):
    assert not xinterp.is_shareable(obj)


def test_is_shareable_xinterp_objects():
    q = xinterp.create_queue()
    assert xinterp.is_shareable(q)
    assert xinterp.is_shareable(xinterp.get_main())
    assert xinterp.is_shareable(xinterp.get_current())


# -- beyond 3.14: frozenset, complex, range, slice --------------------------------------------

NEW_VALUES = [
    frozenset(), frozenset({1, 'a', b'b', (2, 3), None, 1.5}), frozenset({frozenset({1})}),
    0j, complex(1.5, -2), complex(float('inf'), 0.0),
    range(0), range(10), range(-5, 2**70, 3), range(10, 0, -1),
    slice(None), slice(1, 10, 2), slice('a', (1, 2), None), slice(2**80, None, -1),
    (frozenset({1}), 2j, range(3), slice(1, 2)),
]


@pytest.mark.parametrize('value', NEW_VALUES, ids=repr)
def test_new_types_are_shareable(value):
    assert xinterp.is_shareable(value)


@pytest.mark.parametrize('value', [
    frozenset({SubInt(1)}), frozenset({(1, SubStr('x'))}), slice([], None),
    slice(1, object()), frozenset({lambda: None}), frozenset({(range(1), object())}),
])
def test_new_containers_with_unshareable_items_are_not(value):
    assert not xinterp.is_shareable(value)


def test_subclasses_of_new_types_are_not_shareable():
    class SubFrozenSet(frozenset):
        pass

    class SubComplex(complex):
        pass

    assert not xinterp.is_shareable(SubFrozenSet({1}))
    assert not xinterp.is_shareable(SubComplex(1j))


def test_new_types_round_trip_natively(interp):
    q = xinterp.create_queue(syncobj=True)  # no fallback: native only
    interp.prepare_main(q=q)
    before = xinterp.runtime_stats()['fallback_pickled']
    for value in NEW_VALUES:
        q.put(value)
        got = q.get()
        assert type(got) is type(value) and got == value
    interp.prepare_main(values=tuple(NEW_VALUES))
    interp.exec('for v in values:\n    q.put(v)')
    for value in NEW_VALUES:
        got = q.get()
        assert type(got) is type(value) and got == value
    assert xinterp.runtime_stats()['fallback_pickled'] == before
    for value in NEW_VALUES:  # (the callable itself goes by pickle, by reference)
        got = interp.call(identity, value)
        assert type(got) is type(value) and got == value
    assert interp.call(evaluate, 'type(values[1]).__name__') == 'frozenset'


def test_new_types_through_channels(new_channel):
    recv, send = new_channel()
    for value in [frozenset({1, 2}), 3 + 4j, range(2, 9, 3), slice(None, 5)]:
        send.send_nowait(value)
        got = recv.recv()
        assert type(got) is type(value) and got == value


def test_nan_in_complex_and_negative_zero_survive():
    q = xinterp.create_queue()
    q.put(complex(float('nan'), -0.0))
    got = q.get()
    assert got.real != got.real and str(got.imag) == '-0.0'


def test_deep_frozensets_and_slices_are_bounded():
    deep = frozenset()
    for _ in range(300):
        deep = frozenset({deep})
    assert not xinterp.is_shareable(deep)
    s = None
    for _ in range(300):
        s = slice(s)
    assert not xinterp.is_shareable(s)
    q = xinterp.create_queue(syncobj=True)
    with pytest.raises(xinterp.NotShareableError):
        q.put(deep)
    q2 = xinterp.create_queue()
    q2.put(frozenset({frozenset({1})}))  # shallow ones still go natively
    assert q2.get() == frozenset({frozenset({1})})


def test_many_values_in_a_frozenset_of_tuples_fall_back():
    big = (0,) * 4096
    fs = frozenset({(k, big) for k in range(1100)})  # about 4.5 million values once copied
    assert not xinterp.is_shareable(fs)
    assert xinterp.is_shareable(frozenset({(k, (0,) * 16) for k in range(100)}))


def test_a_tuple_holding_unshareable_items_is_shareable_by_type_yet_falls_back(interp):
    # As 3.14: is_shareable() says True for the tuple type; sending it where a fallback exists
    # pickles it, and where none exists (syncobj) refuses it.
    value = (1, [2, 3])
    assert xinterp.is_shareable(value)
    assert interp.call(identity, value) == value
    with pytest.raises(xinterp.NotShareableError):
        xinterp.create_queue(syncobj=True).put(value)
