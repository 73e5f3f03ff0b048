// xinterp._xinterp: the extension module. Multi-phase init, declared safe for interpreters with
// their own GIL; every Python object it keeps lives in the module state of one interpreter
// (no static PyObject*). The process-wide state is PythonEngine, plain C++.
#include <Python.h>

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include <chrono>
#include <optional>
#include <cmath>

#include "cpython_private.h"
#include "execution.h"
#include "fork_abandon.h"
#include "python_engine.h"
#include "channel_registry.h"
#include "queue_registry.h"
#include "shared_buffer.h"
#include "xinterp/owner.h"

namespace xinterp::python {
namespace {

extern PyModuleDef kModule;

struct ModuleState {
  PyObject* interpreter_error;
  PyObject* not_found_error;
  PyObject* not_shareable_error;
  PyObject* shared_buffer_type;
  PyObject* queue_handle_type;
  // Set by xinterp.queues at import (Python classes): QueueError, QueueNotFoundError,
  // QueueEmpty, QueueFull.
  PyObject* queue_error;
  PyObject* queue_not_found;
  PyObject* queue_empty;
  PyObject* queue_full;
  PyObject* item_destroyed;   // ItemInterpreterDestroyed
  // Set by xinterp.channels at import: ChannelError, ChannelNotFoundError, ChannelEmptyError,
  // ChannelClosedError, ChannelNotEmptyError.
  PyObject* channel_exc[5];
  PyObject* unbound_objs[3];  // UNBOUND, UNBOUND_ERROR, UNBOUND_REMOVE
  // This interpreter's record (kept for the queues' hot path).
  std::shared_ptr<InterpRecord>* self;
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

// An id argument: a non-negative int below 2**63 (TypeError, ValueError, OverflowError
// otherwise). `what` names it in the message: "interpreter", "queue" or "channel".
bool parse_id(PyObject* arg, int64_t* id, const char* what = "interpreter") {
  if (!PyLong_Check(arg)) {
    PyErr_Format(PyExc_TypeError, "%s ID must be an int, got %.200s", what,
                 Py_TYPE(arg)->tp_name);
    return false;
  }
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(arg, &overflow);
  if (v == -1 && PyErr_Occurred()) return false;
  if (overflow < 0) {
    PyErr_Format(PyExc_ValueError, "%s ID must be a non-negative int, got one below -2**63",
                 what);
    return false;
  }
  if (overflow > 0) {
    PyErr_Format(PyExc_OverflowError, "%s ID too large (IDs are below 2**63)", what);
    return false;
  }
  if (v < 0) {
    PyErr_Format(PyExc_ValueError, "%s ID must be a non-negative int, got %lld", what, v);
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

// Seconds (a non-negative float or int, or None for the default) -> an optional duration.
bool parse_timeout(PyObject* arg, std::optional<std::chrono::nanoseconds>* out) {
  if (arg == Py_None) {
    *out = std::nullopt;
    return true;
  }
  double seconds = PyFloat_AsDouble(arg);
  if (seconds == -1.0 && PyErr_Occurred()) return false;
  if (std::isnan(seconds) || seconds < 0) {
    PyErr_SetString(PyExc_ValueError, "timeout value must be non-negative");
    return false;
  }
  if (seconds > 1e9) seconds = 1e9;  // ~31 years: "forever" without overflow
  *out = std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9));
  return true;
}

// A timeout argument: None, or a non-negative int or float of seconds.
bool parse_queue_timeout(PyObject* arg, std::optional<std::chrono::nanoseconds>* out) {
  if (arg == nullptr || arg == Py_None) {
    *out = std::nullopt;
    return true;
  }
  if (!PyFloat_Check(arg) && !PyLong_Check(arg)) {
    PyErr_Format(PyExc_TypeError, "timeout must be a number of seconds or None, got %.200s",
                 Py_TYPE(arg)->tp_name);
    return false;
  }
  return parse_timeout(arg, out);
}

PyObject* mod_destroy(PyObject* module, PyObject* args) {
  PyObject* id_obj;
  PyObject* timeout_obj = Py_None;
  if (!PyArg_ParseTuple(args, "O|O:destroy", &id_obj, &timeout_obj)) return nullptr;
  int64_t id;
  if (!parse_id(id_obj, &id)) return nullptr;
  std::optional<std::chrono::nanoseconds> timeout;
  if (!parse_queue_timeout(timeout_obj, &timeout)) return nullptr;
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
      set_u64(d, "run_by_owner", o.run_by_owner) < 0 ||
      set_u64(d, "run_by_housekeeper", o.run_by_housekeeper) < 0 ||
      set_u64(d, "run_raw", o.run_raw) < 0 || set_u64(d, "failed", o.failed) < 0 ||
      set_u64(d, "wakes", o.wakes) < 0 || set_u64(d, "peak_backlog", o.peak_backlog) < 0 ||
      set_u64(d, "lost", o.lost) < 0 || set_u64(d, "backlog", o.backlog()) < 0) {
    return -1;
  }
  return 0;
}

// stats() -> {interpreter id: {counter: int}}
PyObject* mod_stats(PyObject*, PyObject*) {
  PythonEngine& engine = PythonEngine::get();
  PyObject* out = PyDict_New();
  if (out == nullptr) return nullptr;
  for (const auto& rec : engine.all()) {
    PyObject* d = PyDict_New();
    PyObject* key = PyLong_FromLongLong(rec->py_id);
    int r = (d && key) ? fill_owner_stats(d, rec->owner->stats()) : -1;
    if (r == 0) r = set_u64(d, "borrows", static_cast<uint64_t>(rec->borrows.load()));
    if (r == 0) {
      r = set_u64(d, "queued", static_cast<uint64_t>(QueueRegistry::get().queued_by(rec->py_id)));
    }
    if (r == 0) r = set_u64(d, "wakes_coalesced", rec->wakes_coalesced.load());
    if (r == 0) r = set_u64(d, "wakes_refused", rec->wakes_refused.load());
    if (r == 0) r = set_u64(d, "cpython_calls_added", rec->cpython_calls_added.load());
    if (r == 0) r = set_u64(d, "cpython_calls_run", rec->cpython_calls_run.load());
    if (r == 0) r = set_u64(d, "running", rec->running.load() ? 1 : 0);
    if (r == 0) r = PyDict_SetItem(out, key, d);
    Py_XDECREF(d);
    Py_XDECREF(key);
    if (r < 0) {
      Py_DECREF(out);
      return nullptr;
    }
  }
  return out;
}

// runtime_stats() -> what no single interpreter reports.
PyObject* mod_runtime_stats(PyObject*, PyObject*) {
  PythonEngine& engine = PythonEngine::get();
  RegistryStats reg = engine.runtime().registry_stats();
  PyObject* out = PyDict_New();
  PyObject* retired = PyDict_New();
  int r = (out && retired) ? fill_owner_stats(retired, reg.retired) : -1;
  if (r == 0) r = PyDict_SetItemString(out, "closed_interpreters", retired);
  Py_XDECREF(retired);
  if (r == 0) r = set_u64(out, "interpreters_created", reg.owners_created);
  if (r == 0) r = set_u64(out, "interpreters_alive", reg.owners_alive);
  if (r == 0) r = set_u64(out, "unknown_interpreter_posts", reg.unknown_owner_posts);
  if (r == 0) r = set_u64(out, "unknown_interpreter_failed", reg.unknown_owner_failed);
  if (r == 0) r = set_u64(out, "stranded_at_exit", engine.stranded_at_exit());
  if (r == 0) {
    r = set_u64(out, "closed_with_borrows_at_exit", engine.closed_with_borrows_at_exit());
  }
  if (r == 0) r = set_u64(out, "queues", QueueRegistry::get().all().size());
  const FallbackStats fb = fallback_stats();
  if (r == 0) r = set_u64(out, "fallback_pickled", fb.pickled);
  if (r == 0) r = set_u64(out, "fallback_function_code", fb.function_code);
  if (r == 0) r = set_u64(out, "fallback_buffer_copied", fb.buffer_copied);
  if (r == 0) r = set_u64(out, "bytes_copied_out_at_sender_close", fb.bytes_copied_out);
  if (r < 0) {
    Py_XDECREF(out);
    return nullptr;
  }
  return out;
}

PyObject* mod_shutdown(PyObject*, PyObject*) {
  PythonEngine::get().shutdown();
  Py_RETURN_NONE;
}

// --- queues ---------------------------------------------------------------------------------

PyObject* queue_exc(PyObject* module, PyObject* ModuleState::*which, PyObject* fallback) {
  PyObject* t = state_of(module)->*which;
  return t != nullptr ? t : fallback;
}

bool parse_unbound(PyObject* arg, UnboundOp* out) {
  long v = PyLong_AsLong(arg);
  if (v == -1 && PyErr_Occurred()) return false;
  if (v < 1 || v > 3) {
    PyErr_SetString(PyExc_ValueError, "unbounditems must be UNBOUND, UNBOUND_ERROR or UNBOUND_REMOVE");
    return false;
  }
  *out = static_cast<UnboundOp>(v);
  return true;
}

PyObject* mod_queue_create(PyObject*, PyObject* args) {
  Py_ssize_t maxsize;
  PyObject* unbound_obj;
  int syncobj = 0;
  if (!PyArg_ParseTuple(args, "nO|p:queue_create", &maxsize, &unbound_obj, &syncobj)) {
    return nullptr;
  }
  if (maxsize < 0) {
    PyErr_SetString(PyExc_ValueError, "maxsize must be 0 (unbounded) or positive");
    return nullptr;
  }
  UnboundOp unbound;
  if (!parse_unbound(unbound_obj, &unbound)) return nullptr;
  return PyLong_FromLongLong(
      QueueRegistry::get().create(static_cast<size_t>(maxsize), unbound, syncobj != 0));
}

PyObject* mod_queue_release(PyObject*, PyObject* arg) {
  int64_t id;
  if (!parse_id(arg, &id, "queue")) return nullptr;
  QueueRegistry::get().release(id);
  Py_RETURN_NONE;
}

// Waits in slices so that a signal handler (Ctrl-C in the main thread) gets to run. op(slice)
// does one wait without the GIL and returns `timed_out` when that slice ran out; used by the
// queue and channel waits alike.
template <class Op, class Result>
Result blocking(Op op, std::optional<std::chrono::nanoseconds> timeout, Result timed_out,
                bool* interrupted) {
  using namespace std::chrono;
  constexpr nanoseconds kSlice = milliseconds(100);
  const auto start = steady_clock::now();
  while (true) {
    std::optional<nanoseconds> slice = kSlice;
    if (timeout) {
      nanoseconds left = *timeout - (steady_clock::now() - start);
      if (left < nanoseconds::zero()) left = nanoseconds::zero();
      if (left <= kSlice) slice = left;
    }
    Result r;
    Py_BEGIN_ALLOW_THREADS
    r = op(slice);
    Py_END_ALLOW_THREADS
    if (r != timed_out) return r;
    if (timeout && steady_clock::now() - start >= *timeout) return r;
    if (PyErr_CheckSignals() < 0) {
      *interrupted = true;
      return r;
    }
  }
}

PyObject* queue_status_error(PyObject* module, QueueStatus s, int64_t id) {
  switch (s) {
    case QueueStatus::kFull:
    case QueueStatus::kTimeout:
      return nullptr;  // the caller picks QueueFull or QueueEmpty
    case QueueStatus::kClosed:
      PyErr_Format(queue_exc(module, &ModuleState::queue_error, PyExc_RuntimeError),
                   "queue %lld is closed (the process is exiting, or its last reference was "
                   "released)", static_cast<long long>(id));
      return nullptr;
    default:
      return nullptr;
  }
}

// --- _QueueHandle: a Python object holding one reference to a queue ---------------------------
// xinterp.queues.Queue keeps one; its methods go straight to the queue (no registry lookup on
// the hot path). Dropping the handle releases the queue reference.

struct QueueHandle {
  PyObject_HEAD
  std::shared_ptr<XQueue>* queue;
  uint64_t fork_generation;  // fork_abandon.h: a handle from before a fork refuses use
};

PyObject* handle_module(PyObject* self) { return PyType_GetModuleByDef(Py_TYPE(self), &kModule); }

PyObject* raise_inherited_queue(PyObject* module, int64_t id) {
  PyErr_Format(queue_exc(module, &ModuleState::queue_error, PyExc_RuntimeError),
               "queue %lld was inherited across fork() and cannot be used in the child; "
               "create a new one there", static_cast<long long>(id));
  return nullptr;
}

// The handle's queue, or nullptr with QueueError set if the handle comes from before a fork.
XQueue* handle_queue(PyObject* self) {
  auto* h = reinterpret_cast<QueueHandle*>(self);
  if (h->fork_generation != fork_generation()) [[unlikely]] {
    PyObject* module = handle_module(self);
    if (module != nullptr) raise_inherited_queue(module, (*h->queue)->id);
    return nullptr;
  }
  return h->queue->get();
}

// Positional-or-keyword parsing for the handle's methods (METH_FASTCALL | METH_KEYWORDS).
// names: every parameter; n_positional: how many may be given by position. Unset -> nullptr.
bool parse_params(const char* fn, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                  const char* const* names, int n_params, int n_positional, int n_required,
                  PyObject** out) {
  for (int k = 0; k < n_params; ++k) out[k] = nullptr;
  if (nargs > n_positional) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments (%zd given)", fn,
                 n_positional, nargs);
    return false;
  }
  for (Py_ssize_t k = 0; k < nargs; ++k) out[k] = args[k];
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, k);
    int found = -1;
    for (int j = 0; j < n_params; ++j) {
      if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0) found = j;
    }
    if (found < 0) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fn, key);
      return false;
    }
    if (out[found] != nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn,
                   names[found]);
      return false;
    }
    out[found] = args[nargs + k];
  }
  for (int k = 0; k < n_required; ++k) {
    if (out[k] == nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fn, names[k]);
      return false;
    }
  }
  return true;
}

