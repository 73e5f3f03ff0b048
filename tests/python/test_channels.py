"""PEP 554 channels (CPython 3.13's draft spelling) and the draft's queue keywords."""

import threading
import time

import pytest

import xinterp
from xinterp import _xinterp, channels, queues
from conftest import eventually, interp_stats, parked_receivers
from shared_helpers import evaluate


def channel_items(end):
    return _xinterp.channel_info(end.id)[1]


def receiver(interp, r, count=1):
    """Starts a thread that receives `count` objects in `interp` into its __main__.got."""
    interp.prepare_main(r=r, count=count)
    interp.exec('got = []')
    return threading.Thread(target=interp.exec,
                            args=('for _ in range(count): got.append(r.recv())',))


def test_create_list_and_ends(new_channel):
    r, s = new_channel()
    assert isinstance(r, channels.RecvChannel) and isinstance(s, channels.SendChannel)
    assert r.id == s.id
    assert (r, s) in channels.list_all()
    assert r == channels.RecvChannel(r.id) and r != s
    assert repr(r) == f'RecvChannel(id={r.id})'
    assert xinterp.is_shareable(r) and xinterp.is_shareable(s)
    assert not r.is_closed and not s.is_closed


def test_send_is_a_rendezvous(interp, new_channel):
    r, s = new_channel()
    sent = []
    sender = threading.Thread(target=lambda: sent.append(s.send(('hello', 42), timeout=60)))
    sender.start()
    # The item is in the channel and nobody receives it: send() has not returned. (That it
    # cannot return without a receiver at all, test_send_timeout_withdraws_the_item shows.)
    assert eventually(lambda: channel_items(r) == 1)
    assert sender.is_alive() and sent == []
    t = receiver(interp, r)  # the receiver arrives late
    t.start()
    t.join()
    sender.join()
    assert sent == [None]  # returned, without a timeout, once received
    assert interp.call(evaluate, 'got') == [('hello', 42)]


def test_send_timeout_withdraws_the_item(new_channel):
    r, s = new_channel()
    with pytest.raises(TimeoutError):
        s.send('late', timeout=0.05)
    assert r.recv_nowait(default='nothing') == 'nothing'  # not delivered after all


def test_send_nowait_queues_without_waiting_and_keeps_order(new_channel):
    r, s = new_channel()
    for i in range(5):
        s.send_nowait(i)
    assert [r.recv() for _ in range(5)] == list(range(5))


def test_recv_timeout_and_nowait(new_channel):
    r, s = new_channel()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        r.recv(timeout=0.03)  # fractional: honoured, not truncated to 0
    # Checked from below only: load can lengthen the wait, never shorten it.
    assert time.monotonic() - t0 >= 0.03
    with pytest.raises(channels.ChannelEmptyError):
        r.recv_nowait()
    assert r.recv_nowait(None) is None


def test_ends_travel_to_other_interpreters(interp, new_channel):
    r, s = new_channel()
    interp.prepare_main(s=s)
    t = interp.call_in_thread(evaluate, 's.send("from sub")')
    assert r.recv(timeout=60) == 'from sub'
    t.join()


def test_buffers_through_channels_are_shared_and_released_in_owner(interp, new_channel):
    r, s = new_channel()
    interp.prepare_main(s=s)
    interp.exec('buf = bytearray(b"chan")\ns.send_buffer_nowait(buf)\ns.send_nowait(memoryview(buf))')
    v1, v2 = r.recv(), r.recv()
    assert isinstance(v1, memoryview) and bytes(v2) == b'chan'
    v1[0] = ord('C')
    assert interp.call(evaluate, 'bytes(buf)') == b'Chan'
    assert interp_stats(interp)['borrows'] == 2
    del v1, v2
    assert eventually(lambda: interp_stats(interp)['borrows'] == 0)
    with pytest.raises(TypeError):
        s.send_buffer_nowait(42)


def test_close_semantics(new_channel):
    r, s = new_channel()
    s.send_nowait(1)
    with pytest.raises(channels.ChannelNotEmptyError):
        r.close()
    s.close()                        # closing: no more sends, the receiver drains
    assert s.is_closed and not r.is_closed
    with pytest.raises(channels.ChannelClosedError):
        s.send_nowait(2)
    assert r.recv() == 1
    assert r.is_closed               # drained: closed
    with pytest.raises(channels.ChannelClosedError):
        r.recv_nowait()
    r2, s2 = new_channel()
    r2.close()                       # empty: closes both ends
    with pytest.raises(channels.ChannelClosedError):
        s2.send_nowait(1)
    assert (r2, s2) not in channels.list_all()


def test_close_wakes_a_blocked_receiver(new_channel):
    r, s = new_channel()
    errors = []

    def wait():
        try:
            r.recv(timeout=60)
        except channels.ChannelClosedError as e:
            errors.append(e)

    t = threading.Thread(target=wait)
    t.start()
    assert eventually(lambda: parked_receivers(r) >= 1), 'recv() never parked'
    s.close()
    t.join()
    assert len(errors) == 1


@pytest.mark.parametrize('policy', [channels.UNBOUND, channels.UNBOUND_ERROR,
                                    channels.UNBOUND_REMOVE])
def test_unbound_policies(policy, new_channel):
    r, s = new_channel(unbounditems=policy)
    sender = xinterp.create()
    sender.prepare_main(s=s)
    sender.exec('s.send_nowait(memoryview(bytearray(b"x"))); s.send_nowait("kept")')
    sender.close()
    if policy is channels.UNBOUND_REMOVE:
        assert r.recv() == 'kept'
        return
    if policy is channels.UNBOUND_ERROR:
        with pytest.raises(channels.ItemInterpreterDestroyed):
            r.recv()
    else:
        assert r.recv() is channels.UNBOUND
    assert r.recv() == 'kept'


def test_draft_queue_keywords():
    q = queues.create(unbound=queues.UNBOUND_REMOVE)           # 3.13 draft spelling
    assert q.unbounditems is queues.UNBOUND_REMOVE
    strict = queues.create(syncobj=True)                        # shareable objects only
    strict.put((1, 'a'))
    with pytest.raises(xinterp.NotShareableError):
        strict.put([1])
    strict.put([1], syncobj=False)                              # per put
    assert strict.get() == (1, 'a') and strict.get() == [1]
    q2 = xinterp.create_queue()
    with pytest.raises(xinterp.NotShareableError):
        q2.put({'x': 1}, syncobj=True)
    q2.put(b'x', unbound=queues.UNBOUND_ERROR)
    with pytest.raises(TypeError):
        q2.put(1, unbound=queues.UNBOUND, unbounditems=queues.UNBOUND)
    with pytest.raises(TypeError):
        queues.create(unbound=queues.UNBOUND, unbounditems=queues.UNBOUND_ERROR)
