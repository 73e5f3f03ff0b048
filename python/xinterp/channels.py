"""Cross-interpreter channels (PEP 554), as in CPython 3.13's draft package
(``test.support.interpreters.channels``), so that code written for it runs by changing only the
import.

``create()`` returns ``(RecvChannel, SendChannel)``. ``send()`` is a rendezvous: it returns once
the object was received (or raises ``TimeoutError`` after ``timeout`` seconds, withdrawing it;
a signal handler's exception, such as ``KeyboardInterrupt``, withdraws it the same way);
``send_nowait()`` queues without waiting. ``recv()`` blocks with a real wait (CPython's polls
every 10 ms) and honours fractional timeouts (the draft truncates them to whole seconds).
``send_buffer()`` shares an object's buffer without a copy (every buffer is shared that way by
``send()`` too). Channel ends are shareable. Items lent by an interpreter that closes follow the
channel's unbound policy, as for queues.

Closing: ``SendChannel.close()`` on a channel that still has items stops sends and lets the
receiver drain it, then it closes; ``RecvChannel.close()`` on a non-empty channel raises
``ChannelNotEmptyError``; after that, sends and receives raise ``ChannelClosedError``. A channel
exists until it is closed (at the latest at process exit).
"""

from . import _xinterp
from .queues import UNBOUND, UNBOUND_ERROR, UNBOUND_REMOVE, _unbound_flag

__all__ = [
    'UNBOUND', 'UNBOUND_ERROR', 'UNBOUND_REMOVE',
    'create', 'list_all',
    'SendChannel', 'RecvChannel',
    'ChannelError', 'ChannelNotFoundError', 'ChannelEmptyError', 'ChannelClosedError',
    'ChannelNotEmptyError', 'ItemInterpreterDestroyed',
]


# Made by the extension module, like the queues' exceptions (see xinterp.queues).
ChannelError = _xinterp.ChannelError
ChannelNotFoundError = _xinterp.ChannelNotFoundError
ChannelEmptyError = _xinterp.ChannelEmptyError
ChannelClosedError = _xinterp.ChannelClosedError
ChannelNotEmptyError = _xinterp.ChannelNotEmptyError
ItemInterpreterDestroyed = _xinterp._ChannelItemInterpreterDestroyed

_NOT_SET = object()


def _flag(unbound):
    return 0 if unbound is None else _unbound_flag(unbound)


def create(*, unbounditems=UNBOUND):
    """Return (recv, send) for a new cross-interpreter channel."""
    cid = _xinterp.channel_create(_unbound_flag(unbounditems))
    return RecvChannel(cid), SendChannel(cid)


def list_all():
    """Return a list of (recv, send) for all open channels."""
    return [(RecvChannel(cid), SendChannel(cid)) for cid, _ in _xinterp.channel_list_all()]


class _ChannelEnd:
    _end = None

    def __new__(cls, cid):
        if not isinstance(cid, int):
            raise TypeError(f'channel id must be an int, got {cid!r}')
        self = super().__new__(cls)
        self._id = int(cid)
        self._handle = None
        return self

    def _channel(self):
        """The C handle on the channel (no registry lookup per call), made on first use: an end
        may name a channel that does not exist (any more), and only using it raises."""
        handle = self._handle
        if handle is None:
            handle = self._handle = _xinterp.channel_handle(self._id)
        return handle

    def __repr__(self):
        return f'{type(self).__name__}(id={self._id})'

    def __hash__(self):
        return hash((self._end, self._id))

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return other._id == self._id

    def __reduce__(self):
        return (type(self), (self._id,))

    @property
    def id(self):
        return self._id

    @property
    def is_closed(self):
        return _xinterp.channel_info(self._id)[0] == _xinterp.CHANNEL_CLOSED


class RecvChannel(_ChannelEnd):
    """The receiving end of a cross-interpreter channel."""
    _end = 'recv'

    def recv(self, timeout=None):
        """Return the next object, waiting for one (up to timeout seconds: TimeoutError)."""
        return self._channel().recv(True, timeout)[1]

    def recv_nowait(self, default=_NOT_SET):
        """Return the next object, or `default` (ChannelEmptyError if not given) if none."""
        found, obj = self._channel().recv(False, None)
        if not found:
            if default is _NOT_SET:
                raise ChannelEmptyError(f'channel {self._id} is empty')
            return default
        return obj

    async def arecv(self, timeout=None):
        """Awaitable recv(): waits for an object without parking a thread (TimeoutError after
        timeout seconds). Cancelled: nothing was received (the object stays for the next
        receiver). Must be awaited in a running asyncio loop."""
        from . import _aio
        return await _aio.channel_arecv(self, timeout)

    def close(self):
        _xinterp.channel_close(self._id, False, True, False)


class SendChannel(_ChannelEnd):
    """The sending end of a cross-interpreter channel."""
    _end = 'send'

    @property
    def is_closed(self):
        return _xinterp.channel_info(self._id)[0] != _xinterp.CHANNEL_OPEN

    def send(self, obj, timeout=None, *, unbound=None, unbounditems=None):
        """Send obj and wait until it is received (up to timeout seconds: TimeoutError)."""
        self._channel().send(obj, _flag(unbounditems or unbound), True, timeout, False)

    async def asend(self, obj, timeout=None, *, unbound=None, unbounditems=None):
        """Awaitable send(): queues obj, then waits (parking no thread) until it is received.

        TimeoutError after timeout seconds (obj withdrawn). Cancelled: obj is withdrawn, so a
        CancelledError means it was not and will not be received; if a receiver had taken it
        before the cancellation took effect, the send is complete and asend() returns normally
        (the cancellation is absorbed, as asyncio allows).
        """
        from . import _aio
        await _aio.channel_asend(self, obj, timeout, _flag(unbounditems or unbound), False)

    def send_nowait(self, obj, *, unbound=None, unbounditems=None):
        """Send obj without waiting for it to be received."""
        self._channel().send(obj, _flag(unbounditems or unbound), False, None, False)

    def send_buffer(self, obj, timeout=None, *, unbound=None, unbounditems=None):
        """Send obj's buffer (shared, not copied) and wait until it is received."""
        self._channel().send(obj, _flag(unbounditems or unbound), True, timeout, True)

    def send_buffer_nowait(self, obj, *, unbound=None, unbounditems=None):
        """Send obj's buffer (shared, not copied) without waiting."""
        self._channel().send(obj, _flag(unbounditems or unbound), False, None, True)

    def close(self):
        _xinterp.channel_close(self._id, True, False, False)


_xinterp._register_class('RecvChannel', RecvChannel)  # channel ends travel by id
_xinterp._register_class('SendChannel', SendChannel)