bool parse_unbounditems(ModuleState* st, PyObject* arg, UnboundOp deflt, UnboundOp* out) {
  if (arg == nullptr || arg == Py_None) {
    *out = deflt;
    return true;
  }
  for (int k = 0; k < 3; ++k) {
    if (st->unbound_objs[k] != nullptr && arg == st->unbound_objs[k]) {
      *out = static_cast<UnboundOp>(k + 1);
      return true;
    }
  }
  PyErr_Format(PyExc_ValueError,
               "unbounditems must be UNBOUND, UNBOUND_ERROR or UNBOUND_REMOVE, got a %.200s",
               Py_TYPE(arg)->tp_name);
  return false;
}

PyObject* queue_put(PyObject* self, PyObject* obj, bool block, PyObject* timeout_obj,
                    PyObject* unbound_obj, PyObject* syncobj_obj) {
  PyObject* module = handle_module(self);
  if (module == nullptr) return nullptr;
  ModuleState* st = state_of(module);
  XQueue* qp = handle_queue(self);
  if (qp == nullptr) return nullptr;
  XQueue& q = *qp;
  std::optional<std::chrono::nanoseconds> timeout;
  if (!parse_queue_timeout(timeout_obj, &timeout)) return nullptr;
  UnboundOp unbound;
  if (!parse_unbounditems(st, unbound_obj, q.unbound, &unbound)) return nullptr;
  bool syncobj = q.syncobj;
  if (syncobj_obj != nullptr && syncobj_obj != Py_None) {
    const int v = PyObject_IsTrue(syncobj_obj);
    if (v < 0) return nullptr;
    syncobj = v != 0;
  }
  QueueItem item;
  Status s = encode(obj, syncobj ? Fallback::kNone : Fallback::kFull, &item.value);
  if (!s.ok()) return raise(module, s);
  item.sender = (*st->self)->py_id;
  item.unbound = unbound;
  QueueStatus qs = q.items.put(std::move(item), std::chrono::nanoseconds::zero());
  bool interrupted = false;
  if (qs == QueueStatus::kFull && block) {
    // A refused put leaves `item` in place (BlockingQueue moves only on success).
    qs = blocking([&](std::optional<std::chrono::nanoseconds> t) {
      return q.items.put(std::move(item), t);
    }, timeout, QueueStatus::kTimeout, &interrupted);
  }
  if (qs == QueueStatus::kOk) Py_RETURN_NONE;
  if (interrupted) return nullptr;
  if (qs == QueueStatus::kFull || qs == QueueStatus::kTimeout) {
    PyErr_Format(queue_exc(module, &ModuleState::queue_full, PyExc_RuntimeError),
                 "queue %lld is full", static_cast<long long>(q.id));
    return nullptr;
  }
  return queue_status_error(module, qs, q.id);
}

