// Housekeeper: the runtime thread that makes sure no posted call is stranded.
//
// It watches every owner whose queue went from empty to non-empty (watch()). For each watched
// owner it:
//   - delivers wakes deferred by post_signal_safe() (engine wake() is not signal-safe);
//   - drains it at once if the engine says it is idle;
//   - otherwise drains it if the owner has not drained since the housekeeper first saw it
//     pending, for longer than the runtime's drain deadline (a deaf or missed wake);
//   - forgets it once its queue stayed empty for a whole deadline, or it is closed.
// It also runs, raw, the calls that signal handlers posted to owners that had already closed
// (so that no call function ever runs inside a signal handler).
//
// The housekeeper attaches to one owner at a time and holds no lock of its own while attached
// or while a call runs. It sleeps on a futex: with nothing watched, until woken by watch();
// otherwise until the earliest deadline.
//
// Threading: watch() and defer_raw() are async-signal-safe and may be called
// from any thread. ensure_running() starts the thread (lazily; again after fork) and is not
// signal-safe. Fork: mu_ is taken by the atfork prepare handler; the watch list is only modified
// under mu_, so the child finds it consistent.
#pragma once

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include "base/mutex.h"
#include "xinterp/owner.h"

namespace xinterp {

class Housekeeper {
 public:
  explicit Housekeeper(Runtime& runtime);
  ~Housekeeper();  // stops and joins the thread; drops every watched owner

  // In a fork child (single-threaded): raw calls waiting for `owner`.
  uint64_t count_deferred_for(const Owner& owner) const noexcept {
    uint64_t n = 0;
    for (PendingCall* c = raw_.load(std::memory_order_relaxed); c; c = c->next_) {
      n += c->deferred_owner_ == &owner;
    }
    return n;
  }
  // Anything queued for the thread (watched owners not yet taken in, raw calls).
  bool has_work() const noexcept {
    return inbox_.load(std::memory_order_acquire) != nullptr ||
           raw_.load(std::memory_order_acquire) != nullptr;
  }
  void ensure_running() noexcept {
    if (!running_.load(std::memory_order_acquire)) start();
  }
  // Starts watching `owner` (no-op if watched). `urgent`: wake the thread even from a timed
  // sleep (the owner is idle, or a wake was deferred); otherwise it looks within half a deadline.
  void watch(Owner& owner, bool urgent) noexcept;
  // Runs `call` raw on the housekeeper thread (for signal handlers and the fork child).
  void defer_raw(Owner& owner, PendingCall* call) noexcept;

  // Statistics for tests and the benchmark: how many times the thread attached, and started.
  uint64_t attaches() const noexcept { return attaches_.load(std::memory_order_relaxed); }
  uint64_t starts() const noexcept { return starts_.load(std::memory_order_relaxed); }

  void lock_for_fork() XI_ACQUIRE(mu_) XI_ACQUIRE(start_mu_) {
    start_mu_.lock();
    mu_.lock();
  }
  void unlock_after_fork_parent() XI_RELEASE(mu_) XI_RELEASE(start_mu_) {
    mu_.unlock();
    start_mu_.unlock();
  }
  // In the child: the thread is gone; forget it (it restarts lazily) and unlock.
  void reset_after_fork_child() XI_RELEASE(mu_) XI_RELEASE(start_mu_);

 private:
  struct Watched {
    Owner* owner;    // holds one reference
    uint64_t epoch;  // owner's drain epoch when `since` was taken
    std::chrono::steady_clock::time_point since;
    std::chrono::steady_clock::time_point empty_since;  // epoch (unset) while it has calls
  };

  enum class Verdict { kKeep, kForget };

  void start() noexcept;
  static void* thread_main(void* self);
  void run() noexcept;
  void kick(bool urgent) noexcept;
  void take_inbox_locked(std::chrono::steady_clock::time_point now) XI_REQUIRES(mu_);
  void run_deferred_raw() noexcept;
  Verdict visit(Watched& w, std::chrono::steady_clock::time_point now,
                std::chrono::steady_clock::time_point& next_due) noexcept;
  void drain_attached(Owner& owner) noexcept;
  bool unwatch_if_empty(Owner& owner) noexcept;

  Runtime& runtime_;

  std::atomic<Owner*> inbox_{nullptr};              // Treiber stack through Owner::hk_next_
  std::atomic<PendingCall*> raw_{nullptr};          // Treiber stack through PendingCall::next_
  std::atomic<PendingCall*> raw_running_{nullptr};  // what run_deferred_raw has left to run
  std::atomic<uint32_t> seq_{0};                    // futex word, bumped by every kick
  std::atomic<uint32_t> sleep_mode_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::atomic<uint64_t> attaches_{0};
  std::atomic<uint64_t> starts_{0};

  internal::Mutex start_mu_;
  pthread_t thread_ XI_GUARDED_BY(start_mu_){};
  bool joinable_ XI_GUARDED_BY(start_mu_) = false;

  internal::Mutex mu_;
  std::vector<Watched> watched_ XI_GUARDED_BY(mu_);
};

}  // namespace xinterp
