// The one place where xinterp binds to CPython's private or version-specific C API. Everything
// else in src/python uses only these wrappers and the public C API, so a new CPython version
// means reviewing this file and cpython_interp_list.c (which reads CPython's internal structures)
// only. Their tests: test_pending_calls.py, test_fork.py, test_exit.py and test_interrupt.py.
//
// Requirements: none of these functions needs the GIL unless stated.
#pragma once

#include <Python.h>

namespace xinterp::python::cpy {

// The calling thread's current thread state, or nullptr. Never fails, no GIL needed.
// Async-signal-safe (a thread-local read inside CPython).
PyThreadState* current_tstate() noexcept;

// Queues func(arg) on CPython's per-interpreter pending-call queue; any thread of that interpreter
// may run it at its next eval-breaker check. false: CPython's queue (31 slots on 3.12, 300 on
// 3.13) is full and the call was not queued.
using PendingFunc = int (*)(void*);
bool add_pending_call(PyInterpreterState* interp, PendingFunc func, void* arg) noexcept;

// The asynchronous exception (PyThreadState_SetAsyncExc) handed to `ts` and not raised yet:
// has_async_exc() looks, take_async_exc() withdraws it and says whether there was one.
// Requires: the GIL of ts's interpreter (ts is then the caller's own thread state).
bool has_async_exc(PyThreadState* ts) noexcept;
bool take_async_exc(PyThreadState* ts) noexcept;

// Whether the runtime (the main interpreter) is finalizing.
bool runtime_finalizing() noexcept;

// Reports the current Python exception through sys.unraisablehook as "Exception ignored
// <context>" (context like "in an xinterp pending call"), then clears it. Requires: attached to an
// interpreter, an exception set.
void write_unraisable(const char* context) noexcept;

// CPython's record of where an interpreter came from (3.13+); -1 where CPython does not keep it.
long whence(PyInterpreterState* interp) noexcept;

// Registers func(data) to run as the calling thread's interpreter ends (3.12's _Py_AtExit,
// 3.13's PyUnstable_AtExit): inside Py_EndInterpreter, attached, after its threads were joined
// and before its modules go, whoever ends it (_interpreters.destroy() included). Requires: the
// GIL. false: out of memory (a Python exception is set).
bool at_interpreter_exit(void (*func)(void*), void* data) noexcept;

// Marks the calling thread's interpreter as running its __main__ on the calling thread state
// (what CPython's _interpreters does for the length of an exec), or clears that mark (from
// the same thread state). While marked, _interpreters (_xxsubinterpreters on 3.12) refuses to
// destroy the interpreter or run code in it ("interpreter running", "already running"), and
// reports it running. Requires: the GIL. false: already marked.
bool mark_running_main() noexcept;
void clear_running_main() noexcept;

// Takes one of CPython's id references on the calling thread's interpreter, never dropped: with
// it held, the count that _interpreters.incref()/decref() move never reaches zero, so that
// module never ends the interpreter itself (3.13's decref() after incref(id, implieslink=True)
// does, and aborts). Requires: the GIL. false: out of memory.
bool hold_id_ref() noexcept;

// Takes every sub-interpreter out of CPython's list of interpreters, leaving the main one. Only
// in a fork child, before CPython's after-fork cleanup. Async-signal-safe.
void unlink_subinterpreters_in_fork_child() noexcept;

// Takes interp (not the main one) out of CPython's list of interpreters, so that finalization
// leaves it alone; it is abandoned with the process. True if it was listed. Call it holding no
// GIL: on 3.13 the list's lock is taken with PyMutex_Lock, which would detach a waiting caller
// (CPython's own HEAD_LOCK does not; a thread holding our GIL while waiting for that lock could
// then deadlock with us).
bool unlink_interpreter(PyInterpreterState* interp) noexcept;

// Changes interp's CPython id to one no caller asks for, so that CPython's _interpreters no
// longer finds it (xinterp keeps its own copy of the id). Only just before ending it. Call it
// holding no GIL (like unlink_interpreter).
void retire_interpreter_id(PyInterpreterState* interp) noexcept;

// interp's id (PyInterpreterState_GetID), the same after retire_interpreter_id as before: use
// it, not PyInterpreterState_GetID, for an interpreter xinterp may be ending.
int64_t interpreter_id(PyInterpreterState* interp) noexcept;

// How many thread states interp has besides `own` and its threading module's threads: 3.13's
// _interpreters visitors on their way in and out. Always 0 on 3.12 (its module checks before it
// enters). Call it holding no GIL (like unlink_interpreter).
int count_visitors(PyInterpreterState* interp, PyThreadState* own) noexcept;

// Whether the memoryview `view` was released (memoryview.release()): its buffer, and the
// exporter it names, may be freed; only the memoryview object itself may still be read.
bool memoryview_released(PyObject* view) noexcept;

// The names a code object reads with LOAD_GLOBAL (its own bytecode, not that of code nested in
// it), as a new list (a name may repeat), or nullptr with an exception set. Reads the bytecode,
// whose opcode numbers differ between CPython versions. Requires: attached.
PyObject* global_names_read(PyObject* code) noexcept;

}  // namespace xinterp::python::cpy
