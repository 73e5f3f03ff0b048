"""Bad input to channels (PEP 554's draft): ids, timeouts, send/recv arguments, closed channels,
create() arguments and the private channel functions. Each case raises a clear exception and
sends nothing (see bad_input_helpers)."""

import threading

import pytest

import xinterp
from xinterp import _xinterp, channels, queues
from bad_input_helpers import BAD_IDS, BAD_TIMEOUTS, HUGE_TIMEOUTS, INF, UNUSED, BadBool, check
from conftest import act_when, parked_receivers


def channel_items(end):
    return _xinterp.channel_info(end.id)[1]


# --- ids: wrong types, out of range, too large, unknown -----------------------------------------

CHANNEL_ID_FUNCS = {
    'RecvChannel.recv': lambda v: channels.RecvChannel(v).recv(timeout=0),
    'RecvChannel.recv_nowait': lambda v: channels.RecvChannel(v).recv_nowait(),
    'RecvChannel.close': lambda v: channels.RecvChannel(v).close(),
    'RecvChannel.is_closed': lambda v: channels.RecvChannel(v).is_closed,
    'SendChannel.send': lambda v: channels.SendChannel(v).send(1, timeout=0),
    'SendChannel.send_nowait': lambda v: channels.SendChannel(v).send_nowait(1),
    'SendChannel.send_buffer': lambda v: channels.SendChannel(v).send_buffer(b'x', timeout=0),
    'SendChannel.send_buffer_nowait': lambda v: channels.SendChannel(v).send_buffer_nowait(b'x'),
    'SendChannel.close': lambda v: channels.SendChannel(v).close(),
    '_xinterp.channel_info': lambda v: _xinterp.channel_info(v),
}


@pytest.mark.parametrize('value, exc, fragment', BAD_IDS)
@pytest.mark.parametrize('fn', CHANNEL_ID_FUNCS.values(), ids=CHANNEL_ID_FUNCS.keys())
def test_bad_ids_are_refused(fn, value, exc, fragment):
    check(lambda: fn(value), exc, fragment)


def test_id_errors_name_the_kind_of_id():
    check(lambda: channels.RecvChannel(-1).recv_nowait(), ValueError, 'channel ID')
    check(lambda: channels.SendChannel(2**64).close(), OverflowError, 'channel ID too large')


UNKNOWN_ID_CASES = [
    pytest.param(fn, channels.ChannelNotFoundError, 'not found', id=name)
    for name, fn in CHANNEL_ID_FUNCS.items()
    if name not in ('RecvChannel.is_closed', '_xinterp.channel_info')
]


@pytest.mark.parametrize('fn, exc, fragment', UNKNOWN_ID_CASES)
def test_unknown_ids_raise_not_found(fn, exc, fragment):
    check(lambda: fn(UNUSED), exc, fragment)
    assert issubclass(exc, xinterp.InterpreterError)


def test_unknown_ids_where_absence_is_an_answer():
    # An unknown channel reads as closed.
    assert channels.RecvChannel(UNUSED).is_closed
    assert channels.SendChannel(UNUSED).is_closed
    assert _xinterp.channel_info(UNUSED)[0] == 2


# --- timeouts, arguments, closed channels --------------------------------------------------------

# --- channels -----------------------------------------------------------------------------------

CHANNEL_TIMEOUT_OPS = {
    'recv': lambda r, s, t: r.recv(timeout=t),
    'send': lambda r, s, t: s.send(1, timeout=t),
    'send_buffer': lambda r, s, t: s.send_buffer(bytearray(1), timeout=t),
}


@pytest.mark.parametrize('timeout, exc, fragment', BAD_TIMEOUTS)
@pytest.mark.parametrize('op', CHANNEL_TIMEOUT_OPS.values(), ids=CHANNEL_TIMEOUT_OPS.keys())
def test_channel_refuses_bad_timeouts(chan, op, timeout, exc, fragment):
    r, s = chan
    check(lambda: op(r, s, timeout), exc, fragment)
    assert r.recv_nowait(None) is None  # nothing was sent


@pytest.mark.parametrize('timeout', [0, -0.0, 1e-9, 0.01])
def test_channel_zero_and_tiny_timeouts(chan, timeout):
    r, s = chan
    check(lambda: r.recv(timeout=timeout), TimeoutError, 'timed out')  # was: returned None
    check(lambda: s.send(1, timeout=timeout), TimeoutError, 'timed out')
    check(r.recv_nowait, channels.ChannelEmptyError, 'is empty')  # the send was withdrawn


@pytest.mark.parametrize('timeout', HUGE_TIMEOUTS)
def test_channel_huge_timeouts_wait_and_wake(chan, timeout):
    r, s = chan
    # recv() parks (with a timeout too long to convert naively) and is woken by a send.
    waker = act_when(lambda: parked_receivers(r) >= 1, lambda: s.send_nowait('woken'))
    assert r.recv(timeout=timeout) == 'woken'
    waker.join()
    assert waker.observed, 'recv() never parked'
    # send() waits, with the same timeout, until its item is received.
    got = []
    receiver = act_when(lambda: channel_items(r) == 1, lambda: got.append(r.recv_nowait()))
    s.send('rendezvous', timeout=timeout)
    receiver.join()
    assert receiver.observed and got == ['rendezvous']


