// Channels for Python (PEP 554, as in CPython 3.13's draft package): the module's channel
// functions, over ChannelRegistry. xinterp.channels wraps them in RecvChannel and SendChannel.
#include <Python.h>

#include <new>
#include <optional>
#include <utility>

#include "bindings/boundary.h"
#include "bindings/exceptions.h"
#include "bindings/loop_waker_capsule.h"
#include "bindings/module_state.h"
#include "engine/fork_generation.h"
#include "objects/channel.h"

namespace xinterp::python {
namespace {

// InterruptibleWait's wake hooks: the waiters look at their cancel flag.
void wake_channel(void* ch) { static_cast<XChannel*>(ch)->items.wake_all(); }
void wake_receipt(void* r) { ChannelRegistry::wake_receipt(*static_cast<Receipt*>(r)); }

PyObject* channel_error(PyObject* module, Exc which, const char* fmt, int64_t id) {
  return raise_exc(module, which, fmt, static_cast<long long>(id));
}

// The open channel whose id is `arg`, or nullptr with the error set (a bad id, not found,
// closed, or inherited across fork()).
std::shared_ptr<XChannel> find_channel(PyObject* module, PyObject* arg) {
  int64_t id;
  if (!parse_id(arg, &id, "channel")) return nullptr;
  auto ch = ChannelRegistry::get().find(id);
  if (ch == nullptr) {
    if (ChannelRegistry::get().inherited(id)) {
      channel_error(module, Exc::kChannelError,
                    "channel %lld was inherited across fork() and cannot "
                    "be used in the child; create a new one there",
                    id);
    } else if (ChannelRegistry::get().existed(id)) {
      channel_error(module, Exc::kChannelClosed, "channel %lld is closed", id);
    } else {
      channel_error(module, Exc::kChannelNotFound, "channel %lld not found", id);
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
      return channel_error(module, Exc::kChannelClosed, "channel %lld is closed", id);
    case ChannelResult::kEmpty:
      return channel_error(module, Exc::kChannelEmpty, "channel %lld is empty", id);
    case ChannelResult::kNotEmpty:
      return channel_error(module, Exc::kChannelNotEmpty,
                           "channel %lld may not be closed "
                           "while it still has items",
                           id);
    case ChannelResult::kNotFound:
      return channel_error(module, Exc::kChannelNotFound, "channel %lld not found", id);
    case ChannelResult::kNoMemory:
      return PyErr_NoMemory();
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

// Encodes obj and queues it on ch (with a receipt in *receipt when `wait`); false with the
// error set if it could not. unbound_arg is a policy flag (0: the channel's default).
bool post_on(PyObject* module, XChannel& ch, PyObject* obj, PyObject* unbound_arg, bool wait,
             bool buffer_only, std::shared_ptr<Receipt>* receipt) {
  UnboundOp unbound = ch.unbound;
  const bool use_default = PyLong_Check(unbound_arg) && PyObject_Not(unbound_arg) == 1;
  if (!use_default && !parse_unbound(unbound_arg, &unbound)) return false;
  if (buffer_only && !PyObject_CheckBuffer(obj)) {
    PyErr_Format(PyExc_TypeError,
                 "send_buffer() needs an object with the buffer protocol, got %.200s",
                 Py_TYPE(obj)->tp_name);
    return false;
  }
  Item item;
  ModuleState* st = state_of(module);
  const Sender sender{st->self, &st->classes};
  // send_buffer() lends the buffer (as 3.13's draft does): through a memoryview, the one kind of
  // buffer that is shared without a copy.
  PyObject* view = buffer_only ? PyMemoryView_FromObject(obj) : Py_NewRef(obj);
  if (view == nullptr) return false;
  Status s = encode(view, Fallback::kFull, &item.value, &sender);
  Py_DECREF(view);
  if (!s.ok()) {
    raise(module, s);
    return false;
  }
  item.sender = (*st->self)->py_id;
  item.unbound = unbound;
  ChannelResult r;
  Py_BEGIN_ALLOW_THREADS
  r = ChannelRegistry::get().post(ch, std::move(item), wait, receipt);
  Py_END_ALLOW_THREADS
  if (r != ChannelResult::kOk) {
    channel_result_error(module, r, ch.id);
    return false;
  }
  return true;
}

// Sends obj on ch: unbound_arg is a policy flag (0: the channel's default); the rest are truth
// values and a timeout.
PyObject* send_on(PyObject* module, XChannel& ch, PyObject* obj, PyObject* unbound_arg,
                  PyObject* wait_arg, PyObject* timeout_arg, PyObject* buffer_only_arg) {
  const int wait = PyObject_IsTrue(wait_arg);
  const int buffer_only = PyObject_IsTrue(buffer_only_arg);
  if (wait < 0 || buffer_only < 0) return nullptr;
  std::optional<std::chrono::nanoseconds> timeout;
  if (!parse_timeout(timeout_arg, &timeout)) return nullptr;
  std::shared_ptr<Receipt> receipt;
  if (!post_on(module, ch, obj, unbound_arg, wait != 0, buffer_only != 0, &receipt)) {
    return nullptr;
  }
  if (receipt == nullptr) Py_RETURN_NONE;
  ChannelRegistry& channels = ChannelRegistry::get();
  ChannelResult r;
  // Wait in slices so that a signal handler (Ctrl-C) runs; the item is withdrawn if it raises
  // or the timeout passes before a receiver took it.
  bool interrupted = false;
  InterruptibleWait interruptible(&wake_receipt, receipt.get());
  r = blocking(
      [&](std::optional<std::chrono::nanoseconds> t) {
        return channels.await_receipt(ch, *receipt, t, interruptible.cancel());
      },
      timeout, ChannelResult::kTimeout, &interrupted);
  if (r == ChannelResult::kTimeout) r = ChannelRegistry::withdraw(*receipt);
  if (interrupted) return nullptr;
  return channel_result_error(module, r, ch.id);
}

// channel_send(id, obj, unbound (0 = default), wait, timeout, buffer_only)
PyObject* mod_channel_send(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 6) {
    PyErr_SetString(PyExc_TypeError, "channel_send(id, obj, unbound, wait, timeout, buffer_only)");
    return nullptr;
  }
  auto ch = find_channel(module, args[0]);
  if (ch == nullptr) return nullptr;
  return send_on(module, *ch, args[1], args[2], args[3], args[4], args[5]);
}

// channel_recv(id, block, timeout) -> (found, obj); obj is UNBOUND for an item whose sender
// closed (policy UNBOUND), and ItemInterpreterDestroyed is raised for one with UNBOUND_ERROR.
PyObject* recv_on(PyObject* module, XChannel& ch, PyObject* block_arg, PyObject* timeout_arg) {
  const int64_t id = ch.id;
  const int block = PyObject_IsTrue(block_arg);
  if (block < 0) return nullptr;
  std::optional<std::chrono::nanoseconds> timeout;
  if (!parse_timeout(timeout_arg, &timeout)) return nullptr;
  if (!block) timeout = std::chrono::nanoseconds::zero();
  Item item;
  bool interrupted = false;
  std::optional<InterruptibleWait> wait;  // only when it may block
  if (timeout != std::chrono::nanoseconds::zero()) wait.emplace(&wake_channel, &ch);
  ChannelResult r = blocking(
      [&](std::optional<std::chrono::nanoseconds> t) {
        return ChannelRegistry::get().recv(ch, &item, t, wait ? wait->cancel() : nullptr);
      },
      timeout, ChannelResult::kTimeout, &interrupted);
  if (interrupted) return nullptr;
  // A blocking recv whose wait ran out (a zero timeout, or none left) reports kEmpty.
  if (r == ChannelResult::kEmpty && block) r = ChannelResult::kTimeout;
  if (r == ChannelResult::kEmpty) return Py_BuildValue("(OO)", Py_False, Py_None);
  if (r != ChannelResult::kOk) return channel_result_error(module, r, id);
  ModuleState* st = state_of(module);
  if (item.state == UnboundState::kReplaced) {
    return Py_BuildValue("(OO)", Py_True, st->unbound_objs[0]);
  }
  if (item.state == UnboundState::kError) {
    return raise_exc(module, Exc::kChannelItemDestroyed,
                     "the interpreter that sent this item was closed");
  }
  PyObject* obj = decode(item.value, &st->classes);
  if (obj == nullptr) return nullptr;
  return Py_BuildValue("(ON)", Py_True, obj);
}

PyObject* mod_channel_recv(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "channel_recv(id, block, timeout)");
    return nullptr;
  }
  auto ch = find_channel(module, args[0]);
  if (ch == nullptr) return nullptr;
  return recv_on(module, *ch, args[1], args[2]);
}

// --- _ChannelHandle: a channel end's way to its channel, with no registry lookup per call -----

struct ChannelHandle {
  PyObject_HEAD std::shared_ptr<XChannel>* ch;
  uint64_t fork_generation;  // engine/fork_generation.h: a handle from before a fork refuses use
};

// The handle's channel, or nullptr with ChannelError set if the handle comes from before a fork.
XChannel* handle_channel(PyObject* self, PyObject** module) {
  auto* h = reinterpret_cast<ChannelHandle*>(self);
  *module = module_of_type(self);
  if (*module == nullptr) return nullptr;
  if (h->fork_generation != fork_generation()) [[unlikely]] {
    channel_error(*module, Exc::kChannelError,
                  "channel %lld was inherited across fork() and cannot be used in the child; "
                  "create a new one there",
                  (*h->ch)->id);
    return nullptr;
  }
  return h->ch->get();
}

// send(obj, unbound, wait, timeout, buffer_only), as channel_send without the id.
PyObject* handle_send(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 5) {
    PyErr_SetString(PyExc_TypeError, "send(obj, unbound, wait, timeout, buffer_only)");
    return nullptr;
  }
  PyObject* module;
  XChannel* ch = handle_channel(self, &module);
  if (ch == nullptr) return nullptr;
  return send_on(module, *ch, args[0], args[1], args[2], args[3], args[4]);
}

// recv(block, timeout) -> (found, obj), as channel_recv without the id.
PyObject* handle_recv(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "recv(block, timeout)");
    return nullptr;
  }
  PyObject* module;
  XChannel* ch = handle_channel(self, &module);
  if (ch == nullptr) return nullptr;
  return recv_on(module, *ch, args[0], args[1]);
}

