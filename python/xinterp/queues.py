"""Cross-interpreter queues (PEP 734 ``Queue``; CPython 3.14's ``concurrent.interpreters``).

A queue is process-wide: any interpreter may put and get, and a Queue object is itself
shareable (put it in a queue, pass it to ``call()`` or ``prepare_main()``). Values are natively
shared where possible (see ``xinterp.is_shareable``), memoryviews lent, anything else by
pickle. ``put``/``get`` block with real waits (no polling), release the caller's GIL while
waiting, and honour fractional timeouts.

``unbounditems`` says what happens to an item whose sending interpreter closes while the item is
still queued, for items that depend on their sender (lent buffers; self-contained values survive
the sender): ``UNBOUND`` (replaced by the ``UNBOUND`` marker, the default), ``UNBOUND_ERROR``
(``get()`` raises ``ItemInterpreterDestroyed``) or ``UNBOUND_REMOVE`` (dropped).
"""

import operator as _operator

from . import _xinterp
from ._by_id import ObjectsById

__all__ = [
    'UNBOUND', 'UNBOUND_ERROR', 'UNBOUND_REMOVE',
    'create', 'list_all', 'Queue',
    'QueueError', 'QueueNotFoundError', 'QueueEmpty', 'QueueFull', 'ItemInterpreterDestroyed',
]


# The exceptions and markers are made by the extension module (one definition, shared with the
# C code that raises and checks them); here they get their public names.
QueueError = _xinterp.QueueError
QueueNotFoundError = _xinterp.QueueNotFoundError
QueueEmpty = _xinterp.QueueEmpty
QueueFull = _xinterp.QueueFull
ItemInterpreterDestroyed = _xinterp._QueueItemInterpreterDestroyed
UNBOUND = _xinterp.UNBOUND
UNBOUND_ERROR = _xinterp.UNBOUND_ERROR
UNBOUND_REMOVE = _xinterp.UNBOUND_REMOVE
_UNBOUND_FLAGS = {
    UNBOUND: _xinterp.UNBOUNDITEMS_REPLACE,
    UNBOUND_ERROR: _xinterp.UNBOUNDITEMS_ERROR,
    UNBOUND_REMOVE: _xinterp.UNBOUNDITEMS_REMOVE,
}
_FLAG_NAMES = {flag: marker for marker, flag in _UNBOUND_FLAGS.items()}


def _unbound_flag(unbounditems):
    try:
        return _UNBOUND_FLAGS[unbounditems]
    except (KeyError, TypeError):
        raise ValueError(
            f'unbounditems must be UNBOUND, UNBOUND_ERROR or UNBOUND_REMOVE, '
            f'got {unbounditems!r}') from None


def create(maxsize=0, *, unbounditems=UNBOUND, syncobj=False, unbound=None):
    """Return a new cross-interpreter queue; maxsize 0 (or negative) means unbounded.

    As in CPython 3.14, ``maxsize`` reads back as given (``create(-10).maxsize == -10``) and
    must fit a C ``ssize_t`` (OverflowError otherwise); any integer-like object (``__index__``)
    is accepted. 3.13's draft spellings work too: ``unbound=`` for ``unbounditems=``, and
    ``syncobj=True`` (put only natively shareable objects, never pickle; NotShareableError
    otherwise), which is also accepted per put().
    """
    try:
        maxsize = _operator.index(maxsize)
    except TypeError:
        raise TypeError(f'maxsize must be an int, got {maxsize!r}') from None
    if unbound is not None:
        if unbounditems is not UNBOUND:
            raise TypeError('give unbounditems or unbound, not both')
        unbounditems = unbound
    qid = _xinterp.queue_create(maxsize, _unbound_flag(unbounditems), bool(syncobj))
    try:
        return Queue(qid)
    finally:
        _xinterp.queue_release(qid)  # the Queue object holds its own reference now


def list_all():
    """Return a list of all open queues."""
    return [Queue(qid) for qid in _xinterp.queue_list_all()]


_known_queues = ObjectsById()