PyObject* queue_get(PyObject* self, bool block, PyObject* timeout_obj) {
  PyObject* module = handle_module(self);
  if (module == nullptr) return nullptr;
  ModuleState* st = state_of(module);
  XQueue* qp = handle_queue(self);
  if (qp == nullptr) return nullptr;
  XQueue& q = *qp;
  std::optional<std::chrono::nanoseconds> timeout;
  if (!parse_queue_timeout(timeout_obj, &timeout)) return nullptr;
  QueueItem item;
  QueueStatus qs = q.items.get(&item, std::chrono::nanoseconds::zero());
  bool interrupted = false;
  if (qs == QueueStatus::kEmpty && block) {
    qs = blocking([&](std::optional<std::chrono::nanoseconds> t) { return q.items.get(&item, t); },
                  timeout, QueueStatus::kTimeout, &interrupted);
  }
  if (qs != QueueStatus::kOk) {
    if (interrupted) return nullptr;
    if (qs == QueueStatus::kEmpty || qs == QueueStatus::kTimeout) {
      PyErr_Format(queue_exc(module, &ModuleState::queue_empty, PyExc_RuntimeError),
                   "queue %lld is empty", static_cast<long long>(q.id));
      return nullptr;
    }
    return queue_status_error(module, qs, q.id);
  }
  if (item.unbound_state == 1 && st->unbound_objs[0] != nullptr) {
    return Py_NewRef(st->unbound_objs[0]);
  }
  if (item.unbound_state != 0) {
    PyErr_SetString(queue_exc(module, &ModuleState::item_destroyed, PyExc_RuntimeError),
                    "the interpreter that put this item was closed");
    return nullptr;
  }
  return decode(item.value);
}