// --- asyncio (xinterp._aio): arecv/asend park no thread ---------------------------------------
// watch_recv(waker, token) -> ticket / unwatch_recv(ticket) / pass_on_recv(): as the queues'
// (queue_functions.cc). post(obj, unbound, buffer_only) -> receipt: queues obj for asend(); the
// receipt's module functions below tell, wait for and withdraw it.

PyObject* handle_watch_recv(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "watch_recv(waker, token)");
    return nullptr;
  }
  PyObject* module;
  XChannel* ch = handle_channel(self, &module);
  if (ch == nullptr) return nullptr;
  std::shared_ptr<LoopWaker> waker = loop_waker_of(args[0]);
  if (waker == nullptr) return nullptr;
  const unsigned long long token = PyLong_AsUnsignedLongLong(args[1]);
  if (token == static_cast<unsigned long long>(-1) && PyErr_Occurred()) return nullptr;
  try {
    return PyLong_FromUnsignedLongLong(ch->items.watch_get(std::move(waker), token));
  } catch (const std::bad_alloc&) {
    return PyErr_NoMemory();
  }
}

PyObject* handle_unwatch_recv(PyObject* self, PyObject* arg) {
  PyObject* module;
  XChannel* ch = handle_channel(self, &module);
  if (ch == nullptr) return nullptr;
  const unsigned long long ticket = PyLong_AsUnsignedLongLong(arg);
  if (ticket == static_cast<unsigned long long>(-1) && PyErr_Occurred()) return nullptr;
  return PyBool_FromLong(ch->items.unwatch_get(ticket));
}

