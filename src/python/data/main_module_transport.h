// Code that travels relative to an interpreter's __main__, as CPython 3.14 sends it: stateless
// functions by their code, everything else by pickle with the sender's main script as the
// "fake __main__" that pickled references to __main__ resolve against, and calls made from a
// frame of the target's __main__.
//
// Functions (encode fallback, after native sharing):
//   - a *stateless* function (3.14's _PyFunction_VerifyStateless: no defaults, no keyword
//     defaults, no closure or free variables (its own nested functions may use its locals),
//     and every global name it reads is a builtin not shadowed in its module) travels as its
//     marshalled code, from any module, lambdas and nested functions included. The receiver
//     builds it over its own __main__'s globals, and binds it nowhere. Counted in
//     runtime_stats()['function_code'].
//   - any other function goes by pickle (by reference: module and qualified name), so a lambda,
//     a nested function or a closure that is not stateless is not shareable.
//     (Not checked, unlike 3.14: "hidden" locals of comprehensions inlined at module level,
//     which no function has.)
//
// Pickled values that name __main__ (a function or class of the sender's main script, an
// instance of such a class, a functools.partial of such a function, ...): the sender records
// its __main__.__file__ with the value. The receiver first unpickles against its own __main__;
// if that lacks the name, it runs the sender's main script once, as a hidden module named
// '<fake __main__>' (so an `if __name__ == "__main__":` block does not run), and unpickles again
// with that module standing in for __main__ during the load. Functions found there keep that
// module's globals; the receiver's real __main__ is left untouched. Both fallbacks are counted
// (main_transport_stats(): values loaded against a fake __main__, scripts run).
//   - Cached per receiving interpreter and script path: the script runs once per interpreter, on
//     the first value that needs it, not per call (threads asking at once wait for that run). Its
//     top-level side effects (prints, files written, threads started) happen then, in the receiver,
//     once; a script that fails (raises while it runs) is not cached: the value is not shareable
//     and the next one retries.
//   - No main script (python -c, the REPL, stdin, an embedding without __main__.__file__): as in
//     3.14 there is nothing to run, so a __main__ object is found only if the receiver's own
//     __main__ has it (bound with exec() or prepare_main()); otherwise NotShareableError.
//   - While the second load runs, sys.modules['__main__'] is the fake module for every thread
//     of the receiver (as in 3.14).
//   - A function added to __main__ while the script runs (exec, interactive definition) is not
//     in the script: NotShareableError, as in 3.14.
//   - Objects made in the receiver from the fake __main__'s classes belong to the module
//     '<fake __main__>' (its __name__), which no interpreter can import: returning one from a
//     call is NotShareableError, as in 3.14. For the same reason a script without a main guard
//     that calls into a new interpreter at its top level does not recurse: the run in the
//     receiver cannot send its own functions on.
//
// Calls (call_from_main_frame): a callable that may read its caller's frame (see execution.cc:
// those builtins, or a callable object that may wrap one) is called from a frame whose globals
// and locals are the target's __main__.__dict__, so the builtins that read
// the caller's frame (eval, exec, globals, locals, vars, dir) act on __main__ as 3.14 makes them
// (3.14 calls with no frame and falls back to the running __main__). That frame is left out of
// the traceback of an exception the callable raises.
//
// Requirements: every function here runs attached to the interpreter it names (sender for
// encoding, receiver for decoding and calling); each keeps its per-interpreter state in
// PyInterpreterState_GetDict(), dropped when that interpreter ends.
#pragma once

#include <Python.h>

#include <cstdint>
#include <string>

#include "engine/status.h"

namespace xinterp::python {

struct XValue;

// 1: stateless; 0: not, with the reason in *why; -1: a Python error is set.
int function_is_stateless(PyObject* fn, std::string* why);
// Fills `out` (kind kFunction, the marshalled code) for a stateless function.
Status encode_stateless_function(PyObject* fn, XValue* out);
// A new function over the current interpreter's __main__ globals, or nullptr with an exception.
PyObject* decode_stateless_function(const XValue& value);

// The current interpreter's main script (__main__.__file__, as str), or an empty string.
std::string current_main_file();
// pickle.loads(data) in the current interpreter, retried against the fake __main__ run from
// `main_file` (see above) when the first load misses a name of __main__. nullptr with an
// exception set on failure.
PyObject* unpickle(const std::string& data, const std::string& main_file);

// Fallbacks of unpickle(), process-wide (xinterp.runtime_stats()).
struct MainTransportStats {
  uint64_t fake_main_loads = 0;   // values rebuilt against a fake __main__
  uint64_t main_script_runs = 0;  // main scripts run as '<fake __main__>' (once per interpreter)
};
MainTransportStats main_transport_stats() noexcept;

// fn(*args, **kwargs) from a frame of the current interpreter's __main__ (see above).
// kwargs may be nullptr. A new reference, or nullptr with the callable's exception set.
PyObject* call_from_main_frame(PyObject* fn, PyObject* args, PyObject* kwargs);

}  // namespace xinterp::python
