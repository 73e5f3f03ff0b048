// The extension module's per-interpreter state, and how the bindings find it.
//
// xinterp._xinterp uses multi-phase init and is declared safe for interpreters with their own
// GIL: every Python object it keeps lives in the module state of one interpreter (no static
// PyObject*). The process-wide state is PythonEngine and the registries, plain C++.
//
// Threading: a ModuleState is touched only by threads attached to its interpreter.
#pragma once

#include <Python.h>

#include <memory>

#include "bindings/exceptions.h"
#include "data/xidata.h"
#include "engine/interp_record.h"

namespace xinterp::python {

extern PyModuleDef kModule;

struct ModuleState {
  PyObject* exc[kExcCount];              // exceptions.h, indexed by Exc
  PyObject* unbound_objs[kMarkerCount];  // UNBOUND, UNBOUND_ERROR, UNBOUND_REMOVE
  PyObject* shared_buffer_type;
  PyObject* queue_handle_type;
  PyObject* channel_handle_type;
  // xinterp's Python classes that travel by id, registered by the package at import
  // (_register_class), and shared_buffer_type: what encode() and decode() use here.
  SharedClasses classes;
  // This interpreter's record (kept for the queues' hot path).
  std::shared_ptr<InterpRecord>* self;
};

inline ModuleState* state_of(PyObject* module) {
  return static_cast<ModuleState*>(PyModule_GetState(module));
}

// The module that defined an object's (heap) type: how methods of our types find the state.
inline PyObject* module_of_type(PyObject* self) {
  return PyType_GetModuleByDef(Py_TYPE(self), &kModule);
}

// Each binding file adds its functions and types to the module (module.cc calls them in order
// from the module's exec slot). -1 with an exception set on failure.
int add_interpreter_functions(PyObject* module);
int add_stats_functions(PyObject* module);
int add_queue_functions(PyObject* module);
int add_channel_functions(PyObject* module);
int add_test_hooks(PyObject* module);  // a no-op unless built with XINTERP_TEST_HOOKS

}  // namespace xinterp::python
