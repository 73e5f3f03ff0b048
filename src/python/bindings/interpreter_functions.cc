// The module's interpreter functions: PEP 734's create/close/list/exec/call/prepare_main and
// is_shareable, over PythonEngine and objects/execution.
#include <Python.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings/boundary.h"
#include "bindings/module_state.h"
#include "cpython/cpython_private.h"
#include "engine/python_engine.h"
#include "engine/run_interrupt.h"
#include "objects/execution.h"

namespace xinterp::python {
namespace {

PyObject* id_whence(const InterpRecord& rec) {
  return Py_BuildValue("(Li)", static_cast<long long>(rec.py_id), static_cast<int>(rec.whence));
}

// The record of interpreter `arg`, or nullptr with InterpreterNotFoundError (or a parse error).
std::shared_ptr<InterpRecord> lookup(PyObject* module, PyObject* arg) {
  int64_t id;
  if (!parse_id(arg, &id)) return nullptr;
  auto rec = PythonEngine::get().find(id);
  if (rec == nullptr) {
    if (id == cpy::interpreter_id(PyInterpreterState_Main())) {
      // Only reachable from a sub-interpreter when main never imported xinterp.
      raise(module, Status::error(ErrorKind::kNotFound,
                                  "the main interpreter is not known to "
                                  "xinterp (import xinterp in it first)"));
      return nullptr;
    }
    raise(module,
          Status::error(ErrorKind::kNotFound, "unrecognized interpreter ID " + std::to_string(id)));
  }
  return rec;
}

PyObject* mod_create(PyObject* module, PyObject*) {
  int64_t id = -1;
  Status s = PythonEngine::get().create(&id);
  if (!s.ok()) return raise(module, s);
  return PyLong_FromLongLong(id);
}

PyObject* mod_destroy(PyObject* module, PyObject* args) {
  PyObject* id_obj;
  PyObject* timeout_obj = Py_None;
  if (!PyArg_ParseTuple(args, "O|O:destroy", &id_obj, &timeout_obj)) return nullptr;
  int64_t id;
  if (!parse_id(id_obj, &id)) return nullptr;
  std::optional<std::chrono::nanoseconds> timeout;
  if (!parse_timeout(timeout_obj, &timeout)) return nullptr;
  Status s = PythonEngine::get().close(id, timeout.value_or(PythonEngine::kDefaultBorrowTimeout));
  if (!s.ok()) return raise(module, s);
  Py_RETURN_NONE;
}

PyObject* mod_list_all(PyObject*, PyObject*) {
  auto recs = PythonEngine::get().all();
  PyObject* list = PyList_New(0);
  if (list == nullptr) return nullptr;
  for (const auto& rec : recs) {
    PyObject* item = id_whence(*rec);
    if (item == nullptr || PyList_Append(list, item) < 0) {
      Py_XDECREF(item);
      Py_DECREF(list);
      return nullptr;
    }
    Py_DECREF(item);
  }
  if (PyList_Sort(list) < 0) {
    Py_DECREF(list);
    return nullptr;
  }
  return list;
}

PyObject* mod_get_current(PyObject* module, PyObject*) {
  PythonEngine& engine = PythonEngine::get();
  if (engine.current_is_ending()) {
    // close() is ending it (its atexit handlers, finalizers): it is still the current one.
    PyInterpreterState* interp = PyThreadState_GetInterpreter(cpy::current_tstate());
    return Py_BuildValue("(Li)", static_cast<long long>(cpy::interpreter_id(interp)),
                         static_cast<int>(Whence::kStdlib));
  }
  Status s;
  auto rec = engine.register_current(&s);
  if (rec == nullptr) return raise(module, s);
  return id_whence(*rec);
}

PyObject* mod_get_main(PyObject*, PyObject*) {
  auto rec = PythonEngine::get().find(PyInterpreterState_Main());
  if (rec == nullptr) {
    // The main interpreter has not imported xinterp (only a sub-interpreter did).
    return Py_BuildValue("(Li)",
                         static_cast<long long>(cpy::interpreter_id(PyInterpreterState_Main())),
                         static_cast<int>(Whence::kRuntime));
  }
  return id_whence(*rec);
}

PyObject* mod_whence(PyObject* module, PyObject* arg) {
  auto rec = lookup(module, arg);
  if (rec == nullptr) return nullptr;
  return PyLong_FromLong(static_cast<long>(rec->whence));
}

PyObject* mod_is_running(PyObject* module, PyObject* arg) {
  auto rec = lookup(module, arg);
  if (rec == nullptr) return nullptr;
  PyThreadState* ts = cpy::current_tstate();
  const bool current = ts != nullptr && PyThreadState_GetInterpreter(ts) == rec->interp;
  // The main interpreter runs its main thread; any interpreter asking about itself is running.
  return PyBool_FromLong(rec->whence == Whence::kRuntime || current ||
                         rec->running.load(std::memory_order_acquire));
}

PyObject* mod_incref(PyObject* module, PyObject* arg) {
  int64_t id;
  if (!parse_id(arg, &id)) return nullptr;
  Status s = PythonEngine::get().incref(id);
  if (!s.ok()) return raise(module, s);
  Py_RETURN_NONE;
}

PyObject* mod_decref(PyObject*, PyObject* arg) {
  int64_t id;
  if (!parse_id(arg, &id)) return nullptr;
  PythonEngine::get().decref(id);
  Py_RETURN_NONE;
}

// exec(id, code) -> None, or an excinfo tuple when the code raised.
PyObject* mod_exec(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "exec(id, code)");
    return nullptr;
  }
  int64_t id;
  if (!parse_id(args[0], &id)) return nullptr;
  XValue code;
  Status s = prepare_exec(args[1], &code);
  if (s.ok()) s = exec_in(id, code);
  if (s.kind == ErrorKind::kExecutionFailed) return excinfo_tuple(s.exc);
  if (!s.ok()) return raise(module, s);
  Py_RETURN_NONE;
}

