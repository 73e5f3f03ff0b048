#include "data/buffer_borrow.h"

#include "cpython/cpython_private.h"
#include "engine/python_engine.h"

namespace xinterp::python {

std::shared_ptr<BufferBorrow> BufferBorrow::take(PyObject* obj, Status* status) {
  PythonEngine& engine = PythonEngine::get();
  std::shared_ptr<InterpRecord> rec = engine.register_current(status);
  if (rec == nullptr) return nullptr;
  std::unique_ptr<BufferBorrow> b(new BufferBorrow());
  if (PyObject_GetBuffer(obj, &b->view_, PyBUF_FULL_RO) < 0) {
    *status = Status::error(ErrorKind::kPythonSet, "");
    return nullptr;
  }
  if (!PyBuffer_IsContiguous(&b->view_, 'C')) {
    PyBuffer_Release(&b->view_);
    *status = Status::error(ErrorKind::kNotShareable,
                            "only C-contiguous buffers are shared without a copy");
    return nullptr;
  }
  // Our own copies of the layout: the receiver's views must not read the owner's objects.
  b->format_ = b->view_.format ? b->view_.format : "B";
  const int ndim = b->view_.ndim;
  b->shape_.assign(b->view_.shape ? b->view_.shape : &b->view_.len,
                   (b->view_.shape ? b->view_.shape : &b->view_.len) + (ndim > 0 ? ndim : 0));
  if (ndim == 0) b->shape_.clear();
  b->strides_.resize(b->shape_.size());
  Py_ssize_t stride = b->view_.itemsize;
  for (size_t k = b->shape_.size(); k-- > 0;) {
    b->strides_[k] = stride;
    stride *= b->shape_[k];
  }
  b->rec_ = rec;
  {
    std::lock_guard<std::mutex> lock(rec->borrow_mu);
    rec->borrowed.insert(b.get());
  }
  rec->borrows.fetch_add(1, std::memory_order_relaxed);
  return std::shared_ptr<BufferBorrow>(b.release(), &BufferBorrow::give_back);
}

void BufferBorrow::give_back(BufferBorrow* borrow) noexcept {
  // The one place a borrow ends: in the owner (inline when already there), else posted; raw if
  // the owner has closed.
  OwnerRef owner = borrow->rec_->owner;
  owner->run_or_post(borrow);
}

bool BufferBorrow::run(PendingCall* call, RunMode mode) {
  std::unique_ptr<BufferBorrow> b(static_cast<BufferBorrow*>(call));
  std::shared_ptr<InterpRecord> rec = b->rec_;
  if (mode == RunMode::kInOwner) {
    PyBuffer_Release(&b->view_);  // drops the owner's reference to the exporter, in the owner
  }
  // kRaw: the owner is gone, and with it the object; the view is abandoned, not touched.
  {
    std::lock_guard<std::mutex> lock(rec->borrow_mu);
    rec->borrowed.erase(b.get());
  }
  rec->borrows.fetch_sub(1, std::memory_order_release);
  return true;
}

// --- the receiver-side exporter --------------------------------------------------------------

struct SharedBufferObject {
  PyObject_HEAD
  std::shared_ptr<BufferBorrow>* borrow;  // heap-allocated: the object's memory is C's
};

int shared_buffer_getbuffer(PyObject* self, Py_buffer* view, int flags) {
  auto* o = reinterpret_cast<SharedBufferObject*>(self);
  BufferBorrow& b = **o->borrow;
  if ((flags & PyBUF_WRITABLE) && b.readonly()) {
    PyErr_SetString(PyExc_BufferError, "the shared buffer is read-only in its owner");
    view->obj = nullptr;
    return -1;
  }
  view->buf = b.buf();
  view->len = b.len();
  view->readonly = b.readonly();
  view->itemsize = b.view_.itemsize;
  view->format = (flags & PyBUF_FORMAT) ? const_cast<char*>(b.format_.c_str()) : nullptr;
  view->ndim = static_cast<int>(b.shape_.size());
  view->shape = (flags & PyBUF_ND) == PyBUF_ND ? b.shape_.data() : nullptr;
  view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? b.strides_.data() : nullptr;
  view->suboffsets = nullptr;
  view->internal = nullptr;
  if (view->shape == nullptr) view->ndim = 1;  // a flat view over all bytes
  if (view->shape == nullptr && view->format == nullptr) view->itemsize = 1;
  view->obj = Py_NewRef(self);
  return 0;
}

namespace {

void shared_buffer_dealloc(PyObject* self) {
  auto* o = reinterpret_cast<SharedBufferObject*>(self);
  PyTypeObject* type = Py_TYPE(self);
  delete o->borrow;  // possibly the last reference: the release goes to the owner
  o->borrow = nullptr;
  type->tp_free(self);
  Py_DECREF(type);
}

PyType_Slot kSlots[] = {
    {Py_bf_getbuffer, reinterpret_cast<void*>(shared_buffer_getbuffer)},
    {Py_tp_dealloc, reinterpret_cast<void*>(shared_buffer_dealloc)},
    {Py_tp_doc, const_cast<char*>("Memory lent by another interpreter (see xinterp).")},
    {0, nullptr},
};

PyType_Spec kSpec = {
    "xinterp._xinterp._SharedBuffer",
    sizeof(SharedBufferObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    kSlots,
};

}  // namespace

PyObject* make_shared_buffer_type(PyObject* module) {
  return PyType_FromModuleAndSpec(module, &kSpec, nullptr);
}

PyObject* BufferBorrow::make_view(const std::shared_ptr<BufferBorrow>& self) {
  PyObject* mod = PyImport_ImportModule("xinterp._xinterp");
  if (mod == nullptr) return nullptr;
  PyObject* type = PyObject_GetAttrString(mod, "_SharedBuffer");
  Py_DECREF(mod);
  if (type == nullptr) return nullptr;
  auto* tp = reinterpret_cast<PyTypeObject*>(type);
  PyObject* exporter = tp->tp_alloc(tp, 0);
  Py_DECREF(type);
  if (exporter == nullptr) return nullptr;
  reinterpret_cast<SharedBufferObject*>(exporter)->borrow = new std::shared_ptr<BufferBorrow>(self);
  PyThreadState* ts = cpy::current_tstate();
  self->set_holder(PyInterpreterState_GetID(PyThreadState_GetInterpreter(ts)));
  PyObject* view = PyMemoryView_FromObject(exporter);
  Py_DECREF(exporter);
  return view;
}

}  // namespace xinterp::python
