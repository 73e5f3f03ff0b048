// Queues for Python: the module's queue functions and _QueueHandle, the object through which
// xinterp.queues.Queue puts and gets with no registry lookup on the hot path.
#include <Python.h>

#include <new>
#include <optional>
#include <utility>

#include "bindings/boundary.h"
#include "bindings/exceptions.h"
#include "bindings/loop_waker_capsule.h"
#include "bindings/module_state.h"
#include "engine/fork_generation.h"
#include "objects/queue.h"

namespace xinterp::python {
namespace {

// An InterruptibleWait's wake hook: every waiter of the queue looks at its cancel flag.
void wake_queue(void* q) { static_cast<XQueue*>(q)->items.wake_all(); }

PyObject* mod_queue_create(PyObject*, PyObject* args) {
  Py_ssize_t maxsize;
  PyObject* unbound_obj;
  int syncobj = 0;
  if (!PyArg_ParseTuple(args, "nO|p:queue_create", &maxsize, &unbound_obj, &syncobj)) {
    return nullptr;
  }
  UnboundOp unbound;
  if (!parse_unbound(unbound_obj, &unbound)) return nullptr;
  return PyLong_FromLongLong(QueueRegistry::get().create(maxsize, unbound, syncobj != 0));
}

PyObject* mod_queue_release(PyObject*, PyObject* arg) {
  int64_t id;
  if (!parse_id(arg, &id, "queue")) return nullptr;
  QueueRegistry::get().release(id);
  Py_RETURN_NONE;
}

// Sets the exception for a put/get that did not succeed; returns nullptr.
PyObject* queue_status_error(PyObject* module, QueueStatus s, int64_t id) {
  switch (s) {
    case QueueStatus::kFull:
      return raise_exc(module, Exc::kQueueFull, "queue %lld is full", static_cast<long long>(id));
    case QueueStatus::kEmpty:
      return raise_exc(module, Exc::kQueueEmpty, "queue %lld is empty", static_cast<long long>(id));
    case QueueStatus::kClosed:
      return raise_exc(module, Exc::kQueueError,
                       "queue %lld is closed (the process is exiting, or its last reference was "
                       "released)",
                       static_cast<long long>(id));
    case QueueStatus::kTimeout:  // mapped to kFull or kEmpty by the caller
    case QueueStatus::kOk:
      break;
  }
  PyErr_Format(PyExc_SystemError, "xinterp: unexpected queue status %d", static_cast<int>(s));
  return nullptr;
}

// --- _QueueHandle: a Python object holding one reference to a queue ---------------------------
// xinterp.queues.Queue keeps one; its methods go straight to the queue (no registry lookup on
// the hot path). Dropping the handle releases the queue reference.

struct QueueHandle {
  PyObject_HEAD std::shared_ptr<XQueue>* queue;
  uint64_t fork_generation;  // engine/fork_generation.h: a handle from before a fork refuses use
};

PyObject* raise_inherited_queue(PyObject* module, int64_t id) {
  return raise_exc(module, Exc::kQueueError,
                   "queue %lld was inherited across fork() and cannot be used in the child; "
                   "create a new one there",
                   static_cast<long long>(id));
}

// The handle's queue, or nullptr with QueueError set if the handle comes from before a fork.
XQueue* handle_queue(PyObject* self) {
  auto* h = reinterpret_cast<QueueHandle*>(self);
  if (h->fork_generation != fork_generation()) [[unlikely]] {
    PyObject* module = module_of_type(self);
    if (module != nullptr) raise_inherited_queue(module, (*h->queue)->id);
    return nullptr;
  }
  return h->queue->get();
}

bool parse_unbounditems(ModuleState* st, PyObject* arg, UnboundOp deflt, UnboundOp* out) {
  if (arg == nullptr || arg == Py_None) {
    *out = deflt;
    return true;
  }
  for (int k = 0; k < kMarkerCount; ++k) {
    if (arg == st->unbound_objs[k]) {
      *out = static_cast<UnboundOp>(k + 1);
      return true;
    }
  }
  PyErr_Format(PyExc_ValueError,
               "unbounditems must be UNBOUND, UNBOUND_ERROR or UNBOUND_REMOVE, got a %.200s",
               Py_TYPE(arg)->tp_name);
  return false;
}

// What a put or get starts with: the handle's module and queue, and the timeout argument.
struct QueueCall {
  PyObject* module;
  ModuleState* st;
  XQueue* q;
  std::optional<std::chrono::nanoseconds> timeout;
};

// false with an exception set: a handle from before a fork, or a bad timeout.
bool begin_call(PyObject* self, PyObject* timeout_obj, QueueCall* call) {
  call->module = module_of_type(self);
  if (call->module == nullptr) return false;
  call->st = state_of(call->module);
  call->q = handle_queue(self);
  return call->q != nullptr && parse_timeout(timeout_obj, &call->timeout);
}

PyObject* queue_put(PyObject* self, PyObject* obj, bool block, PyObject* timeout_obj,
                    PyObject* unbound_obj, PyObject* syncobj_obj) {
  QueueCall call;
  if (!begin_call(self, timeout_obj, &call)) return nullptr;
  PyObject* module = call.module;
  ModuleState* st = call.st;
  XQueue& q = *call.q;
  UnboundOp unbound;
  if (!parse_unbounditems(st, unbound_obj, q.unbound, &unbound)) return nullptr;
  bool syncobj = q.syncobj;
  if (syncobj_obj != nullptr && syncobj_obj != Py_None) {
    const int v = PyObject_IsTrue(syncobj_obj);
    if (v < 0) return nullptr;
    syncobj = v != 0;
  }
  Item item;
  const Sender sender{st->self, &st->classes};
  Status s = encode(obj, syncobj ? Fallback::kNone : Fallback::kFull, &item.value, &sender);
  if (!s.ok()) return raise(module, s);
  item.sender = (*st->self)->py_id;
  item.unbound = unbound;
  // The queue's node is allocated in put(), possibly without the GIL: a failure is noted, not
  // thrown through blocking(), and raised as MemoryError with nothing queued.
  bool no_memory = false;
  std::optional<InterruptibleWait> wait;  // only around a blocking wait
  auto put = [&](std::optional<std::chrono::nanoseconds> t) {
    try {
      return q.items.put(std::move(item), t, wait ? wait->cancel() : nullptr);
    } catch (const std::bad_alloc&) {
      no_memory = true;
      return QueueStatus::kClosed;
    }
  };
  QueueStatus qs = put(std::chrono::nanoseconds::zero());
  bool interrupted = false;
  if (qs == QueueStatus::kFull && block) {
    // A refused put leaves `item` in place (BlockingQueue moves only on success).
    wait.emplace(&wake_queue, &q);
    qs = blocking(put, call.timeout, QueueStatus::kTimeout, &interrupted);
  }
  if (qs == QueueStatus::kOk) Py_RETURN_NONE;
  if (no_memory) return PyErr_NoMemory();
  if (interrupted) return nullptr;
  return queue_status_error(module, qs == QueueStatus::kTimeout ? QueueStatus::kFull : qs, q.id);
}

PyObject* queue_get(PyObject* self, bool block, PyObject* timeout_obj) {
  QueueCall call;
  if (!begin_call(self, timeout_obj, &call)) return nullptr;
  PyObject* module = call.module;
  ModuleState* st = call.st;
  XQueue& q = *call.q;
  Item item;
  QueueStatus qs = q.items.get(&item, std::chrono::nanoseconds::zero());
  bool interrupted = false;
  if (qs == QueueStatus::kEmpty && block) {
    InterruptibleWait wait(&wake_queue, &q);
    qs = blocking(
        [&](std::optional<std::chrono::nanoseconds> t) {
          return q.items.get(&item, t, wait.cancel());
        },
        call.timeout, QueueStatus::kTimeout, &interrupted);
  }
  if (qs != QueueStatus::kOk) {
    if (interrupted) return nullptr;
    return queue_status_error(module, qs == QueueStatus::kTimeout ? QueueStatus::kEmpty : qs, q.id);
  }
  if (item.state == UnboundState::kReplaced) return Py_NewRef(st->unbound_objs[0]);
  if (item.state == UnboundState::kError) {
    return raise_exc(module, Exc::kQueueItemDestroyed,
                     "the interpreter that put this item was closed");
  }
  return decode(item.value, &st->classes);
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
  static const char* const names[] = {"obj",          "block",   "timeout",
                                      "unbounditems", "syncobj", "unbound"};
  PyObject* a[6];
  if (!parse_params("put", args, nargs, kw, names, 6, 3, 1, a)) return nullptr;
  const int block = parse_bool(a[1], true);
  if (block < 0) return nullptr;
  PyObject* unbound;
  if (!pick_unbound(a[3], a[5], &unbound)) return nullptr;
  return queue_put(self, a[0], block != 0, a[2], unbound, a[4]);
}

// put_nowait(obj, *, unbounditems=None, syncobj=None, unbound=None)
PyObject* handle_put_nowait(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
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
  const int block = parse_bool(a[0], true);
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
                       static_cast<Py_ssize_t>(q.maxsize), static_cast<int>(q.unbound),
                       q.items.get_waiters(), q.items.put_waiters());
}

// --- Async waiters (xinterp._aio): a coroutine parks no thread --------------------------------
// watch_get(waker, token) / watch_put(waker, token) -> ticket: the waker (a loop's, see
// loop_waker_capsule.h) is told `token` when an item / room appears or the queue closes (at
// once if there is one now). unwatch_get/put(ticket) -> False if it was woken already;
// pass_on_get/put(): the woken coroutine did not use its wake-up (cancelled): the next one gets
// it. async_waiters() -> (getters, putters) registered now.

template <bool kGet>
PyObject* handle_watch(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "watch(waker, token)");
    return nullptr;
  }
  XQueue* q = handle_queue(self);
  if (q == nullptr) return nullptr;
  std::shared_ptr<LoopWaker> waker = loop_waker_of(args[0]);
  if (waker == nullptr) return nullptr;
  const unsigned long long token = PyLong_AsUnsignedLongLong(args[1]);
  if (token == static_cast<unsigned long long>(-1) && PyErr_Occurred()) return nullptr;
  uint64_t ticket;
  try {
    ticket = kGet ? q->items.watch_get(std::move(waker), token)
                  : q->items.watch_put(std::move(waker), token);
  } catch (const std::bad_alloc&) {
    return PyErr_NoMemory();
  }
  return PyLong_FromUnsignedLongLong(ticket);
}