PyObject* handle_pass_on_recv(PyObject* self, PyObject*) {
  PyObject* module;
  XChannel* ch = handle_channel(self, &module);
  if (ch == nullptr) return nullptr;
  ch->items.pass_on_get();
  Py_RETURN_NONE;
}

constexpr const char* kReceiptCapsule = "xinterp._channel_receipt";

void receipt_capsule_destructor(PyObject* capsule) {
  delete static_cast<std::shared_ptr<Receipt>*>(PyCapsule_GetPointer(capsule, kReceiptCapsule));
}

Receipt* receipt_of(PyObject* capsule) {
  if (!PyCapsule_IsValid(capsule, kReceiptCapsule)) {
    PyErr_Format(PyExc_TypeError, "expected a channel receipt, got %.200s",
                 Py_TYPE(capsule)->tp_name);
    return nullptr;
  }
  return static_cast<std::shared_ptr<Receipt>*>(PyCapsule_GetPointer(capsule, kReceiptCapsule))
      ->get();
}

// post(obj, unbound, buffer_only) -> receipt
PyObject* handle_post(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "post(obj, unbound, buffer_only)");
    return nullptr;
  }
  PyObject* module;
  XChannel* ch = handle_channel(self, &module);
  if (ch == nullptr) return nullptr;
  const int buffer_only = PyObject_IsTrue(args[2]);
  if (buffer_only < 0) return nullptr;
  std::shared_ptr<Receipt> receipt;
  if (!post_on(module, *ch, args[0], args[1], true, buffer_only != 0, &receipt)) return nullptr;
  auto* p = new std::shared_ptr<Receipt>(std::move(receipt));
  PyObject* capsule = PyCapsule_New(p, kReceiptCapsule, receipt_capsule_destructor);
  if (capsule == nullptr) {
    ChannelRegistry::withdraw(**p);  // nobody will wait for it
    delete p;
  }
  return capsule;
}