// The unbound policy given as 3.14's `unbounditems` or the 3.13 draft's `unbound`.
bool pick_unbound(PyObject* unbounditems, PyObject* unbound, PyObject** out) {
  const bool a = unbounditems != nullptr && unbounditems != Py_None;
  const bool b = unbound != nullptr && unbound != Py_None;
  if (a && b) {
    PyErr_SetString(PyExc_TypeError, "give unbounditems or unbound, not both");
    return false;
  }
  *out = a ? unbounditems : (b ? unbound : nullptr);
  return true;
}

// put(obj, block=True, timeout=None, *, unbounditems=None, syncobj=None, unbound=None)
// (syncobj and unbound are the 3.13 draft's spellings.)
PyObject* handle_put(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  static const char* const names[] = {"obj", "block", "timeout", "unbounditems", "syncobj",
                                      "unbound"};
  PyObject* a[6];
  if (!parse_params("put", args, nargs, kw, names, 6, 3, 1, a)) return nullptr;
  const int block = a[1] ? PyObject_IsTrue(a[1]) : 1;
  if (block < 0) return nullptr;
  PyObject* unbound;
  if (!pick_unbound(a[3], a[5], &unbound)) return nullptr;
  return queue_put(self, a[0], block != 0, a[2], unbound, a[4]);
}