class Queue:
    """A cross-interpreter queue. One object per queue id in each interpreter.

    A queue lives while a Queue object (in any interpreter) or a queued value refers to it.
    A queue that holds itself, directly (``q.put(q)``) or through others (two queues in each
    other), is therefore never freed, even once every Queue object is gone: nothing collects
    such cycles. ``xinterp.runtime_stats()`` shows them (``queues_held_only_by_values``); take
    the items out with ``get()`` to break one.
    """

    def __new__(cls, id, /):
        def make(id):
            handle = _xinterp.queue_handle(id)  # QueueNotFoundError if it is gone
            self = super(Queue, cls).__new__(cls)
            self._id = id
            self._handle = handle  # holds a reference to the queue; dropped with the object
            self._info = handle.info
            # The hot methods are the handle's own (C): no Python frame per put/get. The
            # methods below document them. An instance attribute shadows the class's method,
            # so the fast path is taken only where a subclass did not override the method.
            if cls.put is Queue.put:
                self.put = handle.put
            if cls.put_nowait is Queue.put_nowait:
                self.put_nowait = handle.put_nowait
            if cls.get is Queue.get:
                self.get = handle.get
            if cls.get_nowait is Queue.get_nowait:
                self.get_nowait = handle.get_nowait
            return self
        return _known_queues.get_or_make(id, make)

    def __repr__(self):
        return f'{type(self).__name__}({self.id})'

    def __hash__(self):
        return hash(self._id)

    def __eq__(self, other):
        if not isinstance(other, Queue):
            return NotImplemented
        return self._id == other._id

    def __reduce__(self):
        return (type(self), (self._id,))

    @property
    def id(self):
        return self._id

    @property
    def maxsize(self):
        """The maxsize given to create(), as given; 0 or negative: unbounded."""
        return self._info()[1]

    @property
    def unbounditems(self):
        return _FLAG_NAMES[self._info()[2]]

    def empty(self):
        return self.qsize() == 0

    def full(self):
        size, maxsize = self._info()[:2]
        return maxsize > 0 and size >= maxsize

    def qsize(self):
        return self._info()[0]

    def put(self, obj, block=True, timeout=None, *, unbounditems=None, syncobj=None,
            unbound=None):
        """Add obj to the queue, waiting for room if it is full (up to timeout seconds).

        Raises QueueFull when no room came in time (or at once with block=False).
        """
        return self._handle.put(obj, block, timeout, unbounditems=unbounditems,
                                syncobj=syncobj, unbound=unbound)

    def put_nowait(self, obj, *, unbounditems=None, syncobj=None, unbound=None):
        return self._handle.put_nowait(obj, unbounditems=unbounditems, syncobj=syncobj,
                                       unbound=unbound)

    def get(self, block=True, timeout=None):
        """Return the next item, waiting for one if the queue is empty (up to timeout seconds).

        Raises QueueEmpty when none came in time (or at once with block=False); returns UNBOUND
        or raises ItemInterpreterDestroyed for an item whose sender closed (see unbounditems).
        """
        return self._handle.get(block, timeout)

    def get_nowait(self):
        return self._handle.get_nowait()

    # asyncio (README "asyncio"; the machinery is in _aio.py).
    def aget(self, timeout=None):
        """Awaitable get(): waits for an item without parking a thread.

        Raises QueueEmpty when none came within timeout seconds. Cancelled (CancelledError,
        asyncio.timeout, wait_for): nothing was taken; the item stays for the next getter.
        Must be awaited in a running asyncio loop (RuntimeError otherwise).
        """
        from . import _aio
        return _aio.queue_aget(self, timeout)

    def aput(self, obj, timeout=None, *, unbounditems=None):
        """Awaitable put(): waits for room (bounded queues) without parking a thread.

        Raises QueueFull when no room came within timeout seconds. Cancelled: obj was not put
        (an item is put only by the awaiting coroutine itself, all at once).
        """
        from . import _aio
        return _aio.queue_aput(self, obj, timeout, unbounditems)


_xinterp._register_class('Queue', Queue)  # Queue objects travel by id
