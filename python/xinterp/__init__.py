"""xinterp: many isolated CPython interpreters in one process.

The API follows PEP 734 as shipped in CPython 3.14 (``concurrent.interpreters``): the same names,
exception types and semantics, on CPython 3.12 and 3.13. Differences, all documented in the
README: ``whence`` of interpreters made here reads ``'_interpreters module'`` (xinterp stands in
for that module); ``list_all()`` lists the interpreters xinterp knows (the main one, those it
created, and any other that imported xinterp); ``NotShareableError`` is both a ``TypeError``
(3.14) and a ``ValueError`` (3.13's draft).
"""

import atexit as _atexit
import sys as _sys
import threading as _threading
import types as _types
import weakref as _weakref

from . import _xinterp
from ._by_id import ObjectsById
from ._xinterp import (
    InterpreterError,
    InterpreterNotFoundError,
    NotShareableError,
    is_shareable,
    runtime_stats,
    stats,
)

__all__ = [
    'get_current', 'get_main', 'create', 'list_all', 'is_shareable', 'lend', 'stats',
    'runtime_stats',
    'Interpreter',
    'InterpreterError', 'InterpreterNotFoundError', 'ExecutionFailed',
    'NotShareableError',
    'create_queue', 'Queue', 'QueueEmpty', 'QueueFull', 'QueueError',
    'InterpreterPoolExecutor',
]


class ExceptionInfo(_types.SimpleNamespace):
    """What is known of an exception raised in another interpreter.

    ``type`` (with ``__name__``, ``__qualname__``, ``__module__``), ``msg`` (``str(exc)``),
    ``formatted`` (``"TypeName: msg"``) and ``errdisplay`` (the full traceback text).
    """

    @classmethod
    def _from_tuple(cls, t):
        name, qualname, module, msg, formatted, errdisplay = t
        exctype = _types.SimpleNamespace(
            __name__=name, __qualname__=qualname, __module__=module)
        return cls(type=exctype, msg=msg, formatted=formatted, errdisplay=errdisplay)

    def __str__(self):
        return self.formatted


_EXEC_FAILURE_STR = """
{superstr}

Uncaught in the interpreter:

{formatted}
""".strip()


class ExecutionFailed(InterpreterError):
    """An unhandled exception happened during execution.

    This is raised from Interpreter.exec() and Interpreter.call().
    """

    def __init__(self, excinfo):
        if isinstance(excinfo, tuple):  # as the extension module reports it
            excinfo = ExceptionInfo._from_tuple(excinfo)
        msg = excinfo.formatted
        if not msg:
            if excinfo.type and excinfo.msg:
                msg = f'{excinfo.type.__name__}: {excinfo.msg}'
            else:
                msg = excinfo.type.__name__ or excinfo.msg
        super().__init__(msg)
        self.excinfo = excinfo

    def __str__(self):
        try:
            formatted = self.excinfo.errdisplay
        except Exception:
            return super().__str__()
        if not formatted:
            return super().__str__()
        return _EXEC_FAILURE_STR.format(superstr=super().__str__(), formatted=formatted)


def create():
    """Return a new (idle) Python interpreter with its own GIL.

    It starts with its creator's sys.path (as multiprocessing's spawn does), so that functions
    from the caller's own modules can be called in it by reference.
    """
    id = _xinterp.create()  # comes with one owning reference, adopted here
    interp = Interpreter(id, _whence=_xinterp.WHENCE_STDLIB, _ownsref='adopt')
    path = tuple(p for p in _sys.path if isinstance(p, str))
    # Binds no name in its __main__, which starts as 3.14's does (dir() there lists the same).
    interp.exec(f'__import__("sys").path[:] = {path!r}\n')
    return interp


def list_all():
    """Return all interpreters xinterp knows."""
    interps = []
    for id, whence in _xinterp.list_all():
        try:
            interps.append(Interpreter(id, _whence=whence))
        except InterpreterNotFoundError:
            pass  # closed since it was listed (another thread dropped its last reference)
    return interps