// call(id, callable, args, kwargs) -> (result, None) or (None, excinfo tuple).
PyObject* mod_call(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 4 || !PyTuple_Check(args[2]) || !(args[3] == Py_None || PyDict_Check(args[3]))) {
    PyErr_SetString(PyExc_TypeError, "call(id, callable, args: tuple, kwargs: dict | None)");
    return nullptr;
  }
  int64_t id;
  if (!parse_id(args[0], &id)) return nullptr;
  std::vector<XValue> call;
  Status s = prepare_call(args[1], args[2], args[3] == Py_None ? nullptr : args[3], &call);
  XValue result;
  if (s.ok()) s = call_in(id, call, &result);
  if (s.kind == ErrorKind::kExecutionFailed) {
    PyObject* info = excinfo_tuple(s.exc);
    return info ? Py_BuildValue("(ON)", Py_None, info) : nullptr;
  }
  if (!s.ok()) return raise(module, s);
  PyObject* value = decode(result);
  if (value == nullptr) return nullptr;
  return Py_BuildValue("(NO)", value, Py_None);
}

PyObject* mod_set_main_attrs(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "set___main___attrs(id, ns: dict)");
    return nullptr;
  }
  int64_t id;
  if (!parse_id(args[0], &id)) return nullptr;
  // An unknown interpreter is reported before the namespace is looked at (as 3.14).
  if (PyDict_Check(args[1]) && PyDict_GET_SIZE(args[1]) == 0 &&
      lookup(module, args[0]) == nullptr) {
    return nullptr;
  }
  std::vector<std::pair<std::string, XValue>> ns;
  Status s = prepare_namespace(args[1], &ns);
  if (s.ok()) s = set_main_attrs_in(id, ns);
  if (s.kind == ErrorKind::kExecutionFailed) return excinfo_tuple(s.exc);
  if (!s.ok()) return raise(module, s);
  Py_RETURN_NONE;
}

PyObject* mod_is_shareable(PyObject*, PyObject* obj) { return PyBool_FromLong(is_shareable(obj)); }

PyObject* mod_is_natively_shareable(PyObject*, PyObject* obj) {
  return PyBool_FromLong(is_natively_shareable(obj));
}

// interrupt(id, exc=KeyboardInterrupt) -> bool: whether an exec()/call() was running in it
// (the interrupt posted); see engine/run_interrupt.h.
PyObject* mod_interrupt(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2) {
    PyErr_SetString(PyExc_TypeError, "interrupt(id, exc=KeyboardInterrupt)");
    return nullptr;
  }
  PyObject* exc = nargs == 2 ? args[1] : PyExc_KeyboardInterrupt;
  if (!PyExceptionClass_Check(exc) && !PyExceptionInstance_Check(exc)) {
    PyErr_Format(PyExc_TypeError,
                 "interrupt(): exc must be a BaseException subclass or instance, not %.200R", exc);
    return nullptr;
  }
  auto rec = lookup(module, args[0]);
  if (rec == nullptr) return nullptr;
  if (rec->whence == Whence::kRuntime) {
    return raise(module,
                 Status::error(ErrorKind::kInterpreter,
                               "interrupt(): the main interpreter cannot be interrupted "
                               "this way (signal it instead, e.g. _thread.interrupt_main())"));
  }
  PyThreadState* ts = cpy::current_tstate();
  if (ts != nullptr && PyThreadState_GetInterpreter(ts) == rec->interp) {
    return raise(module, Status::error(ErrorKind::kInterpreter,
                                       "interrupt(): an interpreter cannot interrupt itself "
                                       "(raise the exception instead)"));
  }
  if (!rec->created_by_xinterp) {
    return raise(module,
                 Status::error(ErrorKind::kInterpreter,
                               "interrupt(): interpreter " + std::to_string(rec->py_id) +
                                   " was not created by xinterp; it cannot be interrupted"));
  }
  // KeyboardInterrupt, the common case, needs no encoding.
  RunInterrupt::Kind kind = RunInterrupt::Kind::kKeyboardInterrupt;
  XValue value;
  if (exc != PyExc_KeyboardInterrupt) {
    kind = RunInterrupt::Kind::kValue;
    Status s = encode(exc, Fallback::kFull, &value);
    if (!s.ok()) return raise(module, s);
  }
  bool posted = false;
  Status s = post_interrupt(rec, kind, value, &posted);
  if (!s.ok()) return raise(module, s);
  return PyBool_FromLong(posted);
}