// put_nowait(obj, *, unbounditems=None, syncobj=None, unbound=None)
PyObject* handle_put_nowait(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                            PyObject* kw) {
  static const char* const names[] = {"obj", "unbounditems", "syncobj", "unbound"};
  PyObject* a[4];
  if (!parse_params("put_nowait", args, nargs, kw, names, 4, 1, 1, a)) return nullptr;
  PyObject* unbound;
  if (!pick_unbound(a[1], a[3], &unbound)) return nullptr;
  return queue_put(self, a[0], false, nullptr, unbound, a[2]);
}

// get(block=True, timeout=None)
PyObject* handle_get(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  static const char* const names[] = {"block", "timeout"};
  PyObject* a[2];
  if (!parse_params("get", args, nargs, kw, names, 2, 2, 0, a)) return nullptr;
  const int block = a[0] ? PyObject_IsTrue(a[0]) : 1;
  if (block < 0) return nullptr;
  return queue_get(self, block != 0, a[1]);
}

PyObject* handle_get_nowait(PyObject* self, PyObject*) { return queue_get(self, false, nullptr); }

// info() -> (size, maxsize, unbound, parked getters, parked putters)
PyObject* handle_info(PyObject* self, PyObject*) {
  XQueue* qp = handle_queue(self);
  if (qp == nullptr) return nullptr;
  XQueue& q = *qp;
  return Py_BuildValue("(nniii)", static_cast<Py_ssize_t>(q.items.size()),
                       static_cast<Py_ssize_t>(q.items.maxsize()), static_cast<int>(q.unbound),
                       q.items.get_waiters(), q.items.put_waiters());
}

PyObject* handle_id(PyObject* self, void*) {
  return PyLong_FromLongLong((*reinterpret_cast<QueueHandle*>(self)->queue)->id);
}

void handle_dealloc(PyObject* self) {
  auto* h = reinterpret_cast<QueueHandle*>(self);
  PyTypeObject* type = Py_TYPE(self);
  if (h->queue != nullptr) {
    const int64_t id = (*h->queue)->id;
    delete h->queue;
    h->queue = nullptr;
    QueueRegistry::get().release(id);
  }
  type->tp_free(self);
  Py_DECREF(type);
}

PyMethodDef kHandleMethods[] = {
    {"put", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(handle_put)),
     METH_FASTCALL | METH_KEYWORDS,
     "put(obj, block=True, timeout=None, *, unbounditems=None, syncobj=None, unbound=None)"},
    {"put_nowait", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(handle_put_nowait)),
     METH_FASTCALL | METH_KEYWORDS, "put_nowait(obj, *, unbounditems=None, syncobj=None, unbound=None)"},
    {"get", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(handle_get)),
     METH_FASTCALL | METH_KEYWORDS, "get(block=True, timeout=None)"},
    {"get_nowait", handle_get_nowait, METH_NOARGS, "get_nowait()"},
    {"info", handle_info, METH_NOARGS, "info() -> (size, maxsize, unbound, parked getters, parked putters)"},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef kHandleGetSet[] = {
    {"id", handle_id, nullptr, "queue id", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot kHandleSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(handle_dealloc)},
    {Py_tp_methods, kHandleMethods},
    {Py_tp_getset, kHandleGetSet},
    {0, nullptr},
};

PyType_Spec kHandleSpec = {
    "xinterp._xinterp._QueueHandle",
    sizeof(QueueHandle),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    kHandleSlots,
};

// queue_handle(id) -> a handle holding one reference to the queue.
PyObject* mod_queue_handle(PyObject* module, PyObject* arg) {
  int64_t id;
  if (!parse_id(arg, &id, "queue")) return nullptr;
  if (!QueueRegistry::get().bind(id)) {
    if (QueueRegistry::get().inherited(id)) return raise_inherited_queue(module, id);
    PyErr_Format(queue_exc(module, &ModuleState::queue_not_found, PyExc_LookupError),
                 "queue %lld not found", static_cast<long long>(id));
    return nullptr;
  }
  std::shared_ptr<XQueue> q = QueueRegistry::get().find(id);
  auto* type = reinterpret_cast<PyTypeObject*>(state_of(module)->queue_handle_type);
  PyObject* h = q ? type->tp_alloc(type, 0) : nullptr;
  if (h == nullptr) {
    QueueRegistry::get().release(id);
    if (!PyErr_Occurred()) {
      PyErr_Format(queue_exc(module, &ModuleState::queue_not_found, PyExc_LookupError),
                   "queue %lld not found", static_cast<long long>(id));
    }
    return nullptr;
  }
  reinterpret_cast<QueueHandle*>(h)->queue = new std::shared_ptr<XQueue>(std::move(q));
  reinterpret_cast<QueueHandle*>(h)->fork_generation = fork_generation();
  return h;
}