def get_current():
    """Return the currently running interpreter."""
    id, whence = _xinterp.get_current()
    try:
        return Interpreter(id, _whence=whence)
    except InterpreterNotFoundError:
        # It is being closed: its pending calls, buffer releases and finalizers run now. They
        # get an object that owns no reference, as nothing can keep it alive any more.
        return Interpreter(id, _whence=whence, _ownsref=False)


def get_main():
    """Return the main interpreter."""
    id, whence = _xinterp.get_main()
    return Interpreter(id, _whence=whence)


def lend(obj):
    """Return a memoryview of ``obj`` that is shared without a copy (lent) when sent.

    As in CPython 3.14, only a ``memoryview`` is shared zero-copy; any other buffer exporter
    (``bytearray``, ``array.array``, ``mmap``, NumPy arrays, ...) goes by copy or pickle, or is
    refused where no fallback is allowed. ``lend(obj)`` opts in on purpose: it checks that
    ``obj`` exports a C-contiguous buffer (``TypeError`` if it exports none, ``ValueError`` if
    the buffer is not C-contiguous or the view is released, instead of a silent copy) and
    returns ``memoryview(obj)``. Receivers of that view see the sender's memory, writable if the
    exporter is; the exporter stays locked (a ``bytearray`` cannot be resized) until the last
    receiving view and every queued copy are gone. While lent, the returned view itself cannot
    be released (``BufferError``): drop it instead.
    """
    if not hasattr(type(obj), '__buffer__'):  # every exporter has it (PEP 688)
        raise TypeError(f'lend() needs an object exporting the buffer protocol, '
                        f'not {type(obj).__name__!r}')
    view = memoryview(obj)  # an exporter's own error (its __buffer__ raising) propagates
    if not view.c_contiguous:
        view.release()
        raise ValueError('lend() needs a C-contiguous buffer (copy it first, e.g. with '
                         'bytes(), or make it contiguous)')
    return view


_known = ObjectsById()


def _drop_reference(id):
    """An owning Interpreter object died: drop its reference (the last one closes it)."""
    try:
        _xinterp.decref(id)
    except InterpreterNotFoundError:
        pass  # already gone: there is no reference left to drop
    # Anything else is a bug and surfaces, reported as unraisable.


