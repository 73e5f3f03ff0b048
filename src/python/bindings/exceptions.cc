#include "bindings/exceptions.h"

#include <cstdarg>
#include <string>

#include "bindings/module_state.h"
#include "objects/item.h"

namespace xinterp::python {
namespace {

// A base of an exception: one of ours (by Exc) or a builtin / stdlib class.
struct Base {
  int ours = -1;  // an Exc, or -1
  PyObject* (*other)() = nullptr;
};
Base ours(Exc e) { return Base{static_cast<int>(e), nullptr}; }

PyObject* exception() { return PyExc_Exception; }
PyObject* runtime_error() { return PyExc_RuntimeError; }
PyObject* type_error() { return PyExc_TypeError; }
PyObject* value_error() { return PyExc_ValueError; }
// queue.Empty and queue.Full, so that code catching those keeps working (as in CPython 3.14).
PyObject* stdlib_queue_attr(const char* name) {
  PyObject* mod = PyImport_ImportModule("queue");
  if (mod == nullptr) return nullptr;
  PyObject* cls = PyObject_GetAttrString(mod, name);
  Py_DECREF(mod);
  Py_XDECREF(cls);  // a borrowed reference: the queue module keeps its classes alive
  return cls;
}
PyObject* queue_empty() { return stdlib_queue_attr("Empty"); }
PyObject* queue_full() { return stdlib_queue_attr("Full"); }

struct ExcSpec {
  Exc which;
  const char* qualified;  // module.Name, as users see it
  const char* attr;       // the name in _xinterp
  Base bases[2];
  const char* doc;
};

const ExcSpec kSpecs[kExcCount] = {
    {Exc::kInterpreterError,
     "xinterp.InterpreterError",
     "InterpreterError",
     {{-1, exception}, {}},
     "A cross-interpreter operation failed."},
    {Exc::kInterpreterNotFound,
     "xinterp.InterpreterNotFoundError",
     "InterpreterNotFoundError",
     {ours(Exc::kInterpreterError), {}},
     "An interpreter was not found."},
    {Exc::kNotShareable,
     "xinterp.NotShareableError",
     "NotShareableError",
     // PEP 734 drafts made it a ValueError, CPython 3.14 a TypeError: catchable as either.
     {{-1, type_error}, {-1, value_error}},
     "The object is not shareable between interpreters."},
    {Exc::kQueueError,
     "xinterp.queues.QueueError",
     "QueueError",
     {ours(Exc::kInterpreterError), {-1, runtime_error}},
     "Indicates that a queue-related error happened."},
    {Exc::kQueueNotFound,
     "xinterp.queues.QueueNotFoundError",
     "QueueNotFoundError",
     {ours(Exc::kQueueError), {}},
     "The queue does not exist (any more)."},
    {Exc::kQueueEmpty,
     "xinterp.queues.QueueEmpty",
     "QueueEmpty",
     {ours(Exc::kQueueError), {-1, queue_empty}},
     "Raised from get_nowait() when the queue is empty, and from get() when it times out."},
    {Exc::kQueueFull,
     "xinterp.queues.QueueFull",
     "QueueFull",
     {ours(Exc::kQueueError), {-1, queue_full}},
     "Raised from put_nowait() when the queue is full, and from put() when it times out."},
    {Exc::kQueueItemDestroyed,
     "xinterp.queues.ItemInterpreterDestroyed",
     "_QueueItemInterpreterDestroyed",
     {ours(Exc::kQueueError), {}},
     "Raised from get() for an item whose interpreter closed (policy UNBOUND_ERROR)."},
    {Exc::kChannelError,
     "xinterp.channels.ChannelError",
     "ChannelError",
     {ours(Exc::kInterpreterError), {-1, runtime_error}},
     "A channel-related error."},
    {Exc::kChannelNotFound,
     "xinterp.channels.ChannelNotFoundError",
     "ChannelNotFoundError",
     {ours(Exc::kChannelError), {}},
     "The channel does not exist (any more)."},
    {Exc::kChannelEmpty,
     "xinterp.channels.ChannelEmptyError",
     "ChannelEmptyError",
     {ours(Exc::kChannelError), {}},
     "recv_nowait() found nothing (and no default was given)."},
    {Exc::kChannelClosed,
     "xinterp.channels.ChannelClosedError",
     "ChannelClosedError",
     {ours(Exc::kChannelError), {}},
     "The channel (or that end of it) is closed."},
    {Exc::kChannelNotEmpty,
     "xinterp.channels.ChannelNotEmptyError",
     "ChannelNotEmptyError",
     {ours(Exc::kChannelError), {}},
     "The channel still has items."},
    {Exc::kChannelItemDestroyed,
     "xinterp.channels.ItemInterpreterDestroyed",
     "_ChannelItemInterpreterDestroyed",
     {ours(Exc::kChannelError), {}},
     "Raised from recv() for an item whose interpreter closed (policy UNBOUND_ERROR)."},
};

// --- the UNBOUND markers ----------------------------------------------------------------------

struct Marker {
  PyObject_HEAD const char* name;  // static storage
};

const char* const kMarkerNames[kMarkerCount] = {"UNBOUND", "UNBOUND_ERROR", "UNBOUND_REMOVE"};

PyObject* marker_repr(PyObject* self) {
  return PyUnicode_FromFormat("xinterp.queues.%s", reinterpret_cast<Marker*>(self)->name);
}

// Pickled by name: xinterp.queues.<name> (the type's __module__).
PyObject* marker_reduce(PyObject* self, PyObject*) {
  return PyUnicode_FromString(reinterpret_cast<Marker*>(self)->name);
}

PyMethodDef kMarkerMethods[] = {
    {"__reduce__", marker_reduce, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

void marker_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyType_Slot kMarkerSlots[] = {
    {Py_tp_repr, reinterpret_cast<void*>(marker_repr)},
    {Py_tp_methods, kMarkerMethods},
    {Py_tp_dealloc, reinterpret_cast<void*>(marker_dealloc)},
    {Py_tp_doc, const_cast<char*>("A marker of PEP 734's unbounditems policies.")},
    {0, nullptr},
};

PyType_Spec kMarkerSpec = {
    "xinterp.queues._UnboundMarker",
    sizeof(Marker),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    kMarkerSlots,
};

int add_markers(PyObject* module, ModuleState* st) {
  static_assert(kMarkerCount == kUnboundOpCount);
  // Not tied to the module (no PyType_FromModuleAndSpec): the markers are not GC-tracked, so a
  // reference from their type back to the module would be a cycle GC cannot see, keeping the
  // module (and its interpreter's m_free) alive forever.
  PyObject* type = PyType_FromSpec(&kMarkerSpec);
  if (type == nullptr) return -1;
  auto* tp = reinterpret_cast<PyTypeObject*>(type);
  int r = 0;
  for (int k = 0; k < kMarkerCount && r == 0; ++k) {
    PyObject* m = tp->tp_alloc(tp, 0);
    if (m == nullptr) {
      r = -1;
      break;
    }
    reinterpret_cast<Marker*>(m)->name = kMarkerNames[k];
    st->unbound_objs[k] = m;
    r = PyModule_AddObjectRef(module, kMarkerNames[k], m);
  }
  Py_DECREF(type);  // each marker holds a reference to its type
  return r;
}

}  // namespace

int add_exceptions(PyObject* module) {
  ModuleState* st = state_of(module);
  for (const ExcSpec& spec : kSpecs) {
    PyObject* bases[2] = {nullptr, nullptr};
    int n = 0;
    for (const Base& b : spec.bases) {
      if (b.ours >= 0) {
        bases[n++] = st->exc[b.ours];
      } else if (b.other != nullptr) {
        bases[n] = b.other();
        if (bases[n] == nullptr) return -1;
        ++n;
      }
    }
    PyObject* base = n == 1 ? Py_NewRef(bases[0]) : PyTuple_Pack(2, bases[0], bases[1]);
    if (base == nullptr) return -1;
    PyObject* type = PyErr_NewExceptionWithDoc(spec.qualified, spec.doc, base, nullptr);
    Py_DECREF(base);
    if (type == nullptr) return -1;
    st->exc[static_cast<int>(spec.which)] = type;
    if (PyModule_AddObjectRef(module, spec.attr, type) < 0) return -1;
  }
  return add_markers(module, st);
}

PyObject* exc_type(PyObject* module, Exc which) {
  return state_of(module)->exc[static_cast<int>(which)];
}

PyObject* raise_exc(PyObject* module, Exc which, const char* format, ...) {
  va_list args;
  va_start(args, format);
  PyObject* message = PyUnicode_FromFormatV(format, args);
  va_end(args);
  if (message == nullptr) return nullptr;
  PyErr_SetObject(exc_type(module, which), message);
  Py_DECREF(message);
  return nullptr;
}

}  // namespace xinterp::python
