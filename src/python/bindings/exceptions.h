// xinterp's exceptions and UNBOUND markers, created in one place, in C, per interpreter (module
// state), and exported to the Python package, which re-exports them under their public names.
//
// Every exception the bindings raise is one of these (or a builtin): there is no fallback type.
// Qualified names put each where users import it from (xinterp, xinterp.queues,
// xinterp.channels), so reprs, pickling and `except` clauses read as in CPython 3.14.
//
// Requirements: attached to the interpreter whose module is passed.
#pragma once

#include <Python.h>

namespace xinterp::python {

enum class Exc : int {
  kInterpreterError,      // xinterp.InterpreterError
  kInterpreterNotFound,   // xinterp.InterpreterNotFoundError
  kNotShareable,          // xinterp.NotShareableError (a TypeError and a ValueError)
  kQueueError,            // xinterp.queues.QueueError
  kQueueNotFound,         // xinterp.queues.QueueNotFoundError
  kQueueEmpty,            // xinterp.queues.QueueEmpty (also a queue.Empty)
  kQueueFull,             // xinterp.queues.QueueFull (also a queue.Full)
  kQueueItemDestroyed,    // xinterp.queues.ItemInterpreterDestroyed
  kChannelError,          // xinterp.channels.ChannelError
  kChannelNotFound,       // xinterp.channels.ChannelNotFoundError
  kChannelEmpty,          // xinterp.channels.ChannelEmptyError
  kChannelClosed,         // xinterp.channels.ChannelClosedError
  kChannelNotEmpty,       // xinterp.channels.ChannelNotEmptyError
  kChannelItemDestroyed,  // xinterp.channels.ItemInterpreterDestroyed
};
inline constexpr int kExcCount = static_cast<int>(Exc::kChannelItemDestroyed) + 1;

// The markers of PEP 734's unbounditems policies, in UnboundOp's order.
inline constexpr int kMarkerCount = 3;  // UNBOUND, UNBOUND_ERROR, UNBOUND_REMOVE

// Creates the exceptions and markers into the module's state and adds them to the module.
int add_exceptions(PyObject* module);

// The exception type `which` of the module's interpreter (a borrowed reference).
PyObject* exc_type(PyObject* module, Exc which);

// Sets exception `which` with a printf-style message; returns nullptr.
PyObject* raise_exc(PyObject* module, Exc which, const char* format, ...);

}  // namespace xinterp::python
