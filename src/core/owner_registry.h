// OwnerRegistry: id -> Owner for one Runtime.
//
// Ids come from one process-wide counter and are never reused, not even across runtimes or
// after fork. The registry holds one reference to every owner from create until the owner
// closes; find() takes its own reference under the registry lock, so a lookup racing with a
// close returns either a live reference (the record stays valid, in whatever state) or nothing.
// Policy for "not found": the caller's choice; Runtime::post() runs the call raw and counts it.
#pragma once

#include <atomic>
#include <unordered_map>
#include <vector>

#include "base/mutex.h"
#include "xinterp/owner.h"
#include "xinterp/runtime.h"

namespace xinterp {

class OwnerRegistry {
 public:
  OwnerRegistry() = default;
  ~OwnerRegistry();

  OwnerRef create(Runtime& runtime, void* engine_data);
  OwnerRef find(OwnerId id) const;
  std::vector<OwnerRef> all() const;
  // Removes a closed owner, folding its counters into the retired totals.
  void retire(Owner& owner);
  void count_unknown_post() noexcept {
    unknown_owner_posts_.fetch_add(1, std::memory_order_relaxed);
  }
  void count_unknown_failed() noexcept {
    unknown_owner_failed_.fetch_add(1, std::memory_order_relaxed);
  }
  RegistryStats stats() const;

  void lock_for_fork() XI_ACQUIRE(mu_) { mu_.lock(); }
  void unlock_after_fork() XI_RELEASE(mu_) { mu_.unlock(); }
  // In the fork child, with mu_ held by the forking thread.
  std::vector<Owner*> all_locked() const XI_REQUIRES(mu_);
  void retire_locked(Owner& owner) XI_REQUIRES(mu_);

 private:
  mutable internal::Mutex mu_;
  std::unordered_map<OwnerId, Owner*> owners_ XI_GUARDED_BY(mu_);
  OwnerStats retired_ XI_GUARDED_BY(mu_);
  uint64_t created_ XI_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> unknown_owner_posts_{0};
  std::atomic<uint64_t> unknown_owner_failed_{0};
};

}  // namespace xinterp
