// xinterp._xinterp: the extension module. Multi-phase init, declared safe for interpreters with
// their own GIL; every Python object it keeps lives in the module state of one interpreter
// (no static PyObject*). The process-wide state is PythonEngine, plain C++.
#include <Python.h>

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "cpython_private.h"
#include "execution.h"
#include "python_engine.h"
#include "xinterp/owner.h"

namespace xinterp::python {
namespace {

struct ModuleState {
  PyObject* interpreter_error;
  PyObject* not_found_error;
  PyObject* not_shareable_error;
};

ModuleState* state_of(PyObject* module) {
  return static_cast<ModuleState*>(PyModule_GetState(module));
}

// Raises the Python exception for `s` in the calling interpreter; returns nullptr.
PyObject* raise(PyObject* module, const Status& s) {
  ModuleState* st = state_of(module);
  switch (s.kind) {
    case ErrorKind::kOk:
      PyErr_SetString(PyExc_SystemError, "xinterp: raise() without an error");
      break;
    case ErrorKind::kNotFound:
      PyErr_SetString(st->not_found_error, s.message.c_str());
      break;
    case ErrorKind::kInterpreter:
      PyErr_SetString(st->interpreter_error, s.message.c_str());
      break;
    case ErrorKind::kNotShareable:
      PyErr_SetString(st->not_shareable_error, s.message.c_str());
      break;
    case ErrorKind::kType:
      PyErr_SetString(PyExc_TypeError, s.message.c_str());
      break;
    case ErrorKind::kExecutionFailed:
      PyErr_SetString(st->interpreter_error, s.message.c_str());  // callers handle it first
      break;
    case ErrorKind::kPythonSet:
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "xinterp: lost exception");
      break;
  }
  return nullptr;
}

PyObject* excinfo_tuple(const ExcInfo& e) {
  return Py_BuildValue("(s#s#s#s#s#s#)", e.type_name.data(), (Py_ssize_t)e.type_name.size(),
                       e.type_qualname.data(), (Py_ssize_t)e.type_qualname.size(),
                       e.type_module.data(), (Py_ssize_t)e.type_module.size(), e.msg.data(),
                       (Py_ssize_t)e.msg.size(), e.formatted.data(),
                       (Py_ssize_t)e.formatted.size(), e.errdisplay.data(),
                       (Py_ssize_t)e.errdisplay.size());
}

bool parse_id(PyObject* arg, int64_t* id) {
  if (!PyLong_Check(arg)) {
    PyErr_Format(PyExc_TypeError, "interpreter ID must be an int, got %.200s",
                 Py_TYPE(arg)->tp_name);
    return false;
  }
  long long v = PyLong_AsLongLong(arg);
  if (v == -1 && PyErr_Occurred()) return false;
  if (v < 0) {
    PyErr_Format(PyExc_ValueError, "interpreter ID must be a non-negative int, got %lld", v);
    return false;
  }
  *id = v;
  return true;
}

PyObject* id_whence(const InterpRecord& rec) {
  return Py_BuildValue("(Li)", static_cast<long long>(rec.py_id), static_cast<int>(rec.whence));
}

// --- interpreters ------------------------------------------------------------------------------

PyObject* mod_create(PyObject* module, PyObject*) {
  int64_t id = -1;
  Status s = PythonEngine::get().create(&id);
  if (!s.ok()) return raise(module, s);
  return PyLong_FromLongLong(id);
}

PyObject* mod_destroy(PyObject* module, PyObject* arg) {
  int64_t id;
  if (!parse_id(arg, &id)) return nullptr;
  Status s = PythonEngine::get().close(id);
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
  Status s;
  auto rec = PythonEngine::get().register_current(&s);
  if (rec == nullptr) return raise(module, s);
  return id_whence(*rec);
}

PyObject* mod_get_main(PyObject* module, PyObject*) {
  auto rec = PythonEngine::get().find(PyInterpreterState_Main());
  if (rec == nullptr) {
    // The main interpreter has not imported xinterp (only a sub-interpreter did).
    return Py_BuildValue("(Li)", static_cast<long long>(PyInterpreterState_GetID(
                                     PyInterpreterState_Main())),
                         static_cast<int>(Whence::kRuntime));
  }
  (void)module;
  return id_whence(*rec);
}

std::shared_ptr<InterpRecord> lookup(PyObject* module, PyObject* arg) {
  int64_t id;
  if (!parse_id(arg, &id)) return nullptr;
  auto rec = PythonEngine::get().find(id);
  if (rec == nullptr) {
    if (id == PyInterpreterState_GetID(PyInterpreterState_Main())) {
      Status s;
      // Only reachable from a sub-interpreter when main never imported xinterp.
      raise(module, Status::error(ErrorKind::kNotFound, "the main interpreter is not known to "
                                                        "xinterp (import xinterp in it first)"));
      return nullptr;
    }
    raise(module, Status::error(ErrorKind::kNotFound,
                                "unrecognized interpreter ID " + std::to_string(id)));
  }
  return rec;
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
  std::vector<std::pair<std::string, XValue>> ns;
  Status s = prepare_namespace(args[1], &ns);
  if (s.ok()) s = set_main_attrs_in(id, ns);
  if (s.kind == ErrorKind::kExecutionFailed) return excinfo_tuple(s.exc);
  if (!s.ok()) return raise(module, s);
  Py_RETURN_NONE;
}

PyObject* mod_is_shareable(PyObject*, PyObject* obj) {
  return PyBool_FromLong(is_natively_shareable(obj));
}

// --- stats ------------------------------------------------------------------------------------

int set_u64(PyObject* dict, const char* key, uint64_t v) {
  PyObject* n = PyLong_FromUnsignedLongLong(v);
  if (n == nullptr) return -1;
  int r = PyDict_SetItemString(dict, key, n);
  Py_DECREF(n);
  return r;
}

int fill_owner_stats(PyObject* d, const OwnerStats& o) {
  if (set_u64(d, "posted", o.posted) < 0 || set_u64(d, "run_inline", o.run_inline) < 0 ||
      set_u64(d, "run_by_wake", o.run_by_owner) < 0 ||
      set_u64(d, "run_by_housekeeper", o.run_by_housekeeper) < 0 ||
      set_u64(d, "run_raw", o.run_raw) < 0 || set_u64(d, "failed", o.failed) < 0 ||
      set_u64(d, "wakes", o.wakes) < 0 || set_u64(d, "peak_backlog", o.peak_backlog) < 0 ||
      set_u64(d, "lost", o.lost) < 0 || set_u64(d, "backlog", o.backlog()) < 0) {
    return -1;
  }
  return 0;
}

PyObject* mod_stats(PyObject*, PyObject*) {
  PythonEngine& engine = PythonEngine::get();
  PyObject* out = PyDict_New();
  PyObject* per = PyDict_New();
  if (out == nullptr || per == nullptr || PyDict_SetItemString(out, "interpreters", per) < 0) {
    Py_XDECREF(out);
    Py_XDECREF(per);
    return nullptr;
  }
  Py_DECREF(per);
  for (const auto& rec : engine.all()) {
    PyObject* d = PyDict_New();
    PyObject* key = PyLong_FromLongLong(rec->py_id);
    int r = (d && key) ? fill_owner_stats(d, rec->owner->stats()) : -1;
    if (r == 0) r = set_u64(d, "wakes_coalesced", rec->wakes_coalesced.load());
    if (r == 0) r = set_u64(d, "wakes_refused", rec->wakes_refused.load());
    if (r == 0) r = set_u64(d, "cpython_calls_added", rec->cpython_calls_added.load());
    if (r == 0) r = set_u64(d, "cpython_calls_run", rec->cpython_calls_run.load());
    if (r == 0) r = set_u64(d, "running", rec->running.load() ? 1 : 0);
    if (r == 0) r = PyDict_SetItem(per, key, d);
    Py_XDECREF(d);
    Py_XDECREF(key);
    if (r < 0) {
      Py_DECREF(out);
      return nullptr;
    }
  }
  RegistryStats reg = engine.runtime().registry_stats();
  PyObject* retired = PyDict_New();
  int r = retired ? fill_owner_stats(retired, reg.retired) : -1;
  if (r == 0) r = PyDict_SetItemString(out, "closed_interpreters", retired);
  Py_XDECREF(retired);
  if (r == 0) r = set_u64(out, "interpreters_created", reg.owners_created);
  if (r == 0) r = set_u64(out, "interpreters_alive", reg.owners_alive);
  if (r == 0) r = set_u64(out, "unknown_interpreter_posts", reg.unknown_owner_posts);
  if (r == 0) r = set_u64(out, "unknown_interpreter_failed", reg.unknown_owner_failed);
  if (r == 0) r = set_u64(out, "stranded_at_exit", engine.stranded_at_exit());
  if (r < 0) {
    Py_DECREF(out);
    return nullptr;
  }
  return out;
}

PyObject* mod_shutdown(PyObject*, PyObject*) {
  PythonEngine::get().shutdown();
  Py_RETURN_NONE;
}

// --- test hooks -------------------------------------------------------------------------------
// _post_test_calls(id, kind, n): posts n core pending calls to interpreter `id`. Each checks that
// it runs attached to that interpreter (counted in _test_counters()["wrong_interpreter"]).
// kind "ok" succeeds; kind "fail" raises RuntimeError inside the owner (reported through its
// sys.unraisablehook and counted as failed).

std::atomic<uint64_t> g_test_in_owner{0}, g_test_raw{0}, g_test_wrong{0};

PyObject* mod_post_test_calls(PyObject* module, PyObject* args) {
  long long id;
  const char* kind;
  long long n;
  if (!PyArg_ParseTuple(args, "LsL", &id, &kind, &n)) return nullptr;
  const std::string k = kind;
  if (k != "ok" && k != "fail") {
    PyErr_SetString(PyExc_ValueError, "kind must be 'ok' or 'fail'");
    return nullptr;
  }
  auto rec = PythonEngine::get().find(static_cast<int64_t>(id));
  if (rec == nullptr) {
    return raise(module, Status::error(ErrorKind::kNotFound, "unrecognized interpreter ID"));
  }
  PyInterpreterState* expected = rec->interp;
  const bool fail = k == "fail";
  for (long long i = 0; i < n; ++i) {
    rec->owner->post([expected, fail](RunMode mode) -> bool {
      if (mode == RunMode::kRaw) {
        g_test_raw.fetch_add(1);
        return true;
      }
      PyThreadState* ts = cpy::current_tstate();
      if (ts == nullptr || PyThreadState_GetInterpreter(ts) != expected) {
        g_test_wrong.fetch_add(1);
        return false;
      }
      g_test_in_owner.fetch_add(1);
      if (fail) {
        PyErr_SetString(PyExc_RuntimeError, "xinterp test call failed on purpose");
        return false;
      }
      return true;
    });
  }
  Py_RETURN_NONE;
}

PyObject* mod_test_counters(PyObject*, PyObject*) {
  return Py_BuildValue("{sKsKsK}", "in_owner", (unsigned long long)g_test_in_owner.load(),
                       "raw", (unsigned long long)g_test_raw.load(), "wrong_interpreter",
                       (unsigned long long)g_test_wrong.load());
}

PyMethodDef kMethods[] = {
    {"create", mod_create, METH_NOARGS, "create() -> id: a new isolated interpreter."},
    {"destroy", mod_destroy, METH_O, "destroy(id): close an interpreter xinterp created."},
    {"list_all", mod_list_all, METH_NOARGS, "list_all() -> [(id, whence)]"},
    {"get_current", mod_get_current, METH_NOARGS, "get_current() -> (id, whence)"},
    {"get_main", mod_get_main, METH_NOARGS, "get_main() -> (id, whence)"},
    {"whence", mod_whence, METH_O, "whence(id) -> int"},
    {"is_running", mod_is_running, METH_O, "is_running(id) -> bool"},
    {"incref", mod_incref, METH_O, "incref(id): take an owning reference."},
    {"decref", mod_decref, METH_O, "decref(id): drop one; the last one closes the interpreter."},
    {"exec", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(mod_exec)),
     METH_FASTCALL, "exec(id, code) -> None | excinfo"},
    {"call", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(mod_call)),
     METH_FASTCALL, "call(id, callable, args, kwargs) -> (result, excinfo | None)"},
    {"set___main___attrs",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(mod_set_main_attrs)),
     METH_FASTCALL, "set___main___attrs(id, ns) -> None | excinfo"},
    {"is_shareable", mod_is_shareable, METH_O, "is_shareable(obj) -> bool"},
    {"stats", mod_stats, METH_NOARGS, "stats() -> dict of counters"},
    {"_shutdown", mod_shutdown, METH_NOARGS, "close every interpreter xinterp created"},
    {"_post_test_calls", mod_post_test_calls, METH_VARARGS, "test hook"},
    {"_test_counters", mod_test_counters, METH_NOARGS, "test hook"},
    {nullptr, nullptr, 0, nullptr},
};