// channel_receipt_state(receipt) -> 0 pending, 1 received, 2 closed (withdrawn)
PyObject* mod_receipt_state(PyObject*, PyObject* arg) {
  Receipt* r = receipt_of(arg);
  return r ? PyLong_FromLong(static_cast<long>(receipt_state(*r))) : nullptr;
}

PyObject* mod_receipt_watch(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "channel_receipt_watch(receipt, waker, token)");
    return nullptr;
  }
  Receipt* r = receipt_of(args[0]);
  if (r == nullptr) return nullptr;
  std::shared_ptr<LoopWaker> waker = loop_waker_of(args[1]);
  if (waker == nullptr) return nullptr;
  const unsigned long long token = PyLong_AsUnsignedLongLong(args[2]);
  if (token == static_cast<unsigned long long>(-1) && PyErr_Occurred()) return nullptr;
  try {
    return PyLong_FromUnsignedLongLong(receipt_watch(*r, std::move(waker), token));
  } catch (const std::bad_alloc&) {
    return PyErr_NoMemory();
  }
}

PyObject* mod_receipt_unwatch(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "channel_receipt_unwatch(receipt, ticket)");
    return nullptr;
  }
  Receipt* r = receipt_of(args[0]);
  if (r == nullptr) return nullptr;
  const unsigned long long ticket = PyLong_AsUnsignedLongLong(args[1]);
  if (ticket == static_cast<unsigned long long>(-1) && PyErr_Occurred()) return nullptr;
  return PyBool_FromLong(r->waiters.remove(ticket));
}

// channel_receipt_withdraw(receipt) -> True if it had been received after all (then it stays
// delivered), False if withdrawn (a receiver skips it).
PyObject* mod_receipt_withdraw(PyObject*, PyObject* arg) {
  Receipt* r = receipt_of(arg);
  if (r == nullptr) return nullptr;
  return PyBool_FromLong(ChannelRegistry::withdraw(*r) == ChannelResult::kOk);
}

void channel_handle_dealloc(PyObject* self) {
  auto* h = reinterpret_cast<ChannelHandle*>(self);
  PyTypeObject* type = Py_TYPE(self);
  delete h->ch;
  h->ch = nullptr;
  type->tp_free(self);
  Py_DECREF(type);
}

