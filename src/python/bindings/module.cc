// xinterp._xinterp: the extension module's state and init. Each Python-facing concept adds its
// functions and types from its own file (interpreter_functions.cc, stats_functions.cc,
// queue_functions.cc, channel_functions.cc, test_hooks.cc); the Python boundary they share
// (argument parsing, error mapping, blocking waits) is boundary.h.
#include <Python.h>

#include <memory>
#include <string>
#include <utility>

#include "bindings/boundary.h"
#include "bindings/exceptions.h"
#include "bindings/module_state.h"
#include "cpython/cpython_private.h"
#include "data/shared_buffer.h"
#include "engine/python_engine.h"

namespace xinterp::python {
namespace {

// xidata's lookup of the calling interpreter's classes: through its xinterp module, if imported.
const SharedClasses* current_classes() {
  PyObject* name = PyUnicode_FromString("xinterp._xinterp");
  PyObject* module = name ? PyImport_GetModule(name) : nullptr;
  Py_XDECREF(name);
  if (module == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  const SharedClasses* classes = nullptr;
  if (PyModule_GetDef(module) == &kModule) classes = &state_of(module)->classes;
  Py_DECREF(module);  // the module stays in sys.modules, and its state with it
  return classes;
}

// _register_class(kind, cls): the package tells the module which of its classes travel by id.
PyObject* mod_register_class(PyObject* module, PyObject* args) {
  const char* kind;
  PyObject* cls;
  if (!PyArg_ParseTuple(args, "sO!:_register_class", &kind, &PyType_Type, &cls)) return nullptr;
  SharedClasses& c = state_of(module)->classes;
  const std::pair<const char*, PyObject**> slots[] = {{"Interpreter", &c.interpreter},
                                                      {"Queue", &c.queue},
                                                      {"RecvChannel", &c.recv_channel},
                                                      {"SendChannel", &c.send_channel}};
  for (const auto& [name, slot] : slots) {
    if (std::string(name) == kind) {
      Py_XSETREF(*slot, Py_NewRef(cls));
      Py_RETURN_NONE;
    }
  }
  return PyErr_Format(PyExc_ValueError, "unknown shareable class kind %s", kind);
}

PyMethodDef kMethods[] = {
    {"_register_class", mod_register_class, METH_VARARGS, "internal"},
    {nullptr, nullptr, 0, nullptr},
};

int module_exec(PyObject* module) {
  ModuleState* st = state_of(module);
  if (add_exceptions(module) < 0) return -1;
  st->shared_buffer_type = make_shared_buffer_type(module);
  if (st->shared_buffer_type == nullptr ||
      PyModule_AddObjectRef(module, "_SharedBuffer", st->shared_buffer_type) < 0) {
    return -1;
  }
  st->classes.shared_buffer = reinterpret_cast<PyTypeObject*>(st->shared_buffer_type);
  set_classes_lookup(&current_classes);
  if (PyModule_AddFunctions(module, kMethods) < 0 || add_interpreter_functions(module) < 0 ||
      add_stats_functions(module) < 0 || add_queue_functions(module) < 0 ||
      add_channel_functions(module) < 0 || add_test_hooks(module) < 0) {
    return -1;
  }
#ifdef XINTERP_DEBUG
  constexpr int kDebugChecks = 1;
#else
  constexpr int kDebugChecks = 0;
#endif
  // Whether owner affinity is checked on the production path (XINTERP_DEBUG_CHECKS builds).
  if (PyModule_AddIntConstant(module, "_DEBUG_CHECKS", kDebugChecks) < 0) return -1;
  Status s;
  std::shared_ptr<InterpRecord> rec = PythonEngine::get().register_current(&s);
  if (rec == nullptr) {
    raise(module, s);
    return -1;
  }
  // An interpreter xinterp did not create (CPython's _interpreters, an embedder's) may end with
  // this module still alive (kept by an object it lent, so m_free never runs): xinterp learns
  // of its end from CPython's per-interpreter exit callback instead. Registered by each module
  // object; forget_current() is idempotent.
  if (!rec->created_by_xinterp && rec->whence != Whence::kRuntime &&
      !cpy::at_interpreter_exit([](void*) { PythonEngine::get().forget_current(); }, nullptr)) {
    return -1;
  }
  st->self = new std::shared_ptr<InterpRecord>(std::move(rec));
  return 0;
}

int module_traverse(PyObject* module, visitproc visit, void* arg) {
  ModuleState* st = state_of(module);
  for (PyObject* o : st->exc) Py_VISIT(o);
  for (PyObject* o : st->unbound_objs) Py_VISIT(o);
  Py_VISIT(st->shared_buffer_type);
  Py_VISIT(st->queue_handle_type);
  Py_VISIT(st->channel_handle_type);
  Py_VISIT(st->classes.interpreter);
  Py_VISIT(st->classes.queue);
  Py_VISIT(st->classes.recv_channel);
  Py_VISIT(st->classes.send_channel);
  return 0;
}

int module_clear(PyObject* module) {
  ModuleState* st = state_of(module);
  for (PyObject*& o : st->exc) Py_CLEAR(o);
  for (PyObject*& o : st->unbound_objs) Py_CLEAR(o);
  Py_CLEAR(st->shared_buffer_type);
  Py_CLEAR(st->queue_handle_type);
  Py_CLEAR(st->channel_handle_type);
  Py_CLEAR(st->classes.interpreter);
  Py_CLEAR(st->classes.queue);
  Py_CLEAR(st->classes.recv_channel);
  Py_CLEAR(st->classes.send_channel);
  st->classes.shared_buffer = nullptr;  // a borrowed pointer into shared_buffer_type
  return 0;
}

void module_free(void* module) {
  module_clear(static_cast<PyObject*>(module));
  ModuleState* st = state_of(static_cast<PyObject*>(module));
  delete st->self;
  st->self = nullptr;
  // An interpreter xinterp did not create is going away: close its core owner while it can
  // still run the calls queued for it. (xinterp's own are closed by close() or shutdown().)
  if (PyInterpreterState_Get() != PyInterpreterState_Main()) PythonEngine::get().forget_current();
}

PyModuleDef_Slot kSlots[] = {
    {Py_mod_exec, reinterpret_cast<void*>(module_exec)},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, nullptr},
};

}  // namespace

PyModuleDef kModule = {
    PyModuleDef_HEAD_INIT,
    "_xinterp",
    "xinterp's extension module: interpreters, cross-interpreter calls, stats.",
    sizeof(ModuleState),
    nullptr,  // functions: added by module_exec
    kSlots,
    module_traverse,
    module_clear,
    module_free,
};

}  // namespace xinterp::python

PyMODINIT_FUNC PyInit__xinterp(void) { return PyModuleDef_Init(&xinterp::python::kModule); }
