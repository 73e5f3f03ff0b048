#include "data/buffer_borrow.h"

#include <new>

#include "base/fail.h"
#include "base/mutex.h"
#include "engine/python_engine.h"

namespace xinterp::python {
namespace {

// Fills *view with obj's buffer if it is C-contiguous (the only layout lent without a copy);
// otherwise sets *status (the Python error set, or kNotShareable) and holds no buffer.
bool get_contiguous(PyObject* obj, Py_buffer* view, Status* status) {
  if (PyObject_GetBuffer(obj, view, PyBUF_FULL_RO) < 0) {
    *status = Status::error(ErrorKind::kPythonSet, "");
    return false;
  }
  if (!PyBuffer_IsContiguous(view, 'C')) {
    PyBuffer_Release(view);
    *status = Status::error(ErrorKind::kNotShareable,
                            "only C-contiguous buffers are shared without a copy");
    return false;
  }
  return true;
}

}  // namespace

std::shared_ptr<BufferBorrow> BufferBorrow::take(PyObject* obj, std::shared_ptr<InterpRecord> owner,
                                                 Status* status) {
  if (owner == nullptr) {
    owner = PythonEngine::get().register_current(status);
    if (owner == nullptr) return nullptr;
  }
  if (owner->lending_closed.load(std::memory_order_acquire)) {
    // Decision: refused, not kept alive: the interpreter is being ended and its memory goes
    // with it. The sender (xidata) then sends a copy, as for a non-contiguous buffer, while the
    // memory is still valid. Counted (refused_while_closing, and fallback_buffer_copied).
    PythonEngine::get().count_refused_while_closing();
    *status =
        Status::error(ErrorKind::kInterpreter, "interpreter " + std::to_string(owner->py_id) +
                                                   " is closing: it cannot lend buffers any more");
    return nullptr;
  }
  auto lent = std::make_unique<LentBuffer>();
  Py_buffer& view = lent->view;
  if (!get_contiguous(obj, &view, status)) return nullptr;
  // Everything that allocates runs before the borrow is registered, or is undone with it: an
  // allocation failure raises MemoryError with the buffer given back and nothing counted.
  auto no_memory = [&](bool registered) -> std::shared_ptr<BufferBorrow> {
    if (registered) {
      internal::MutexLock lock(owner->borrow_mu);
      owner->borrowed.erase(lent.get());
    }
    PyBuffer_Release(&view);
    PyErr_NoMemory();
    *status = Status::error(ErrorKind::kPythonSet, "");
    return nullptr;
  };
  std::shared_ptr<BufferBorrow> b;
  try {
    b.reset(new BufferBorrow());
    b->owner_py_id_ = owner->py_id;
    b->copy_layout(view);
    lent->owner = owner;
    internal::MutexLock lock(owner->borrow_mu);
    owner->borrowed.insert(lent.get());
  } catch (const std::bad_alloc&) {
    return no_memory(false);
  }
  try {
    b->handle_ = OwnerBound(owner->owner, lent.get(), &BufferBorrow::release);
  } catch (const std::bad_alloc&) {
    return no_memory(true);
  }
  owner->borrows.fetch_add(1, std::memory_order_relaxed);
  b->lent_ = lent.release();
  b->check_in_owner();
  return b;
}

void BufferBorrow::copy_layout(const Py_buffer& view) {
  buf_ = view.buf;
  len_ = view.len;
  itemsize_ = view.itemsize;
  readonly_ = view.readonly != 0;
  format_ = view.format ? view.format : "B";
  // 0-d (a scalar: memoryview.cast(fmt, shape=[])) stays 0-d: ndim 0, no shape.
  ndim_ = view.ndim;
  shape_.clear();
  if (view.ndim > 0) {
    const Py_ssize_t* shape = view.shape ? view.shape : &view.len;
    shape_.assign(shape, shape + view.ndim);
  }
  strides_.resize(shape_.size());
  Py_ssize_t stride = view.itemsize;
  for (size_t k = shape_.size(); k-- > 0;) {
    strides_[k] = stride;
    stride *= shape_[k];
  }
}

std::shared_ptr<BufferBorrow> BufferBorrow::relend(PyObject* obj,
                                                   const std::shared_ptr<BufferBorrow>& base,
                                                   Status* status) {
  // The layout is read from the view, then the view is given back at once: the memory is
  // base's root's, held by the new borrow.
  Py_buffer view;
  if (!get_contiguous(obj, &view, status)) return nullptr;
  std::shared_ptr<BufferBorrow> b;
  try {
    b.reset(new BufferBorrow());
    b->root_ = base->root_ != nullptr ? base->root_ : base;
    b->owner_py_id_ = b->root_->owner_py_id_;
    b->copy_layout(view);
  } catch (const std::bad_alloc&) {
    b = nullptr;
  }
  PyBuffer_Release(&view);
  if (b == nullptr) {
    PyErr_NoMemory();
    *status = Status::error(ErrorKind::kPythonSet, "");
  }
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
