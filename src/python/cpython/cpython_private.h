// The one place where xinterp binds to CPython's private or version-specific C API. Everything
// else in src/python uses only these wrappers and the public C API, so a new CPython version
// means reviewing this file and cpython_interp_list.c (which reads CPython's internal structures)
// only. Their tests: test_pending_calls.py, test_fork.py and test_exit.py.
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

// Whether the runtime (the main interpreter) is finalizing.
bool runtime_finalizing() noexcept;

// Reports the current Python exception through sys.unraisablehook as "Exception ignored
// <context>" (context like "in an xinterp pending call"), then clears it. Requires: attached to an
// interpreter, an exception set.
void write_unraisable(const char* context) noexcept;

// CPython's record of where an interpreter came from (3.13+); -1 where CPython does not keep it.
long whence(PyInterpreterState* interp) noexcept;

// Takes every sub-interpreter out of CPython's list of interpreters, leaving the main one. Only
// in a fork child, before CPython's after-fork cleanup. Async-signal-safe.
void unlink_subinterpreters_in_fork_child() noexcept;

// Takes interp (not the main one) out of CPython's list of interpreters, so that finalization
// leaves it alone; it is abandoned with the process. True if it was listed. Call it holding no
// GIL: on 3.13 the list's lock is taken with PyMutex_Lock, which would detach a waiting caller
// (CPython's own HEAD_LOCK does not; a thread holding our GIL while waiting for that lock could
// then deadlock with us).
bool unlink_interpreter(PyInterpreterState* interp) noexcept;

}  // namespace xinterp::python::cpy