CHANNEL_CALL_CASES = [
    pytest.param(lambda r, s: s.send_buffer(1), TypeError, 'buffer protocol', id='send_buffer-int'),
    pytest.param(lambda r, s: s.send_buffer_nowait('x'), TypeError, 'buffer protocol',
                 id='send_buffer_nowait-str'),
    pytest.param(lambda r, s: s.send_nowait(threading.Lock()), xinterp.NotShareableError,
                 'cannot be pickled', id='send-lock'),
    pytest.param(lambda r, s: s.send_nowait(1, unbound='x'), ValueError, 'unbounditems must be',
                 id='send-unbound'),
    pytest.param(lambda r, s: s.send_nowait(1, unbounditems=2), ValueError,
                 'unbounditems must be', id='send-unbounditems'),
    pytest.param(lambda r, s: s.send(), TypeError, 'missing', id='send()'),
    pytest.param(lambda r, s: r.recv(1, 2), TypeError, 'positional', id='recv-2'),
    pytest.param(lambda r, s: r.recv_nowait(), channels.ChannelEmptyError, 'is empty',
                 id='recv_nowait'),
]


@pytest.mark.parametrize('fn, exc, fragment', CHANNEL_CALL_CASES)
def test_channel_methods_refuse(chan, fn, exc, fragment):
    check(lambda: fn(*chan), exc, fragment)
    assert chan[0].recv_nowait(None) is None


@pytest.mark.parametrize('kwargs, exc, fragment', [
    ({'unbounditems': 'x'}, ValueError, 'unbounditems must be'),
    ({'unbounditems': None}, ValueError, 'unbounditems must be'),
    ({'unbound': queues.UNBOUND}, TypeError, 'unexpected keyword'),
])
def test_channel_create_refuses(kwargs, exc, fragment):
    check(lambda: channels.create(**kwargs), exc, fragment)


def test_channel_ends_refuse_non_int_ids():
    for end in (channels.RecvChannel, channels.SendChannel):
        check(lambda: end('1'), TypeError, 'channel id must be an int')


CLOSED_CHANNEL_CASES = {
    'send': lambda r, s: s.send(1, timeout=1e300),
    'send_nowait': lambda r, s: s.send_nowait(1),
    'send_buffer': lambda r, s: s.send_buffer(bytearray(1), timeout=INF),
    'send_buffer_nowait': lambda r, s: s.send_buffer_nowait(bytearray(1)),
    'recv': lambda r, s: r.recv(timeout=INF),
    'recv_nowait': lambda r, s: r.recv_nowait(),
    'recv_nowait(default)': lambda r, s: r.recv_nowait(None),
    'RecvChannel.close': lambda r, s: r.close(),
}


@pytest.mark.parametrize('which_end', ['send', 'recv'])
@pytest.mark.parametrize('fn', CLOSED_CHANNEL_CASES.values(), ids=CLOSED_CHANNEL_CASES.keys())
def test_closed_channel_raises_closed(chan, fn, which_end):
    r, s = chan
    (s if which_end == 'send' else r).close()
    check(lambda: fn(r, s), channels.ChannelClosedError, 'is closed')
    assert r.is_closed and s.is_closed


def test_closing_a_channel_with_items(chan):
    r, s = chan
    s.send_nowait(memoryview(bytearray(8)))  # lent; given back when the channel ends
    check(r.close, channels.ChannelNotEmptyError, 'still has items')
    s.close()
    s.close()  # closing the send end again is harmless
    assert isinstance(r.recv(timeout=1), memoryview)  # the receiver drains it, then it closes
    check(r.recv_nowait, channels.ChannelClosedError, 'is closed')


# --- the private channel functions ---------------------------------------------------------------

PRIVATE_CASES = [
    pytest.param(lambda: _xinterp.channel_create(0), ValueError, 'unbounditems must be',
                 id='channel_create(0)'),
    pytest.param(lambda: _xinterp.channel_create('x'), TypeError, 'integer',
                 id='channel_create(str)'),
    pytest.param(lambda: _xinterp.channel_send(1), TypeError, 'channel_send(id',
                 id='channel_send(1)'),
    pytest.param(lambda: _xinterp.channel_recv(), TypeError, 'channel_recv(id',
                 id='channel_recv()'),
    pytest.param(lambda: _xinterp.channel_close(1), TypeError, 'exactly 4 arguments',
                 id='channel_close(1)'),
    pytest.param(lambda: _xinterp._register_class('RecvChannel', 1), TypeError, 'must be type',
                 id='_register_class-not-a-class'),
    pytest.param(lambda: _xinterp._register_class('Nope', int), ValueError,
                 'unknown shareable class kind', id='_register_class-kind'),
    pytest.param(lambda: _xinterp.channel_handle('x'), TypeError, 'channel ID must be an int',
                 id='channel_handle(str)'),
    pytest.param(lambda: _xinterp.channel_handle(2**62), channels.ChannelNotFoundError,
                 'not found', id='channel_handle-unknown'),
]


@pytest.mark.parametrize('fn, exc, fragment', PRIVATE_CASES)
def test_private_functions_refuse(fn, exc, fragment):
    check(fn, exc, fragment)


def test_private_channel_functions_with_bad_flags(chan):
    r, s = chan
    check(lambda: _xinterp.channel_send(r.id, 1, 7, False, None, False), ValueError,
          'unbounditems must be')
    check(lambda: _xinterp.channel_send(r.id, 1, 'x', False, None, False), TypeError, 'integer')
    check(lambda: _xinterp.channel_send(r.id, 1, 2**70, False, None, False), OverflowError,
          'too large')
    check(lambda: _xinterp.channel_send(r.id, 1, 0, BadBool(), None, False), ZeroDivisionError,
          'bad bool')
    check(lambda: _xinterp.channel_recv(r.id, BadBool(), None), ZeroDivisionError, 'bad bool')
    assert r.recv_nowait(None) is None


def test_exceptions_still_right_after_refused_private_calls(chan):
    # The refused _register_class calls above changed nothing: channel ends still travel by id
    # and the exceptions are the channels' own.
    r, s = chan
    check(r.recv_nowait, channels.ChannelEmptyError, 'is empty')