int add_exception(PyObject* module, const char* name, PyObject* base, PyObject** slot) {
  std::string qualified = std::string("xinterp.") + name;
  *slot = PyErr_NewException(qualified.c_str(), base, nullptr);
  if (*slot == nullptr) return -1;
  return PyModule_AddObjectRef(module, name, *slot);
}

int module_exec(PyObject* module) {
  ModuleState* st = state_of(module);
  if (add_exception(module, "InterpreterError", PyExc_Exception, &st->interpreter_error) < 0 ||
      add_exception(module, "InterpreterNotFoundError", st->interpreter_error,
                    &st->not_found_error) < 0) {
    return -1;
  }
  // PEP 734 drafts made it a ValueError, CPython 3.14 a TypeError: catchable as either.
  PyObject* bases = PyTuple_Pack(2, PyExc_TypeError, PyExc_ValueError);
  if (bases == nullptr) return -1;
  int r = add_exception(module, "NotShareableError", bases, &st->not_shareable_error);
  Py_DECREF(bases);
  if (r < 0) return -1;
  const std::pair<const char*, Whence> whences[] = {
      {"WHENCE_UNKNOWN", Whence::kUnknown},      {"WHENCE_RUNTIME", Whence::kRuntime},
      {"WHENCE_LEGACY_CAPI", Whence::kLegacyCapi}, {"WHENCE_CAPI", Whence::kCapi},
      {"WHENCE_XI", Whence::kCrossInterp},       {"WHENCE_STDLIB", Whence::kStdlib},
  };
  for (const auto& [name, w] : whences) {
    if (PyModule_AddIntConstant(module, name, static_cast<long>(w)) < 0) return -1;
  }
  Status s;
  if (PythonEngine::get().register_current(&s) == nullptr) {
    raise(module, s);
    return -1;
  }
  return 0;
}

