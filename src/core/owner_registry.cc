#include "owner_registry.h"

namespace xinterp {

namespace {
// Process-wide so that ids never repeat, whatever runtime made them. Starts at 1: 0 is kNoOwner.
std::atomic<uint64_t> g_next_owner_id{1};

void accumulate(OwnerStats& into, const OwnerStats& s) {
  into.posted += s.posted;
  into.run_inline += s.run_inline;
  into.run_by_owner += s.run_by_owner;
  into.run_by_housekeeper += s.run_by_housekeeper;
  into.run_raw += s.run_raw;
  into.failed += s.failed;
  into.wakes += s.wakes;
  into.lost += s.lost;
  if (s.peak_backlog > into.peak_backlog) into.peak_backlog = s.peak_backlog;
}
}  // namespace

OwnerRegistry::~OwnerRegistry() {
  internal::MutexLock lock(mu_);
  for (auto& [id, owner] : owners_) owner->unref();
  owners_.clear();
}

OwnerRef OwnerRegistry::create(Runtime& runtime, void* engine_data) {
  OwnerId id = g_next_owner_id.fetch_add(1, std::memory_order_relaxed);
  Owner* owner = new Owner(runtime, id, engine_data);
  owner->ref();  // the registry's
  OwnerRef ref(owner);
  internal::MutexLock lock(mu_);
  owners_.emplace(id, owner);
  ++created_;
  return ref;
}

OwnerRef OwnerRegistry::find(OwnerId id) const {
  internal::MutexLock lock(mu_);
  auto it = owners_.find(id);
  return it == owners_.end() ? OwnerRef() : OwnerRef(it->second);
}

std::vector<OwnerRef> OwnerRegistry::all() const {
  internal::MutexLock lock(mu_);
  std::vector<OwnerRef> out;
  out.reserve(owners_.size());
  for (auto& [id, owner] : owners_) out.emplace_back(owner);
  return out;
}

void OwnerRegistry::retire(Owner& owner) {
  {
    internal::MutexLock lock(mu_);
    if (owners_.erase(owner.id()) == 0) return;
    accumulate(retired_, owner.stats());
  }
  owner.unref();  // the registry's; the caller still holds one
}

void OwnerRegistry::retire_locked(Owner& owner) {
  if (owners_.erase(owner.id()) == 0) return;
  accumulate(retired_, owner.stats());
  owner.unref();
}

std::vector<Owner*> OwnerRegistry::all_locked() const {
  std::vector<Owner*> out;
  for (auto& [id, owner] : owners_) out.push_back(owner);
  return out;
}

RegistryStats OwnerRegistry::stats() const {
  RegistryStats s;
  s.unknown_owner_posts = unknown_owner_posts_.load(std::memory_order_relaxed);
  s.unknown_owner_failed = unknown_owner_failed_.load(std::memory_order_relaxed);
  internal::MutexLock lock(mu_);
  s.owners_created = created_;
  s.owners_alive = owners_.size();
  s.retired = retired_;
  return s;
}

}  // namespace xinterp
