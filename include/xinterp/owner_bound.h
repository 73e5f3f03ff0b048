// OwnerBound: an owner-affine handle: a reference, held anywhere, to an object that belongs to
// one owner (a Python object of interpreter A held by interpreter B), that is given back inside
// that owner.
//
// It requires the following:
//   - `object` belongs to `owner` and stays valid until `release(object, mode)` runs.
//   - release(object, RunMode::kInOwner) runs attached to the owner and gives the object back
//     (decref, PyBuffer_Release); release(object, RunMode::kRaw) runs when the owner is gone and
//     must not touch engine state.
//   - get() is called only by a thread attached to the owner.
// It provides the following guarantees:
//   - release runs exactly once: inline if the releasing thread is attached to the owner (and
//     nothing is queued ahead), as a pending call on the owner otherwise, raw once the owner has
//     closed. The release record is allocated once, when the handle is made; releasing never
//     allocates (the queue node lives inside the record).
//   - With XINTERP_DEBUG, get() and the in-owner release check that the calling thread is
//     attached to the owner and fail naming both owner ids. Without it they cost nothing.
//
// Threading: a handle is used by one thread at a time (move it between threads); reset() may be
// called from any thread.
#pragma once

#include <utility>

#include "xinterp/owner.h"

namespace xinterp {

namespace internal {
struct OwnerBoundRecord;
void check_attached(const Owner& owner, const char* what) noexcept;
}  // namespace internal

class OwnerBound {
 public:
  using ReleaseFn = bool (*)(void* object, RunMode mode);

  OwnerBound() noexcept = default;
  OwnerBound(OwnerRef owner, void* object, ReleaseFn release);
  OwnerBound(OwnerBound&& other) noexcept : rec_(std::exchange(other.rec_, nullptr)) {}
  OwnerBound& operator=(OwnerBound&& other) noexcept {
    if (this != &other) {
      reset();
      rec_ = std::exchange(other.rec_, nullptr);
    }
    return *this;
  }
  ~OwnerBound() { reset(); }

  void* get() const noexcept {
#ifdef XINTERP_DEBUG
    internal::check_attached(owner(), "OwnerBound::get");
#endif
    return object_unchecked();
  }
  Owner& owner() const noexcept;
  OwnerId owner_id() const noexcept { return owner().id(); }
  explicit operator bool() const noexcept { return rec_ != nullptr; }

  // Gives the object back (see the guarantees above). The handle is empty afterwards.
  void reset() noexcept;

 private:
  void* object_unchecked() const noexcept;
  internal::OwnerBoundRecord* rec_ = nullptr;
};

}  // namespace xinterp
