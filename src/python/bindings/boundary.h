// The Python boundary of the bindings: argument parsing, error mapping, and blocking waits.
//
// Every function the extension exposes parses its arguments with these helpers (so that bad
// input gets the same TypeError/ValueError/OverflowError wording everywhere), reports engine
// errors with raise() (a Status becomes the matching xinterp exception in the calling
// interpreter), and waits with blocking() (the caller's GIL released, signals still handled).
//
// Requirements: every function here runs attached to the calling interpreter (GIL held), except
// the `op` that blocking() calls, which runs without it.
#pragma once

#include <Python.h>

#include <chrono>
#include <cstdint>
#include <optional>

#include "base/wait_slice.h"
#include "engine/run_interrupt.h"
#include "engine/status.h"
#include "objects/queue.h"

namespace xinterp::python {

// Raises the Python exception for `s` (not ok) in the calling interpreter; returns nullptr.
PyObject* raise(PyObject* module, const Status& s);

// PEP 734's excinfo as the tuple xinterp's Python layer unpacks:
// (type name, qualname, module, msg, formatted, errdisplay). New reference or nullptr.
PyObject* excinfo_tuple(const ExcInfo& e);

// An id argument: a non-negative int below 2**63 (TypeError, ValueError, OverflowError
// otherwise). `what` names it in the message: "interpreter", "queue" or "channel".
bool parse_id(PyObject* arg, int64_t* id, const char* what = "interpreter");

// A timeout argument: nullptr or None (no timeout), or a non-negative int or float of seconds
// (TypeError for anything else, ValueError for negative or NaN). Very long ones are capped.
bool parse_timeout(PyObject* arg, std::optional<std::chrono::nanoseconds>* out);

// Positional-or-keyword parsing for METH_FASTCALL | METH_KEYWORDS methods. names: every
// parameter; the first n_positional may be given by position, the first n_required must be
// given. Unset parameters are nullptr in `out`.
bool parse_params(const char* fn, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                  const char* const* names, int n_params, int n_positional, int n_required,
                  PyObject** out);

// A truth value argument: nullptr means `deflt`. -1 with an exception set on failure.
int parse_bool(PyObject* arg, bool deflt);

// An unbound policy given as its flag (UnboundOp's value); ValueError otherwise.
bool parse_unbound(PyObject* arg, UnboundOp* out);

// A METH_FASTCALL function as the PyCFunction that PyMethodDef stores.
template <class F>
PyCFunction fastcall(F f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}

// Waits in slices of internal::kWaitSlice (base/wait_slice.h) so that signal handlers get to
// run. op(slice) does one wait without the GIL and returns `timed_out` when that slice ran out
// (or when the InterruptibleWait's cancel flag, which the caller hands to its wait, was set).
// Returns op's last result; *interrupted is set (with the exception set) when a signal handler
// raised, or when interrupt() reached the exec()/call() this thread runs (run_interrupt.h).
template <class Op, class Result>
Result blocking(Op op, std::optional<std::chrono::nanoseconds> timeout, Result timed_out,
                bool* interrupted) {
  using internal::kWaitSlice;
  using std::chrono::nanoseconds;
  using std::chrono::steady_clock;
  const auto start = steady_clock::now();
  while (true) {
    std::optional<nanoseconds> slice = kWaitSlice;
    if (timeout) {
      nanoseconds left = *timeout - (steady_clock::now() - start);
      if (left < nanoseconds::zero()) left = nanoseconds::zero();
      if (left <= kWaitSlice) slice = left;
    }
    Result r;
    Py_BEGIN_ALLOW_THREADS
    r = op(slice);
    Py_END_ALLOW_THREADS
    if (r != timed_out) return r;
    if (interrupt_pending_here() && take_interrupt_here()) {
      *interrupted = true;
      return r;
    }
    if (timeout && steady_clock::now() - start >= *timeout) return r;
    if (PyErr_CheckSignals() < 0) {
      *interrupted = true;
      return r;
    }
  }
}

}  // namespace xinterp::python
