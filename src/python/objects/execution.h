// Running code in another interpreter: PEP 734's exec(), call() and prepare_main(), built on
// PythonEngine::run() and cross-interpreter values.
//
// Each operation has a caller half (encode the arguments while attached to the caller) and a
// target half (decode, run, encode the result while attached to the target); only XValues and
// Status travel between them.
//
// Errors: bad arguments are TypeError/ValueError in the caller (kPythonSet); values that cannot
// be shared are NotShareableError before anything runs; a call's callable or argument that the
// target cannot rebuild (pickle.loads fails there, even against the caller's main script run as
// '<fake __main__>') is NotShareableError ("func not shareable: ...", as 3.14), the call not
// made; an exception raised in the target is kExecutionFailed carrying its ExcInfo; a result
// that cannot be shared back is NotShareableError.
//
// call(): a callable that is not a Python function (eval, dir, a functools.partial, ...) is
// called from a frame of the target's __main__ (main_module_transport.h), so the builtins that
// read their caller's frame act on __main__ as in 3.14.
// Threading: callable from any thread attached to at most one interpreter.
#pragma once

#include <Python.h>

#include <string>
#include <utility>
#include <vector>

#include "data/xidata.h"
#include "engine/status.h"

namespace xinterp::python {

// Caller halves.
// code: str (source, without NUL or lone surrogates), a function taking no arguments without
// closure, or a code object likewise (no free variables); not a generator or coroutine
// function. Anything else raises here, before it runs (TypeError, ValueError,
// UnicodeEncodeError).
Status prepare_exec(PyObject* code, XValue* out);
Status prepare_call(PyObject* callable, PyObject* args, PyObject* kwargs, std::vector<XValue>* out);
// ns: a non-empty dict (ValueError if empty) of str names without NUL to natively shareable
// values (NotShareableError otherwise: prepare_main() pickles nothing, as 3.14).
Status prepare_namespace(PyObject* ns, std::vector<std::pair<std::string, XValue>>* out);

// Whole operations (any thread; the caller's GIL, if any, is released while the target runs).
Status exec_in(int64_t py_id, const XValue& code);
Status exec_source_in(int64_t py_id, const std::string& source);
// result: set on success.
Status call_in(int64_t py_id, const std::vector<XValue>& call, XValue* result);
// Binds every value or none (all are made before the first is bound).
Status set_main_attrs_in(int64_t py_id, const std::vector<std::pair<std::string, XValue>>& ns);

// Captures the current exception (attached to where it was raised) and clears it.
ExcInfo capture_exception();

}  // namespace xinterp::python