PyObject* mod_queue_list_all(PyObject*, PyObject*) {
  auto all = QueueRegistry::get().all();
  PyObject* list = PyList_New(0);
  for (size_t k = 0; list != nullptr && k < all.size(); ++k) {
    PyObject* id = PyLong_FromLongLong(all[k]->id);
    if (id == nullptr || PyList_Append(list, id) < 0) Py_CLEAR(list);
    Py_XDECREF(id);
  }
  return list;
}

PyObject* mod_set_queue_exceptions(PyObject* module, PyObject* args) {
  ModuleState* st = state_of(module);
  PyObject *err, *not_found, *empty, *full, *destroyed, *u1, *u2, *u3;
  if (!PyArg_ParseTuple(args, "OOOOOOOO", &err, &not_found, &empty, &full, &destroyed, &u1, &u2,
                        &u3)) {
    return nullptr;
  }
  for (PyObject* e : {err, not_found, empty, full, destroyed}) {
    if (!PyExceptionClass_Check(e)) return PyErr_Format(PyExc_TypeError, "expected exception "
                                                        "classes, got %.200s", Py_TYPE(e)->tp_name);
  }
  Py_XSETREF(st->item_destroyed, Py_NewRef(destroyed));
  Py_XSETREF(st->unbound_objs[0], Py_NewRef(u1));
  Py_XSETREF(st->unbound_objs[1], Py_NewRef(u2));
  Py_XSETREF(st->unbound_objs[2], Py_NewRef(u3));
  Py_XSETREF(st->queue_error, Py_NewRef(err));
  Py_XSETREF(st->queue_not_found, Py_NewRef(not_found));
  Py_XSETREF(st->queue_empty, Py_NewRef(empty));
  Py_XSETREF(st->queue_full, Py_NewRef(full));
  Py_RETURN_NONE;
}

// --- channels -------------------------------------------------------------------------------

enum ChannelExc { kChannelError, kChannelNotFound, kChannelEmpty, kChannelClosed, kChannelNotEmpty };

PyObject* channel_error(PyObject* module, ChannelExc which, const char* fmt, long long id) {
  PyObject* type = state_of(module)->channel_exc[which];
  PyErr_Format(type ? type : PyExc_RuntimeError, fmt, id);
  return nullptr;
}

std::shared_ptr<XChannel> find_channel(PyObject* module, int64_t id) {
  auto ch = ChannelRegistry::get().find(id);
  if (ch == nullptr) {
    if (ChannelRegistry::get().inherited(id)) {
      channel_error(module, kChannelError, "channel %lld was inherited across fork() and cannot "
                    "be used in the child; create a new one there", id);
    } else if (ChannelRegistry::get().existed(id)) {
      channel_error(module, kChannelClosed, "channel %lld is closed", id);
    } else {
      channel_error(module, kChannelNotFound, "channel %lld not found", id);
    }
  }
  return ch;
}

PyObject* channel_result_error(PyObject* module, ChannelResult r, int64_t id) {
  switch (r) {
    case ChannelResult::kTimeout:
      PyErr_SetString(PyExc_TimeoutError, "timed out");
      return nullptr;
    case ChannelResult::kClosed:
      return channel_error(module, kChannelClosed, "channel %lld is closed", id);
    case ChannelResult::kEmpty:
      return channel_error(module, kChannelEmpty, "channel %lld is empty", id);
    case ChannelResult::kNotEmpty:
      return channel_error(module, kChannelNotEmpty, "channel %lld may not be closed "
                                                     "while it still has items", id);
    case ChannelResult::kNotFound:
      return channel_error(module, kChannelNotFound, "channel %lld not found", id);
    case ChannelResult::kOk:
      break;
  }
  Py_RETURN_NONE;
}

PyObject* mod_channel_create(PyObject*, PyObject* arg) {
  UnboundOp unbound;
  if (!parse_unbound(arg, &unbound)) return nullptr;
  return PyLong_FromLongLong(ChannelRegistry::get().create(unbound));
}

