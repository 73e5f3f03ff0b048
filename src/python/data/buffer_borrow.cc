#include "data/buffer_borrow.h"

#include "base/fail.h"
#include "base/mutex.h"
#include "engine/python_engine.h"

namespace xinterp::python {

std::shared_ptr<BufferBorrow> BufferBorrow::take(PyObject* obj, std::shared_ptr<InterpRecord> owner,
                                                 Status* status) {
  if (owner == nullptr) {
    owner = PythonEngine::get().register_current(status);
    if (owner == nullptr) return nullptr;
  }
  auto lent = std::make_unique<LentBuffer>();
  Py_buffer& view = lent->view;
  if (PyObject_GetBuffer(obj, &view, PyBUF_FULL_RO) < 0) {
    *status = Status::error(ErrorKind::kPythonSet, "");
    return nullptr;
  }
  if (!PyBuffer_IsContiguous(&view, 'C')) {
    PyBuffer_Release(&view);
    *status = Status::error(ErrorKind::kNotShareable,
                            "only C-contiguous buffers are shared without a copy");
    return nullptr;
  }
  std::shared_ptr<BufferBorrow> b(new BufferBorrow());
  b->buf_ = view.buf;
  b->len_ = view.len;
  b->itemsize_ = view.itemsize;
  b->readonly_ = view.readonly != 0;
  b->owner_py_id_ = owner->py_id;
  b->format_ = view.format ? view.format : "B";
  if (view.ndim > 0) {
    const Py_ssize_t* shape = view.shape ? view.shape : &view.len;
    b->shape_.assign(shape, shape + view.ndim);
  }
  b->strides_.resize(b->shape_.size());
  Py_ssize_t stride = view.itemsize;
  for (size_t k = b->shape_.size(); k-- > 0;) {
    b->strides_[k] = stride;
    stride *= b->shape_[k];
  }
  lent->owner = owner;
  {
    internal::MutexLock lock(owner->borrow_mu);
    owner->borrowed.insert(lent.get());
  }
  owner->borrows.fetch_add(1, std::memory_order_relaxed);
  b->lent_ = lent.release();
  b->handle_ = OwnerBound(owner->owner, b->lent_, &BufferBorrow::release);
  b->check_in_owner();
  return b;
}

BufferBorrow::~BufferBorrow() {
  // The last view is gone: no interpreter holds the buffer any more, only its release (queued to
  // the owner unless run inline below) is left, and close() runs that itself. So close() must
  // not wait for it, nor name the last holder as still borrowing it.
  if (lent_ != nullptr) lent_->holder.store(-1, std::memory_order_relaxed);
  handle_.reset();
}

bool BufferBorrow::release(void* object, RunMode mode) {
  std::unique_ptr<LentBuffer> lent(static_cast<LentBuffer*>(object));
  // kRaw: the owner is gone, and with it the exporter; the view is abandoned, not touched.
  if (mode == RunMode::kInOwner) PyBuffer_Release(&lent->view);
  InterpRecord& owner = *lent->owner;
  size_t erased;
  {
    internal::MutexLock lock(owner.borrow_mu);
    erased = owner.borrowed.erase(lent.get());
  }
  const int64_t before = owner.borrows.fetch_sub(1, std::memory_order_release);
  // Failure policy: a borrow released twice, or never registered, means the accounting that
  // close() relies on to never free memory a borrower can see is broken: stop, loudly.
  XI_CHECK(erased == 1 && before > 0,
           "xinterp: a lent buffer of interpreter %lld was released twice (%zu, %lld)",
           static_cast<long long>(owner.py_id), erased, static_cast<long long>(before));
  PythonEngine::get().borrow_returned();
  return true;
}

}  // namespace xinterp::python
