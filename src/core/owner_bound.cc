#include "xinterp/owner_bound.h"

#include "base/fail.h"
#include "xinterp/runtime.h"

namespace xinterp {

namespace internal {

struct OwnerBoundRecord final : PendingCall {
  OwnerBoundRecord(OwnerRef o, void* obj, OwnerBound::ReleaseFn fn)
      : PendingCall(&OwnerBoundRecord::run), owner(std::move(o)), object(obj), release(fn) {}

  static bool run(PendingCall* self, RunMode mode) {
    auto* rec = static_cast<OwnerBoundRecord*>(self);
#ifdef XINTERP_DEBUG
    if (mode == RunMode::kInOwner) check_attached(*rec->owner, "OwnerBound release");
#endif
    bool ok;
    try {
      ok = rec->release(rec->object, mode);
    } catch (...) {
      delete rec;
      throw;  // counted as failed by the runner
    }
    delete rec;
    return ok;
  }

  OwnerRef owner;
  void* object;
  OwnerBound::ReleaseFn release;
};

void check_attached(const Owner& owner, const char* what) noexcept {
  const Engine& engine = owner.runtime().engine();
  OwnerId current = engine.current_owner();
  XI_CHECK(current == owner.id(),
           "%s: object of owner %llu (engine id %lld) touched from owner %llu (engine id %lld; "
           "owner 0 = none attached)",
           what, static_cast<unsigned long long>(owner.id()),
           static_cast<long long>(engine.owner_label(owner)),
           static_cast<unsigned long long>(current),
           static_cast<long long>(engine.current_label()));
}

}  // namespace internal

OwnerBound::OwnerBound(OwnerRef owner, void* object, ReleaseFn release)
    : rec_(new internal::OwnerBoundRecord(std::move(owner), object, release)) {
  XI_CHECK(rec_->owner, "OwnerBound needs an owner");
}

Owner& OwnerBound::owner() const noexcept { return *rec_->owner; }

void* OwnerBound::object_unchecked() const noexcept { return rec_->object; }

void OwnerBound::reset() noexcept {
  if (!rec_) return;
  internal::OwnerBoundRecord* rec = std::exchange(rec_, nullptr);
  // Our own reference: once posted, the record (and its reference) may be consumed by a drainer
  // before run_or_post returns.
  OwnerRef owner = rec->owner;
  owner->run_or_post(rec);
}

}  // namespace xinterp
