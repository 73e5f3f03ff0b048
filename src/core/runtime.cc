#include "xinterp/runtime.h"

#include "base/fail.h"
#include "fork_handler.h"
#include "housekeeper.h"
#include "owner_registry.h"
#include "thread_id.h"

namespace xinterp {

Runtime::Runtime(Engine& engine, RuntimeOptions options)
    : engine_(engine),
      options_(options),
      registry_(std::make_unique<OwnerRegistry>()),
      housekeeper_(std::make_unique<Housekeeper>(*this)) {
  XI_CHECK(options_.drain_deadline.count() > 0, "drain_deadline must be positive");
  // Without a worker no drain would ever run (the inline fallback is for failed starts only).
  XI_CHECK(options_.max_drain_workers >= 1, "max_drain_workers must be at least 1");
  XI_CHECK(options_.worker_idle_retire.count() > 0, "worker_idle_retire must be positive");
  internal::register_runtime(this);
}

Runtime::~Runtime() {
  internal::unregister_runtime(this);
  // Stop the housekeeper first: nothing may attach to an owner we are about to close raw.
  housekeeper_.reset();
  for (OwnerRef& owner : registry_->all()) owner->close_raw();
  registry_.reset();
}

OwnerRef Runtime::create_owner(void* engine_data) {
  OwnerRef owner = registry_->create(*this, engine_data);
  housekeeper_->ensure_running();
  return owner;
}

OwnerRef Runtime::find(OwnerId id) const { return registry_->find(id); }

std::vector<OwnerRef> Runtime::owners() const { return registry_->all(); }

void Runtime::post(OwnerId id, PendingCall* call) noexcept {
  OwnerRef owner = registry_->find(id);
  if (owner) {
    owner->post(call);
    return;
  }
  // Not found: the owner closed (or never existed), so its objects are gone. Clean up raw.
  registry_->count_unknown_post();
  bool ok = false;
  try {
    ok = call->fn_(call, RunMode::kRaw);
  } catch (...) {
  }
  if (!ok) registry_->count_unknown_failed();
}

RegistryStats Runtime::registry_stats() const {
  RegistryStats s = registry_->stats();
  s.drain_workers_started = housekeeper_->workers_started();
  s.housekeeper_inline_drains = housekeeper_->inline_drains();
  s.drain_worker_start_failures = housekeeper_->worker_start_failures();
  return s;
}

void Runtime::prepare_fork() noexcept XI_NO_THREAD_SAFETY_ANALYSIS {
  housekeeper_->lock_for_fork();
  registry_->lock_for_fork();
}

void Runtime::after_fork_parent() noexcept XI_NO_THREAD_SAFETY_ANALYSIS {
  registry_->unlock_after_fork();
  housekeeper_->unlock_after_fork_parent();
}

void Runtime::after_fork_child() noexcept XI_NO_THREAD_SAFETY_ANALYSIS {
  const OwnerId survivor = engine_.current_owner();
  const uint64_t me = internal::this_thread_id();
  housekeeper_->reset_after_fork_child();  // releases the housekeeper's locks
  for (Owner* owner : registry_->all_locked()) {
    const bool survives = owner->id() == survivor;
    owner->after_fork_child(survives, me);
    if (!survives) registry_->retire_locked(*owner);
  }
  registry_->unlock_after_fork();
  // Calls that only the housekeeper will run (raw runs of closed owners, deferred wakes of the
  // survivor) must not wait for the next post to restart it. glibc supports creating a thread
  // here; CPython itself does so after fork.
  if (housekeeper_->has_work()) housekeeper_->ensure_running();
}

}  // namespace xinterp
