// BufferBorrow: one interpreter's buffer (a Py_buffer taken on any exporter: bytearray, array,
// mmap, memoryview, large bytes, ...) lent to others, zero-copy.
//
// Made in the owner (take()); handed around as a std::shared_ptr. The Py_buffer is held through
// the core's owner-affine handle (xinterp/owner_bound.h), the one mechanism for every reference
// the engine holds across interpreters: when the last shared_ptr goes (a receiver's memoryview
// released, a queue item dropped), the handle gives the Py_buffer back inside the owner: inline
// if the dropping thread is attached to the owner, else as a pending call whose record was
// allocated at take(), so the release never allocates. If the owner is already gone the release
// runs raw: the Py_buffer is not touched (counted in the owner's run_raw). A debug build
// (XINTERP_DEBUG) checks, at take() and at the release, that the thread is attached to the
// owner, and names both interpreters when it is not.
//
// Re-lending: an interpreter that sends on a memoryview of memory it lent itself (a view it
// received from its own buffer, put back in a queue) does not borrow that view: each hop would
// pin the view it came from, a chain as long as the number of hops whose release, inline in
// that one interpreter, recursed as deep (a segfault at ~100 000). relend() makes a borrow
// that holds the root borrow (the one with the Py_buffer) directly, with the re-sent view's own
// layout (a slice, a cast, read-only): one link, and the view is not pinned (it may be
// released; the root holds the memory). A view of another interpreter's memory is still
// borrowed as any buffer (that interpreter becomes a lender too, and its close waits for it):
// consecutive links then belong to different interpreters, and each release reaches the next
// owner as a pending call, not by recursion.
//
// Every borrow is registered in its owner's InterpRecord (borrows, borrowed) from take() until
// its release ran, so that close() can wait for them and name who holds them.
//
// Requirements: take() runs attached to the owner; the memory (buf()) may be read by any
// interpreter while the BufferBorrow lives.
// Threading: a shared_ptr<BufferBorrow> may be copied and dropped on any thread, GIL or not.
#pragma once

#include <Python.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/interp_record.h"
#include "engine/status.h"
#include "xinterp/owner_bound.h"

namespace xinterp::python {

class BufferBorrow {
 public:
  // Takes a C-contiguous buffer on obj, owned by the calling thread's interpreter, whose record
  // is `owner` (looked up if null). On failure returns nullptr with kNotShareable (not
  // contiguous) or kPythonSet (MemoryError included: the buffer is then given back).
  static std::shared_ptr<BufferBorrow> take(PyObject* obj, std::shared_ptr<InterpRecord> owner,
                                            Status* status);
  // Re-lends `view`, a memoryview over memory that `base` lends and the calling interpreter
  // owns (base->owner_py_id()): a borrow of base's root with view's layout. On failure nullptr
  // with kNotShareable (not contiguous) or kPythonSet.
  static std::shared_ptr<BufferBorrow> relend(PyObject* view,
                                              const std::shared_ptr<BufferBorrow>& base,
                                              Status* status);
  ~BufferBorrow();  // gives the Py_buffer back (see above)
  BufferBorrow(const BufferBorrow&) = delete;
  BufferBorrow& operator=(const BufferBorrow&) = delete;

  void* buf() const noexcept { return buf_; }
  Py_ssize_t len() const noexcept { return len_; }
  bool readonly() const noexcept { return readonly_; }
  Py_ssize_t itemsize() const noexcept { return itemsize_; }
  // Our own copies of the layout: receivers never read the owner's objects.
  const std::string& format() const noexcept { return format_; }
  // The exporter's dimensions: 0 for a scalar (shape () in sender and receiver alike).
  int ndim() const noexcept { return ndim_; }
  std::vector<Py_ssize_t>& shape() noexcept { return shape_; }
  std::vector<Py_ssize_t>& strides() noexcept { return strides_; }
  int64_t owner_py_id() const noexcept { return owner_py_id_; }
  void set_holder(int64_t id) noexcept {
    root().lent_->holder.store(id, std::memory_order_relaxed);
  }
  // In a debug build (XINTERP_DEBUG): fails, naming both interpreters, unless the calling thread
  // is attached to the owner. Nothing otherwise.
  void check_in_owner() const noexcept {
#ifdef XINTERP_DEBUG
    (void)root().handle_.get();
#endif
  }

 private:
  BufferBorrow() = default;
  // The borrow holding the Py_buffer: this one, or the one a re-lent borrow holds.
  const BufferBorrow& root() const noexcept { return root_ != nullptr ? *root_ : *this; }
  // Fills the layout from a Py_buffer (allocates; may throw std::bad_alloc).
  void copy_layout(const Py_buffer& view);
  static bool release(void* lent, RunMode mode);  // the handle's release, in the owner

  void* buf_ = nullptr;
  Py_ssize_t len_ = 0;
  Py_ssize_t itemsize_ = 1;
  bool readonly_ = true;
  int64_t owner_py_id_ = -1;
  std::string format_;
  int ndim_ = 1;
  std::vector<Py_ssize_t> shape_;
  std::vector<Py_ssize_t> strides_;
  LentBuffer* lent_ = nullptr;          // owned by handle_ until its release ran; null if re-lent
  std::shared_ptr<BufferBorrow> root_;  // re-lent: the root borrow (never itself re-lent)
  OwnerBound handle_;
};

}  // namespace xinterp::python