int module_traverse(PyObject* module, visitproc visit, void* arg) {
  ModuleState* st = state_of(module);
  Py_VISIT(st->interpreter_error);
  Py_VISIT(st->not_found_error);
  Py_VISIT(st->not_shareable_error);
  return 0;
}

int module_clear(PyObject* module) {
  ModuleState* st = state_of(module);
  Py_CLEAR(st->interpreter_error);
  Py_CLEAR(st->not_found_error);
  Py_CLEAR(st->not_shareable_error);
  return 0;
}

void module_free(void* module) {
  module_clear(static_cast<PyObject*>(module));
  // An interpreter xinterp did not create is going away: close its core owner while it can
  // still run the calls queued for it. (xinterp's own are closed by close() or shutdown().)
  if (PyInterpreterState_Get() != PyInterpreterState_Main()) PythonEngine::get().forget_current();
}

PyModuleDef_Slot kSlots[] = {
    {Py_mod_exec, reinterpret_cast<void*>(module_exec)},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, nullptr},
};

PyModuleDef kModule = {
    PyModuleDef_HEAD_INIT,
    "_xinterp",
    "xinterp's extension module: interpreters, cross-interpreter calls, stats.",
    sizeof(ModuleState),
    kMethods,
    kSlots,
    module_traverse,
    module_clear,
    module_free,
};

}  // namespace
}  // namespace xinterp::python

PyMODINIT_FUNC PyInit__xinterp(void) { return PyModuleDef_Init(&xinterp::python::kModule); }