class Interpreter:
    """A single Python interpreter.

    Attributes:

    "id" - the unique process-global ID number for the interpreter
    "whence" - indicates where the interpreter was created

    If the interpreter wasn't created by xinterp then any method that modifies the interpreter
    will fail, i.e. .close(), .prepare_main(), .exec(), and .call().

    An interpreter made by create() is closed when the last Interpreter object for it (in any
    interpreter) is garbage collected, as in CPython 3.14, unless it is running then; at process
    exit at the latest.
    """

    _WHENCE_TO_STR = {
        _xinterp.WHENCE_UNKNOWN: 'unknown',
        _xinterp.WHENCE_RUNTIME: 'runtime init',
        _xinterp.WHENCE_LEGACY_CAPI: 'legacy C-API',
        _xinterp.WHENCE_CAPI: 'C-API',
        _xinterp.WHENCE_XI: 'cross-interpreter C-API',
        _xinterp.WHENCE_STDLIB: '_interpreters module',
    }

    def __new__(cls, id, /, _whence=None, _ownsref=None):
        # There is only one instance for any given ID (per interpreter).
        made = False

        def make(id):
            nonlocal made
            made = True
            whence = _xinterp.whence(id) if _whence is None else _whence  # NotFound if unknown
            ownsref = (whence == _xinterp.WHENCE_STDLIB) if _ownsref is None else _ownsref
            self = super(Interpreter, cls).__new__(cls)
            self._id = id
            self._whence = whence
            self._ownsref = False
            if ownsref == 'adopt':
                self._own()  # create() took the reference for us
            elif ownsref:
                _xinterp.incref(id)  # may raise InterpreterNotFoundError
                self._own()
            return self
        interp = _known.get_or_make(id, make)
        if _ownsref == 'adopt' and not made:
            # Another thread (list_all(), Interpreter(id)) made this id's object between
            # create() and here, taking a reference of its own: the object keeps one, never two,
            # or the interpreter would outlive its last object.
            if interp._ownsref:
                _xinterp.decref(id)
            else:
                interp._own()
        return interp

    def __repr__(self):
        return f'{type(self).__name__}({self.id})'

    def __hash__(self):
        return hash(self._id)

    def __eq__(self, other):
        if not isinstance(other, Interpreter):
            return NotImplemented
        return self._id == other._id

    def _own(self):
        # Decision: the reference is dropped by a weakref callback, not __del__: a callback runs
        # once the object's weak references are cleared, so the id cache can never hand out an
        # object being finalized (a __del__ runs while they still resolve; an object taken then
        # was resurrected, and its next death would not run __del__ again: a leak).
        self._ownsref = True
        _weakref.finalize(self, _drop_reference, self._id).atexit = False

    # for pickling:
    def __getnewargs__(self):
        return (self._id,)

    # for pickling:
    def __getstate__(self):
        return None

    def __reduce__(self):
        return (type(self), (self._id,))

    @property
    def id(self):
        return self._id

    @property
    def whence(self):
        return self._WHENCE_TO_STR.get(self._whence, 'unknown')

    def is_running(self):
        """Return whether or not the identified interpreter is running."""
        return _xinterp.is_running(self._id)

    def close(self, *, timeout=None):
        """Finalize and destroy the interpreter.

        Pending calls queued for it run first. Buffers it lent that other interpreters still
        hold are waited for up to `timeout` seconds (default 0.5); if they are not given back,
        InterpreterError names the borrowers and the interpreter stays intact. Its lent
        buffers still sitting in queues follow each queue's `unbounditems`. Closing the
        current interpreter, the main one, or one that is running raises InterpreterError.
        """
        return _xinterp.destroy(self._id, timeout)

    def prepare_main(self, ns=None, /, **kwargs):
        """Bind the given values into the interpreter's __main__.

        As in CPython 3.14: at least one name must be given (ValueError otherwise), and every
        value must be natively shareable (see is_shareable()); anything else raises
        NotShareableError (nothing is pickled here). Every value is checked before any is
        bound, so a refused call binds nothing. Names must be str without NUL characters
        (ValueError), as a NUL would cut the name short; any other str is bound as given.
        """
        ns = dict(ns, **kwargs) if ns is not None else kwargs
        excinfo = _xinterp.set___main___attrs(self._id, ns)
        if excinfo is not None:
            raise ExecutionFailed(excinfo)

    def exec(self, code, /):
        """Run the given source code (or a function taking no arguments) in the interpreter.

        This is essentially the same as calling the builtin "exec" with this interpreter, using
        the __dict__ of its __main__ module as both globals and locals. There is no return
        value. An unhandled exception raises ExecutionFailed here, which summarizes it.

        What cannot run is refused here, before anything runs: source with a NUL character
        (ValueError) or a lone surrogate (UnicodeEncodeError), a function or code object that
        takes arguments, has free variables (a closure), or is a generator or coroutine
        function (ValueError; its body would not run), anything else (TypeError).

        This blocks the current Python thread until done, releasing its GIL: other threads of
        the calling interpreter keep running.
        """
        # Raised here, not in a helper: the traceback then ends in this frame, at this line, as
        # in CPython 3.14 (whose own suite checks the displayed traceback).
        excinfo = _xinterp.exec(self._id, code)
        if excinfo is not None:
            raise ExecutionFailed(excinfo)

    def call(self, callable, /, *args, **kwargs):
        """Call the object in the interpreter with the given arguments and return its result.

        As in CPython 3.14: natively shareable values travel as they are; a stateless function
        (no defaults or closure, reading no globals but builtins) travels as its code
        and runs over the interpreter's __main__; the callable, other arguments and the result
        go through pickle otherwise. Objects of the caller's main script (its functions,
        classes and their instances, in any argument) are found there by running that script
        once per interpreter as a hidden module named '<fake __main__>' (its
        ``if __name__ == "__main__":`` block does not run; the interpreter's own __main__ is
        left untouched). A value that cannot be sent or rebuilt there raises
        NotShareableError; a builtin such as eval, exec, dir, globals, locals or vars acts on
        the interpreter's __main__. An exception in the callable raises ExecutionFailed here.
        """
        res, excinfo = _xinterp.call(self._id, callable, args, kwargs or None)
        if excinfo is not None:
            raise ExecutionFailed(excinfo)
        return res

    def interrupt(self, exc=KeyboardInterrupt):
        """Raise exc in the exec()/call() running in this interpreter; whether one was running.

        exc is a BaseException subclass or instance (TypeError otherwise); it reaches the target
        as call() arguments do (an instance keeps its args; one that cannot be shared raises
        NotShareableError here, one the target cannot rebuild is raised there as a RuntimeError
        saying so). It is raised in the thread running that exec()/call() at its next bytecode
        boundary, and that exec()/call() then raises ExecutionFailed in its caller (excinfo.type
        names the exception). xinterp's own waits there wake for it (Queue.get/put, channel
        send/recv), and so does a call that thread made into a third interpreter (interrupted
        too; back in this one, exc is raised). Code blocked inside a C call (time.sleep,
        lock.acquire, select) is interrupted when that call returns. If a thread the user started
        in the target happens to run the interrupt, it hands exc to the running thread as
        PyThreadState_SetAsyncExc does: then only its class is raised, without args.

        Returns False when no exec()/call() runs there: nothing is posted, and a later call
        never sees a stale interrupt. While one is pending and not raised yet, another
        interrupt() returns True and changes nothing (the first exception wins).
        Errors: InterpreterNotFoundError (closed); InterpreterError for the main interpreter,
        the caller's own, or one xinterp did not create.
        """
        return _xinterp.interrupt(self._id, exc)

    def call_in_thread(self, callable, /, *args, **kwargs):
        """Return a new, started thread that calls the object in the interpreter.

        The return value is discarded; an exception is reported by the thread's excepthook.
        """
        t = _threading.Thread(target=self.call, args=(callable, *args), kwargs=kwargs)
        t.start()
        return t

    # asyncio (README "asyncio"; the machinery is in _aio.py).
    async def acall(self, callable, /, *args, **kwargs):
        """Awaitable call(): the same result, or the same exceptions (ExecutionFailed etc.).

        Calls run on one worker thread per interpreter, in the order awaited, however many
        coroutines await. Cancelled before it started: it never runs. Cancelled while running:
        the call is interrupted (asyncio.CancelledError raised in the target, see interrupt())
        and CancelledError is raised here once the target stopped.
        """
        from . import _aio
        return await _aio.run_call(self, lambda: self.call(callable, *args, **kwargs),
                                   'Interpreter.acall()')

    async def aexec(self, code, /):
        """Awaitable exec(); see acall() for threads and cancellation."""
        from . import _aio
        return await _aio.run_call(self, lambda: self.exec(code), 'Interpreter.aexec()')


_xinterp._register_class('Interpreter', Interpreter)  # Interpreter objects travel by id

from .queues import (  # noqa: E402
    Queue, QueueEmpty, QueueError, QueueFull, create as create_queue,
)


def __getattr__(name):
    if name == 'InterpreterPoolExecutor':
        from .pool import InterpreterPoolExecutor
        return InterpreterPoolExecutor
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def _is_main_interpreter():
    return _xinterp.get_current()[0] == _xinterp.get_main()[0]


if _is_main_interpreter():
    # Runs after non-daemon threads were joined and before the runtime finalizes: closes every
    # interpreter xinterp created (interrupting code still running in them) while CPython can
    # still run their pending calls.
    _atexit.register(_xinterp._shutdown)