// channel_send(id, obj, unbound (0 = default), wait, timeout, buffer_only)
PyObject* mod_channel_send(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 6) {
    PyErr_SetString(PyExc_TypeError, "channel_send(id, obj, unbound, wait, timeout, buffer_only)");
    return nullptr;
  }
  int64_t id;
  if (!parse_id(args[0], &id, "channel")) return nullptr;
  auto ch = find_channel(module, id);
  if (ch == nullptr) return nullptr;
  UnboundOp unbound = ch->unbound;
  const bool use_default = PyLong_Check(args[2]) && PyObject_Not(args[2]) == 1;  // 0: default
  if (!use_default && !parse_unbound(args[2], &unbound)) return nullptr;
  const int wait = PyObject_IsTrue(args[3]);
  const int buffer_only = PyObject_IsTrue(args[5]);
  if (wait < 0 || buffer_only < 0) return nullptr;
  std::optional<std::chrono::nanoseconds> timeout;
  if (!parse_queue_timeout(args[4], &timeout)) return nullptr;
  if (buffer_only && !PyObject_CheckBuffer(args[1])) {
    PyErr_Format(PyExc_TypeError, "send_buffer() needs an object with the buffer protocol, "
                                  "got %.200s", Py_TYPE(args[1])->tp_name);
    return nullptr;
  }
  ChannelItem item;
  Status s = encode(args[1], Fallback::kFull, &item.value);
  if (!s.ok()) return raise(module, s);
  item.sender = (*state_of(module)->self)->py_id;
  item.unbound = unbound;
  ChannelResult r;
  Py_BEGIN_ALLOW_THREADS
  r = ChannelRegistry::get().send(*ch, std::move(item), wait != 0, timeout);
  Py_END_ALLOW_THREADS
  return channel_result_error(module, r, id);
}

// channel_recv(id, block, timeout) -> (found, obj, unbound_state)
PyObject* mod_channel_recv(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "channel_recv(id, block, timeout)");
    return nullptr;
  }
  int64_t id;
  if (!parse_id(args[0], &id, "channel")) return nullptr;
  auto ch = find_channel(module, id);
  if (ch == nullptr) return nullptr;
  const int block = PyObject_IsTrue(args[1]);
  if (block < 0) return nullptr;
  std::optional<std::chrono::nanoseconds> timeout;
  if (!parse_queue_timeout(args[2], &timeout)) return nullptr;
  if (!block) timeout = std::chrono::nanoseconds::zero();
  ChannelItem item;
  bool interrupted = false;
  ChannelResult r = blocking(
      [&](std::optional<std::chrono::nanoseconds> t) {
        return ChannelRegistry::get().recv(*ch, &item, t);
      },
      timeout, ChannelResult::kTimeout, &interrupted);
  if (interrupted) return nullptr;
  // A blocking recv whose wait ran out (a zero timeout, or none left) reports kEmpty.
  if (r == ChannelResult::kEmpty && block) r = ChannelResult::kTimeout;
  if (r == ChannelResult::kEmpty) return Py_BuildValue("(OOi)", Py_False, Py_None, 0);
  if (r != ChannelResult::kOk) return channel_result_error(module, r, id);
  if (item.unbound_state != 0) {
    return Py_BuildValue("(OOi)", Py_True, Py_None, static_cast<int>(item.unbound_state));
  }
  PyObject* obj = decode(item.value);
  if (obj == nullptr) return nullptr;
  return Py_BuildValue("(ONi)", Py_True, obj, 0);
}

// channel_close(id, send, recv, force)
PyObject* mod_channel_close(PyObject* module, PyObject* args) {
  PyObject* id_obj;
  int send = 0, recv = 0, force = 0;
  if (!PyArg_ParseTuple(args, "Oppp:channel_close", &id_obj, &send, &recv, &force)) {
    return nullptr;
  }
  int64_t id;
  if (!parse_id(id_obj, &id, "channel")) return nullptr;
  ChannelResult r = ChannelRegistry::get().close(id, send, recv, force);
  return channel_result_error(module, r, id);
}

// channel_info(id) -> (state: 0 open, 1 closing, 2 closed, count, unbound, parked receivers)
PyObject* mod_channel_info(PyObject* module, PyObject* arg) {
  int64_t id;
  if (!parse_id(arg, &id, "channel")) return nullptr;
  auto ch = ChannelRegistry::get().find(id);
  if (ch == nullptr) return Py_BuildValue("(inii)", 2, static_cast<Py_ssize_t>(0), 1, 0);
  (void)module;
  return Py_BuildValue("(inii)", static_cast<int>(ch->state.load()),
                       static_cast<Py_ssize_t>(ch->items.size()), static_cast<int>(ch->unbound),
                       ch->items.get_waiters());
}

PyObject* mod_channel_list_all(PyObject*, PyObject*) {
  auto all = ChannelRegistry::get().all();
  PyObject* list = PyList_New(0);
  for (size_t k = 0; list != nullptr && k < all.size(); ++k) {
    if (all[k]->state.load() == ChannelState::kClosed) continue;
    PyObject* item = Py_BuildValue("(Li)", static_cast<long long>(all[k]->id),
                                   static_cast<int>(all[k]->unbound));
    if (item == nullptr || PyList_Append(list, item) < 0) Py_CLEAR(list);
    Py_XDECREF(item);
  }
  return list;
}

