// Runtime: the core's root object: one engine, its owner registry and its housekeeper.
//
// Main operations:
//   - create_owner(engine_data): register a new owner with a fresh, never-reused id.
//   - find(id): the owner with that id, or an empty OwnerRef once it is closed (or never was).
//   - post(id, call): post by id. "Not found" policy: the call runs at once in RunMode::kRaw on
//     the calling thread and is counted in registry_stats().unknown_owner_posts (and, if that
//     raw call fails, in unknown_owner_failed).
//   - registry_stats(): what no single owner can report (posts to unknown ids, totals of closed
//     owners).
//
// The housekeeper is a thread of the runtime, started lazily. It watches every owner whose queue
// became non-empty; an owner that the engine reports idle is drained at once, and any other owner
// that has not drained by itself within options.drain_deadline is attached to and drained, each
// drain on a worker thread of its own (one per owner at a time): a call that never returns
// delays only its owner. Every runtime thread that runs calls has a full stack (the default
// thread stack size, which follows `ulimit -s`, and at least 8 MiB): calls run user code.
//
// Requirements: every owner is closed and every OwnerRef dropped before the Runtime is destroyed
// (the destructor closes leftovers raw, and fails in XINTERP_DEBUG builds if references remain).
// The process-wide runtime of an embedding engine is meant to be leaked, never destroyed, so
// that daemon threads posting at exit never see freed state.
//
// Threading: every method is thread-safe. Fork: pthread_atfork handlers make every core lock
// usable in the child and close every owner except the one the forking thread is attached to;
// their queued calls run raw on the housekeeper, which the child restarts at once if it has
// work and lazily otherwise. Calls that vanished with other threads are counted as `lost`.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "xinterp/engine.h"
#include "xinterp/owner.h"
#include "xinterp/owner_stats.h"

namespace xinterp {

class OwnerRegistry;
class Housekeeper;

struct RuntimeOptions {
  // How long an owner that is not idle may take to drain after its wake before the housekeeper
  // drains it. Busy interpreters sometimes never run a pending call (measured on CPython 3.12.1),
  // so this covers them too.
  std::chrono::nanoseconds drain_deadline = std::chrono::milliseconds(5);
  // The housekeeper hands each drain to a worker thread, at most one per owner at a time, so
  // that a call that never returns holds up only its own owner. Workers start on demand, at
  // most this many at once (more owners than that stuck at the same time delay the others), and
  // retire after `worker_idle_retire` without work.
  unsigned max_drain_workers = 16;
  std::chrono::nanoseconds worker_idle_retire = std::chrono::seconds(1);
};

struct RegistryStats {
  uint64_t owners_created = 0;
  uint64_t owners_alive = 0;           // registered (alive or closing)
  uint64_t unknown_owner_posts = 0;    // posts by id to a closed or unknown owner, run raw
  uint64_t unknown_owner_failed = 0;   // of those, raw calls that returned false or threw
  OwnerStats retired;                  // sum of owners at the moment they closed
  uint64_t drain_workers_started = 0;  // housekeeper drain workers started so far
  // Drains the housekeeper ran on its own thread because no worker could be started (a
  // fallback: meanwhile it serves no other owner).
  uint64_t housekeeper_inline_drains = 0;
  // Drain workers that could not be started (thread creation failed); their jobs waited for a
  // live worker, or were drained inline when none was alive.
  uint64_t drain_worker_start_failures = 0;
};

class Runtime {
 public:
  explicit Runtime(Engine& engine, RuntimeOptions options = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  Engine& engine() const noexcept { return engine_; }
  const RuntimeOptions& options() const noexcept { return options_; }

  OwnerRef create_owner(void* engine_data = nullptr);
  OwnerRef find(OwnerId id) const;
  std::vector<OwnerRef> owners() const;

  void post(OwnerId id, PendingCall* call) noexcept;
  template <class F>
  requires(!std::is_convertible_v<F, PendingCall*>) void post(OwnerId id, F&& f) {
    post(id, make_pending_call(std::forward<F>(f)));
  }

  RegistryStats registry_stats() const;

  // Internal, for Owner and the fork handler.
  Housekeeper& housekeeper() noexcept { return *housekeeper_; }
  OwnerRegistry& registry() noexcept { return *registry_; }
  void prepare_fork() noexcept;
  void after_fork_parent() noexcept;
  void after_fork_child() noexcept;

 private:
  Engine& engine_;
  const RuntimeOptions options_;
  std::unique_ptr<OwnerRegistry> registry_;
  std::unique_ptr<Housekeeper> housekeeper_;
};

}  // namespace xinterp