PyObject* mod_shutdown(PyObject*, PyObject*) {
  PythonEngine::get().shutdown();
  Py_RETURN_NONE;
}

PyMethodDef kMethods[] = {
    {"create", mod_create, METH_NOARGS, "create() -> id: a new isolated interpreter."},
    {"destroy", mod_destroy, METH_VARARGS,
     "destroy(id, borrow_timeout=None): close an interpreter xinterp created."},
    {"list_all", mod_list_all, METH_NOARGS, "list_all() -> [(id, whence)]"},
    {"get_current", mod_get_current, METH_NOARGS, "get_current() -> (id, whence)"},
    {"get_main", mod_get_main, METH_NOARGS, "get_main() -> (id, whence)"},
    {"whence", mod_whence, METH_O, "whence(id) -> int"},
    {"is_running", mod_is_running, METH_O, "is_running(id) -> bool"},
    {"incref", mod_incref, METH_O, "incref(id): take an owning reference."},
    {"decref", mod_decref, METH_O, "decref(id): drop one; the last one closes the interpreter."},
    {"exec", fastcall(mod_exec), METH_FASTCALL, "exec(id, code) -> None | excinfo"},
    {"interrupt", fastcall(mod_interrupt), METH_FASTCALL,
     "interrupt(id, exc=KeyboardInterrupt) -> bool: raise exc in the exec()/call() running in "
     "interpreter id; False if none runs."},
    {"call", fastcall(mod_call), METH_FASTCALL,
     "call(id, callable, args, kwargs) -> (result, excinfo | None)"},
    {"set___main___attrs", fastcall(mod_set_main_attrs), METH_FASTCALL,
     "set___main___attrs(id, ns) -> None | excinfo"},
    {"is_shareable", mod_is_shareable, METH_O,
     "is_shareable(obj) -> bool\n\nAs CPython 3.14: True for None, bool, int (any size), "
     "float, str, bytes, memoryview, xinterp queues, interpreters and channel ends, and any "
     "tuple (by type, as 3.14: a tuple holding a list is then sent by pickle, or refused where "
     "nothing falls back); exact types; False for bytearray and other buffer exporters (see "
     "lend()). Beyond 3.14: complex, range, and frozensets and slices of natively shareable "
     "values."},
    {"_is_natively_shareable", mod_is_natively_shareable, METH_O,
     "_is_natively_shareable(obj) -> bool\n\nWhether obj is sent without any fallback, checked "
     "all the way down: containers nest at most 200 deep and hold at most 2**22 values in all, "
     "a sub-container referenced n times counting n times (a bigger one is sent by pickle, "
     "which keeps shared references shared and refuses very deep ones)."},
    {"_shutdown", mod_shutdown, METH_NOARGS, "close every interpreter xinterp created"},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int add_interpreter_functions(PyObject* module) {
  const std::pair<const char*, Whence> whences[] = {
      {"WHENCE_UNKNOWN", Whence::kUnknown},        {"WHENCE_RUNTIME", Whence::kRuntime},
      {"WHENCE_LEGACY_CAPI", Whence::kLegacyCapi}, {"WHENCE_CAPI", Whence::kCapi},
      {"WHENCE_XI", Whence::kCrossInterp},         {"WHENCE_STDLIB", Whence::kStdlib},
  };
  for (const auto& [name, w] : whences) {
    if (PyModule_AddIntConstant(module, name, static_cast<long>(w)) < 0) return -1;
  }
  return PyModule_AddFunctions(module, kMethods);
}

}  // namespace xinterp::python