template <bool kGet>
PyObject* handle_unwatch(PyObject* self, PyObject* arg) {
  XQueue* q = handle_queue(self);
  if (q == nullptr) return nullptr;
  const unsigned long long ticket = PyLong_AsUnsignedLongLong(arg);
  if (ticket == static_cast<unsigned long long>(-1) && PyErr_Occurred()) return nullptr;
  return PyBool_FromLong(kGet ? q->items.unwatch_get(ticket) : q->items.unwatch_put(ticket));
}

template <bool kGet>
PyObject* handle_pass_on(PyObject* self, PyObject*) {
  XQueue* q = handle_queue(self);
  if (q == nullptr) return nullptr;
  if (kGet) {
    q->items.pass_on_get();
  } else {
    q->items.pass_on_put();
  }
  Py_RETURN_NONE;
}

PyObject* handle_async_waiters(PyObject* self, PyObject*) {
  XQueue* q = handle_queue(self);
  if (q == nullptr) return nullptr;
  return Py_BuildValue("(nn)", static_cast<Py_ssize_t>(q->items.async_get_waiters()),
                       static_cast<Py_ssize_t>(q->items.async_put_waiters()));
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
    {"put", fastcall(handle_put), METH_FASTCALL | METH_KEYWORDS,
     "put(obj, block=True, timeout=None, *, unbounditems=None, syncobj=None, unbound=None)"},
    {"put_nowait", fastcall(handle_put_nowait), METH_FASTCALL | METH_KEYWORDS,
     "put_nowait(obj, *, unbounditems=None, syncobj=None, unbound=None)"},
    {"get", fastcall(handle_get), METH_FASTCALL | METH_KEYWORDS, "get(block=True, timeout=None)"},
    {"get_nowait", handle_get_nowait, METH_NOARGS, "get_nowait()"},
    {"info", handle_info, METH_NOARGS,
     "info() -> (size, maxsize, unbound, parked getters, parked putters)"},
    {"watch_get", fastcall(handle_watch<true>), METH_FASTCALL, "watch_get(waker, token) -> ticket"},
    {"watch_put", fastcall(handle_watch<false>), METH_FASTCALL,
     "watch_put(waker, token) -> ticket"},
    {"unwatch_get", handle_unwatch<true>, METH_O, "unwatch_get(ticket) -> False if woken already"},
    {"unwatch_put", handle_unwatch<false>, METH_O, "unwatch_put(ticket) -> False if woken already"},
    {"pass_on_get", handle_pass_on<true>, METH_NOARGS, "pass_on_get(): hand an unused wake-up on"},
    {"pass_on_put", handle_pass_on<false>, METH_NOARGS, "pass_on_put(): hand an unused wake-up on"},
    {"async_waiters", handle_async_waiters, METH_NOARGS,
     "async_waiters() -> (coroutines waiting to get, to put)"},
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

PyObject* raise_queue_not_found(PyObject* module, int64_t id) {
  return raise_exc(module, Exc::kQueueNotFound, "queue %lld not found", static_cast<long long>(id));
}

// queue_handle(id) -> a handle holding one reference to the queue.
PyObject* mod_queue_handle(PyObject* module, PyObject* arg) {
  int64_t id;
  if (!parse_id(arg, &id, "queue")) return nullptr;
  if (!QueueRegistry::get().bind(id)) {
    if (QueueRegistry::get().inherited(id)) return raise_inherited_queue(module, id);
    return raise_queue_not_found(module, id);
  }
  std::shared_ptr<XQueue> q = QueueRegistry::get().find(id);
  auto* type = reinterpret_cast<PyTypeObject*>(state_of(module)->queue_handle_type);
  PyObject* h = q ? type->tp_alloc(type, 0) : nullptr;
  if (h == nullptr) {
    QueueRegistry::get().release(id);
    return PyErr_Occurred() ? nullptr : raise_queue_not_found(module, id);
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

PyMethodDef kMethods[] = {
    {"queue_create", mod_queue_create, METH_VARARGS,
     "queue_create(maxsize, unbound) -> id (maxsize <= 0: unbounded, kept as given)"},
    {"queue_release", mod_queue_release, METH_O, "queue_release(id): drop one reference"},
    {"queue_handle", mod_queue_handle, METH_O, "queue_handle(id) -> a handle with one reference"},
    {"queue_list_all", mod_queue_list_all, METH_NOARGS, "queue_list_all() -> [id]"},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int add_queue_functions(PyObject* module) {
  ModuleState* st = state_of(module);
  // The unbounditems policies, defined once (objects/item.h).
  const std::pair<const char*, UnboundOp> ops[] = {{"UNBOUNDITEMS_REPLACE", UnboundOp::kReplace},
                                                   {"UNBOUNDITEMS_ERROR", UnboundOp::kError},
                                                   {"UNBOUNDITEMS_REMOVE", UnboundOp::kRemove}};
  for (const auto& [name, op] : ops) {
    if (PyModule_AddIntConstant(module, name, static_cast<long>(op)) < 0) return -1;
  }
  st->queue_handle_type = PyType_FromModuleAndSpec(module, &kHandleSpec, nullptr);
  if (st->queue_handle_type == nullptr) return -1;
  if (add_loop_waker_functions(module) < 0) return -1;
  return PyModule_AddFunctions(module, kMethods);
}

}  // namespace xinterp::python
