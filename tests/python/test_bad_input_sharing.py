"""Bad input to cross-interpreter data: is_shareable() and odd objects, buffer exporters that
fail or were released, deeply nested, huge and wide values and special floats, through every
way of sending (queues, channels, call(), prepare_main()). Each case either travels exactly or
raises a clear exception, and never crashes (see bad_input_helpers)."""

import decimal
import math

import pytest

import xinterp
from xinterp import _xinterp
from bad_input_helpers import DEEP_LIST, DEEP_TUPLE, INF, NAN, assert_clean_exit, check
from bad_input_helpers import nested_tuple
from conftest import run_script
from shared_helpers import evaluate, identity



def natively_shareable(value):
    """Sent with no fallback, checked all the way down (is_shareable() answers a tuple by its
    type alone, as CPython 3.14 does)."""
    return _xinterp._is_natively_shareable(value)

def test_is_shareable_signature_and_odd_objects():
    check(lambda: xinterp.is_shareable(), TypeError, 'takes exactly one argument')
    check(lambda: xinterp.is_shareable(1, 2), TypeError, 'takes exactly one argument')
    assert xinterp.is_shareable(NAN) and xinterp.is_shareable(INF)
    assert not xinterp.is_shareable(decimal.Decimal(1))
    # As CPython 3.14: a tuple is shareable by its type, whatever it holds; sending one that
    # holds a list where nothing falls back is then refused.
    assert xinterp.is_shareable((1, [2]))
    check(lambda: xinterp.create_queue().put((1, [2]), syncobj=True), xinterp.NotShareableError,
          'not shareable')


class FailingBuffer:
    """A buffer exporter (PEP 688) whose __buffer__ raises."""

    def __buffer__(self, flags):
        raise ValueError('no buffer today')


def test_a_failing_buffer_exporter_raises_its_own_error(interp, q1, chan):
    # Lent only on purpose (lend(), send_buffer()): asking for its buffer raises its own error.
    check(lambda: q1.put(xinterp.lend(FailingBuffer())), ValueError, 'no buffer today')
    check(lambda: interp.call(identity, xinterp.lend(FailingBuffer())), ValueError,
          'no buffer today')
    check(lambda: chan[1].send_buffer_nowait(FailingBuffer()), ValueError, 'no buffer today')
    assert q1.empty()
    # Sent as it is, it is not a buffer to xinterp (3.14): it goes by pickle.
    q1.put(FailingBuffer())
    assert type(q1.get_nowait()) is FailingBuffer


def test_released_or_resized_buffers(q1):
    m = memoryview(bytearray(b'abc'))
    m.release()
    check(lambda: q1.put(m), ValueError, 'released memoryview')
    b = bytearray(b'lent')
    q1.put(xinterp.lend(b))
    check(lambda: b.extend(b'x'), BufferError, 're-sized')  # held while the item is queued
    view = q1.get_nowait()
    del view
    b.extend(b'x')  # given back: resizable again
    assert q1.empty()


# --- huge values and deep nesting ---------------------------------------------------------------

DEEP_SENDS = {
    'queue.put': lambda i, q, s, v: q.put(v),
    'queue.put_nowait': lambda i, q, s, v: q.put_nowait(v),
    'call(arg)': lambda i, q, s, v: i.call(identity, v),
    'call(kwarg)': lambda i, q, s, v: i.call(identity, x=v),
    'prepare_main': lambda i, q, s, v: i.prepare_main(v=v),
    'send_nowait': lambda i, q, s, v: s.send_nowait(v),
}


def _deep(make, depth=100_000):
    v = None
    for _ in range(depth):
        v = make(v)
    return v


DEEP_FROZENSET = _deep(lambda v: frozenset({v}))
DEEP_SLICE = _deep(slice)


@pytest.mark.parametrize('value', [DEEP_TUPLE, DEEP_LIST, DEEP_FROZENSET, DEEP_SLICE],
                         ids=['tuple', 'list', 'frozenset', 'slice'])
@pytest.mark.parametrize('send', DEEP_SENDS.values(), ids=DEEP_SENDS.keys())
def test_deeply_nested_values_are_not_shareable(interp, q1, chan, send, value):
    # 100000 levels: not natively shareable (at most 200 deep), and pickle refuses them with
    # its RecursionError, reported as NotShareableError.
    assert not natively_shareable(value)
    assert xinterp.is_shareable(value) is (type(value) is tuple)  # 3.14: a tuple by its type
    # prepare_main() pickles nothing (as 3.14): refused as not natively shareable.
    check(lambda: send(interp, q1, chan[1], value), xinterp.NotShareableError,
          'only None' if send is DEEP_SENDS['prepare_main'] else 'recursion')
    assert q1.empty() and chan[0].recv_nowait(None) is None


def test_deep_tuple_with_syncobj_says_why():
    q = xinterp.create_queue(syncobj=True)
    check(lambda: q.put(DEEP_TUPLE), xinterp.NotShareableError, 'nested at most 200 deep')


@pytest.mark.parametrize('depth, shareable', [(150, True), (200, True), (300, False),
                                              (800, False)])
def test_moderately_nested_tuples_travel(interp, q1, depth, shareable):
    value = nested_tuple(depth)
    assert natively_shareable(value) is shareable
    assert xinterp.is_shareable(value)  # 3.14: a tuple by its type
    q1.put(value)  # natively, or by pickle beyond 200 levels
    assert q1.get_nowait() == value
    assert interp.call(identity, value) == value


