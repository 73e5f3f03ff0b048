// Zero-copy buffers between interpreters.
//
// BufferBorrow: one interpreter's buffer (a Py_buffer taken on any exporter: bytearray, array,
// mmap, memoryview, ...) lent to others. Made in the owner; handed around as a
// std::shared_ptr. When the last reference goes (a receiver's memoryview released, a queue item
// dropped), the Py_buffer is released inside the owner through the core: inline if the
// dropping thread is attached to the owner, else posted (intrusively: the borrow is its own
// pending call, so the release never allocates). If the owner is already gone the release runs
// raw: the record is freed and the Py_buffer is not touched (counted in the owner's run_raw).
//
// SharedBuffer (Python type _xinterp._SharedBuffer): the receiver-side exporter over a borrow;
// receivers get memoryview(SharedBuffer), which sees the owner's memory directly, with the
// owner's readonly flag, format, itemsize and shape.
//
// Requirements: take() runs attached to the owner; make_view() attached to the receiver.
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
#include "xinterp/pending_call.h"

namespace xinterp::python {

class BufferBorrow final : public PendingCall {
 public:
  // Takes a C-contiguous buffer on obj, owned by the calling thread's interpreter. On failure
  // returns nullptr with kNotShareable (not contiguous) or kPythonSet.
  static std::shared_ptr<BufferBorrow> take(PyObject* obj, Status* status);

  void* buf() const noexcept { return view_.buf; }
  Py_ssize_t len() const noexcept { return view_.len; }
  bool readonly() const noexcept { return view_.readonly != 0; }
  int64_t owner_py_id() const noexcept { return rec_->py_id; }
  // Who holds it now: a receiving interpreter's id, or -1 while it sits in a queue or is in
  // transit. For close()'s error message.
  int64_t holder() const noexcept { return holder_.load(std::memory_order_relaxed); }
  void set_holder(int64_t id) noexcept { holder_.store(id, std::memory_order_relaxed); }

  // A memoryview over the borrowed memory, in the calling (receiving) interpreter; it keeps a
  // reference to `self` until it is released. New reference, or nullptr with an exception.
  static PyObject* make_view(const std::shared_ptr<BufferBorrow>& self);

 private:
  BufferBorrow() noexcept : PendingCall(&BufferBorrow::run) {}
  static bool run(PendingCall* call, RunMode mode);
  static void give_back(BufferBorrow* borrow) noexcept;  // the shared_ptr's deleter

  Py_buffer view_{};
  std::string format_;
  std::vector<Py_ssize_t> shape_;
  std::vector<Py_ssize_t> strides_;
  std::shared_ptr<InterpRecord> rec_;
  std::atomic<int64_t> holder_{-1};

  friend struct SharedBufferObject;
  friend int shared_buffer_getbuffer(PyObject*, Py_buffer*, int);
};

// Creates the _SharedBuffer type for a module (multi-phase init: one per interpreter).
PyObject* make_shared_buffer_type(PyObject* module);

}  // namespace xinterp::python