PyObject* mod_set_channel_exceptions(PyObject* module, PyObject* args) {
  ModuleState* st = state_of(module);
  PyObject* e[5];
  if (!PyArg_ParseTuple(args, "OOOOO", &e[0], &e[1], &e[2], &e[3], &e[4])) return nullptr;
  for (PyObject* x : e) {
    if (!PyExceptionClass_Check(x)) return PyErr_Format(PyExc_TypeError, "expected exception "
                                                        "classes, got %.200s", Py_TYPE(x)->tp_name);
  }
  for (int k = 0; k < 5; ++k) Py_XSETREF(st->channel_exc[k], Py_NewRef(e[k]));
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
    {"destroy", mod_destroy, METH_VARARGS,
     "destroy(id, borrow_timeout=None): close an interpreter xinterp created."},
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
    {"is_shareable", mod_is_shareable, METH_O,
     "is_shareable(obj) -> bool\n\nTrue for None, bool, int (any size), float, str, bytes, "
     "buffers, xinterp queues, interpreters and channel ends, and tuples of them nested at most "
     "200 deep and holding at most 2**22 values in all, a sub-tuple referenced n times counting "
     "n times (a bigger tuple is False: it is sent by pickle, which keeps shared references "
     "shared and refuses very deep ones)."},
    {"stats", mod_stats, METH_NOARGS, "stats() -> {interpreter id: {counter: int}}"},
    {"runtime_stats", mod_runtime_stats, METH_NOARGS, "runtime_stats() -> dict of totals"},
    {"queue_create", mod_queue_create, METH_VARARGS, "queue_create(maxsize, unbound) -> id"},
    {"queue_release", mod_queue_release, METH_O, "queue_release(id): drop one reference"},
    {"queue_handle", mod_queue_handle, METH_O, "queue_handle(id) -> a handle with one reference"},
    {"queue_list_all", mod_queue_list_all, METH_NOARGS, "queue_list_all() -> [id]"},
    {"_set_queue_exceptions", mod_set_queue_exceptions, METH_VARARGS, "internal"},
    {"channel_create", mod_channel_create, METH_O, "channel_create(unbound) -> id"},
    {"channel_send", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(mod_channel_send)),
     METH_FASTCALL, "channel_send(id, obj, unbound, wait, timeout, buffer_only)"},
    {"channel_recv", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(mod_channel_recv)),
     METH_FASTCALL, "channel_recv(id, block, timeout) -> (found, obj, unbound_state)"},
    {"channel_close", mod_channel_close, METH_VARARGS, "channel_close(id, send, recv, force)"},
    {"channel_info", mod_channel_info, METH_O, "channel_info(id) -> (state, count, unbound)"},
    {"channel_list_all", mod_channel_list_all, METH_NOARGS, "[(id, unbound)]"},
    {"_set_channel_exceptions", mod_set_channel_exceptions, METH_VARARGS, "internal"},
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
  st->shared_buffer_type = make_shared_buffer_type(module);
  if (st->shared_buffer_type == nullptr ||
      PyModule_AddObjectRef(module, "_SharedBuffer", st->shared_buffer_type) < 0) {
    return -1;
  }
  st->queue_handle_type = PyType_FromModuleAndSpec(module, &kHandleSpec, nullptr);
  if (st->queue_handle_type == nullptr) return -1;
  Status s;
  std::shared_ptr<InterpRecord> rec = PythonEngine::get().register_current(&s);
  if (rec == nullptr) {
    raise(module, s);
    return -1;
  }
  st->self = new std::shared_ptr<InterpRecord>(std::move(rec));
  return 0;
}

int module_traverse(PyObject* module, visitproc visit, void* arg) {
  ModuleState* st = state_of(module);
  Py_VISIT(st->interpreter_error);
  Py_VISIT(st->not_found_error);
  Py_VISIT(st->not_shareable_error);
  Py_VISIT(st->shared_buffer_type);
  Py_VISIT(st->queue_handle_type);
  Py_VISIT(st->queue_error);
  Py_VISIT(st->queue_not_found);
  Py_VISIT(st->queue_empty);
  Py_VISIT(st->queue_full);
  Py_VISIT(st->item_destroyed);
  for (PyObject* o : st->channel_exc) Py_VISIT(o);
  for (PyObject* o : st->unbound_objs) Py_VISIT(o);
  return 0;
}

int module_clear(PyObject* module) {
  ModuleState* st = state_of(module);
  Py_CLEAR(st->interpreter_error);
  Py_CLEAR(st->not_found_error);
  Py_CLEAR(st->not_shareable_error);
  Py_CLEAR(st->shared_buffer_type);
  Py_CLEAR(st->queue_handle_type);
  Py_CLEAR(st->queue_error);
  Py_CLEAR(st->queue_not_found);
  Py_CLEAR(st->queue_empty);
  Py_CLEAR(st->queue_full);
  Py_CLEAR(st->item_destroyed);
  for (PyObject*& o : st->channel_exc) Py_CLEAR(o);
  for (PyObject*& o : st->unbound_objs) Py_CLEAR(o);
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