def test_tuples_sharing_sub_tuples_do_not_blow_up(interp, q1):
    # 100 tuples referencing each other twice: 2**100 values if copied item by item (was: a
    # hang in is_shareable() and put()). Beyond 2**22 copied values a tuple goes by pickle,
    # which keeps the sharing.
    dag = ()
    for _ in range(100):
        dag = (dag, dag)
    assert not natively_shareable(dag)

    def check_sharing_kept(got):  # (== would walk all 2**100 paths of two distinct copies)
        depth = 0
        while got:
            assert got[0] is got[1]
            got, depth = got[0], depth + 1
        assert depth == 100

    q1.put(dag)
    check_sharing_kept(q1.get_nowait())
    check_sharing_kept(interp.call(identity, dag))  # by pickle both ways
    check(lambda: xinterp.create_queue(syncobj=True).put(dag), xinterp.NotShareableError,
          'values in all')
    small = ()
    for _ in range(18):  # 2**19 copied values: natively shared, copied
        small = (small, small)
    assert natively_shareable(small)
    q1.put(small)
    got = q1.get_nowait()
    assert got == small and got[0] is not got[1]


def test_wide_tuples_beyond_the_native_limit_go_by_pickle(q1):
    wide = (0,) * (1 << 22)  # 2**22 + 1 values with the tuple itself
    assert not natively_shareable(wide)
    q1.put(wide)
    assert q1.get_nowait() == wide
    assert natively_shareable(wide[1:])


HUGE_INTS = [10**5000, -(10**5000), 2**100_000, -2**63 - 1, 2**64, 2**63]


@pytest.mark.parametrize('value', HUGE_INTS, ids=['10**5000', '-10**5000', '2**100000',
                                                  '-2**63-1', '2**64', '2**63'])
def test_huge_ints_are_shareable_and_travel(interp, q1, chan, value):
    # Beyond sys.get_int_max_str_digits() (4300 digits): was a ValueError from str(int).
    assert xinterp.is_shareable(value)
    q1.put(value)
    assert q1.get_nowait() == value
    assert interp.call(identity, value) == value
    chan[1].send_nowait(value)
    assert chan[0].recv_nowait() == value
    interp.prepare_main(v=value)
    assert interp.call(evaluate, 'v == ' + ('-' if value < 0 else '') + hex(abs(value)))


def test_huge_int_result_travels_back(interp):
    assert interp.call(pow, 10, 5000) == 10**5000


def test_huge_str_bytes_and_wide_tuples_travel(interp, q1):
    big_str = 'x' * (50 << 20) + '\ud800'  # 50 MiB, and a lone surrogate
    q1.put(big_str)
    assert q1.get_nowait() == big_str
    assert interp.call(len, big_str) == len(big_str)
    del big_str
    big_bytes = b'\xff' * (50 << 20)
    q1.put(big_bytes)
    assert q1.get_nowait() == big_bytes
    del big_bytes
    wide = tuple(range(1_000_000))
    assert xinterp.is_shareable(wide)
    q1.put(wide)
    assert q1.get_nowait() == wide
    interp.exec('s = "' + 'y' * (10 << 20) + '"')  # a 10 MiB source
    assert interp.call(evaluate, 'len(s)') == 10 << 20


@pytest.mark.parametrize('value', [NAN, INF, -INF, -0.0, 5e-324],
                         ids=['nan', 'inf', '-inf', '-0.0', 'denormal'])
def test_special_floats_travel(q1, value):
    q1.put(value)
    got = q1.get_nowait()
    assert (math.isnan(got) and math.isnan(value)) or (got == value and
                                                       math.copysign(1, got) ==
                                                       math.copysign(1, value))


# --- in a fresh process: what could crash it -----------------------------------------------------

def test_deep_nesting_in_a_subinterpreter_and_its_threads_does_not_crash():
    proc = run_script('''
        import threading, xinterp
        def deep(n, make):
            v = make()
            for _ in range(n):
                v = (v,) if isinstance(v, tuple) else [v]
            return v
        q = xinterp.create_queue()
        i = xinterp.create()
        i.prepare_main(q=q)
        for n in (10**5, 10**6):
            for make in (tuple, list):
                v = deep(n, make)
                assert not xinterp._xinterp._is_natively_shareable(v)
                for send in (q.put, lambda v: i.call(len, v), lambda v: i.prepare_main(v=v)):
                    try:
                        send(v)
                    except xinterp.NotShareableError as e:
                        assert 'recursion' in str(e) or 'only None' in str(e), e
                    else:
                        raise AssertionError('sent')
        code = '\\n'.join([
            'import xinterp',
            'for box in (lambda v: (v,), lambda v: [v]):',
            '    v = ()',
            '    for _ in range(10**6):',
            '        v = box(v)',
            '    assert not xinterp._xinterp._is_natively_shareable(v)',
            '    try:',
            '        q.put(v)',
            '    except xinterp.NotShareableError as e:',
            '        assert "recursion" in str(e), e',
            '    else:',
            '        raise AssertionError("sent")',
            '    del v',
        ])
        i.exec(code)

        def run(source):  # from __main__: travels by code
            import __main__
            exec(source, __main__.__dict__)

        t = i.call_in_thread(run, code)  # on a thread's own C stack
        t.join()
        i.close()
        assert q.empty()
        print('done')
    ''', timeout=300)
    assert_clean_exit(proc)