PyMethodDef kHandleMethods[] = {
    {"send", fastcall(handle_send), METH_FASTCALL,
     "send(obj, unbound, wait, timeout, buffer_only)"},
    {"recv", fastcall(handle_recv), METH_FASTCALL, "recv(block, timeout) -> (found, obj)"},
    {"watch_recv", fastcall(handle_watch_recv), METH_FASTCALL,
     "watch_recv(waker, token) -> ticket"},
    {"unwatch_recv", handle_unwatch_recv, METH_O, "unwatch_recv(ticket) -> False if woken"},
    {"pass_on_recv", handle_pass_on_recv, METH_NOARGS, "pass_on_recv(): hand a wake-up on"},
    {"post", fastcall(handle_post), METH_FASTCALL, "post(obj, unbound, buffer_only) -> receipt"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot kHandleSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(channel_handle_dealloc)},
    {Py_tp_methods, kHandleMethods},
    {0, nullptr},
};

PyType_Spec kHandleSpec = {
    "xinterp._xinterp._ChannelHandle",
    sizeof(ChannelHandle),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    kHandleSlots,
};

// channel_handle(id) -> a handle on an open channel (errors as channel_send's).
PyObject* mod_channel_handle(PyObject* module, PyObject* arg) {
  std::shared_ptr<XChannel> ch = find_channel(module, arg);
  if (ch == nullptr) return nullptr;
  auto* type = reinterpret_cast<PyTypeObject*>(state_of(module)->channel_handle_type);
  PyObject* h = type->tp_alloc(type, 0);
  if (h == nullptr) return nullptr;
  reinterpret_cast<ChannelHandle*>(h)->ch = new std::shared_ptr<XChannel>(std::move(ch));
  reinterpret_cast<ChannelHandle*>(h)->fork_generation = fork_generation();
  return h;
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
  if (ch == nullptr) {
    return Py_BuildValue("(inii)", static_cast<int>(ChannelState::kClosed),
                         static_cast<Py_ssize_t>(0), static_cast<int>(UnboundOp::kReplace), 0);
  }
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

PyMethodDef kMethods[] = {
    {"channel_create", mod_channel_create, METH_O, "channel_create(unbound) -> id"},
    {"channel_send", fastcall(mod_channel_send), METH_FASTCALL,
     "channel_send(id, obj, unbound, wait, timeout, buffer_only)"},
    {"channel_recv", fastcall(mod_channel_recv), METH_FASTCALL,
     "channel_recv(id, block, timeout) -> (found, obj)"},
    {"channel_handle", mod_channel_handle, METH_O, "channel_handle(id) -> a handle"},
    {"channel_close", mod_channel_close, METH_VARARGS, "channel_close(id, send, recv, force)"},
    {"channel_info", mod_channel_info, METH_O,
     "channel_info(id) -> (state, count, unbound, parked receivers)"},
    {"channel_list_all", mod_channel_list_all, METH_NOARGS, "[(id, unbound)]"},
    {"channel_receipt_state", mod_receipt_state, METH_O,
     "channel_receipt_state(receipt) -> 0 pending, 1 received, 2 closed"},
    {"channel_receipt_watch", fastcall(mod_receipt_watch), METH_FASTCALL,
     "channel_receipt_watch(receipt, waker, token) -> ticket"},
    {"channel_receipt_unwatch", fastcall(mod_receipt_unwatch), METH_FASTCALL,
     "channel_receipt_unwatch(receipt, ticket) -> False if woken"},
    {"channel_receipt_withdraw", mod_receipt_withdraw, METH_O,
     "channel_receipt_withdraw(receipt) -> True if it was received after all"},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int add_channel_functions(PyObject* module) {
  ModuleState* st = state_of(module);
  st->channel_handle_type = PyType_FromModuleAndSpec(module, &kHandleSpec, nullptr);
  if (st->channel_handle_type == nullptr) return -1;
  // The channel states, defined once (objects/channel.h).
  const std::pair<const char*, ChannelState> states[] = {
      {"CHANNEL_OPEN", ChannelState::kOpen},
      {"CHANNEL_CLOSING", ChannelState::kClosing},
      {"CHANNEL_CLOSED", ChannelState::kClosed}};
  for (const auto& [name, state] : states) {
    if (PyModule_AddIntConstant(module, name, static_cast<long>(state)) < 0) return -1;
  }
  return PyModule_AddFunctions(module, kMethods);
}

}  // namespace xinterp::python
