// Housekeeper: the runtime thread that makes sure no posted call is stranded.
//
// It watches every owner whose queue went from empty to non-empty (watch()). For each watched
// owner it:
//   - delivers wakes deferred by post_signal_safe() (engine wake() is not signal-safe);
//   - has it drained at once if the engine says it is idle;
//   - otherwise has it drained if the owner has not drained since the housekeeper first saw it
//     pending, for longer than the runtime's drain deadline (a deaf or missed wake);
//   - forgets it once its queue stayed empty for a whole deadline, or it is closed.
// It also runs, raw, the calls that signal handlers posted to owners that had already closed
// (so that no call function ever runs inside a signal handler).
//
// Drains run on worker threads, never on the housekeeper thread itself: calls run user code that
// may block forever, and one such call must delay only its own owner (issue 13). Decision: a
// worker pool, not a thread per owner: the housekeeper queues a drain job for an owner unless
// one is queued or running for it already (Owner::hk_draining_), so at most one worker works
// for an owner at a time; workers start on demand up to RuntimeOptions::max_drain_workers and
// retire after worker_idle_retire without a job. A worker attaches to one owner at a time and
// holds no lock of its own while attached or while a call runs. If no worker can be started and
// none is alive, the housekeeper drains on its own thread as it used to (counted,
// inline_drains()). The housekeeper sleeps on a futex: with nothing watched, until woken by
// watch(); otherwise until the earliest deadline.
//
// Stack: the housekeeper and its workers run calls, i.e. user code (a __del__, a
// __release_buffer__), so they get a full stack: the default thread stack size (glibc derives
// it from `ulimit -s`), and at least 8 MiB, what an ordinary thread of the program would get.
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
  // Drain workers started so far, alive now, and drains the housekeeper ran on its own thread
  // because no worker could be started (a fallback).
  uint64_t workers_started() const noexcept {
    return workers_started_.load(std::memory_order_relaxed);
  }
  uint64_t workers_alive() const noexcept XI_EXCLUDES(workers_mu_) {
    internal::MutexLock lock(workers_mu_);
    return workers_live_;
  }
  uint64_t inline_drains() const noexcept { return inline_drains_.load(std::memory_order_relaxed); }
  // Workers that could not be started (pthread_create failed): the job waited for a live worker,
  // or was drained inline (inline_drains()) when none was alive.
  uint64_t worker_start_failures() const noexcept {
    return worker_start_failures_.load(std::memory_order_relaxed);
  }
  // The stack size of every thread of the runtime that runs calls.
  static size_t call_stack_size() noexcept;

  void lock_for_fork() XI_ACQUIRE(mu_) XI_ACQUIRE(start_mu_) XI_ACQUIRE(workers_mu_) {
    start_mu_.lock();
    mu_.lock();
    workers_mu_.lock();
  }
  void unlock_after_fork_parent() XI_RELEASE(mu_) XI_RELEASE(start_mu_) XI_RELEASE(workers_mu_) {
    workers_mu_.unlock();
    mu_.unlock();
    start_mu_.unlock();
  }
  // In the child: the threads are gone; forget them (they restart lazily) and unlock.
  void reset_after_fork_child() XI_RELEASE(mu_) XI_RELEASE(start_mu_) XI_RELEASE(workers_mu_);

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
  // Queues a drain job for `owner` (hk_draining_ set by the caller) and makes sure a worker
  // will take it.
  void dispatch(Owner& owner) noexcept;
  static void* worker_main(void* self);
  void worker_loop() noexcept;
  void join_retired_workers() noexcept XI_EXCLUDES(workers_mu_);
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

  // Drain workers. Each job holds one reference to its owner; a worker drops it once done.
  mutable internal::Mutex workers_mu_;
  // Jobs queued, stop, or the last worker gone. Behind a pointer: a fork child gets a new one and
  // leaks the old, which the parent's vanished workers may be counted as waiting on (glibc's
  // condition variables wait for their old waiters, so notifying or destroying it could hang).
  internal::CondVar* workers_cv_ = new internal::CondVar();
  std::vector<Owner*> jobs_ XI_GUARDED_BY(workers_mu_);        // FIFO: taken from the front
  std::vector<pthread_t> retired_ XI_GUARDED_BY(workers_mu_);  // exited or exiting: to join
  size_t workers_live_ XI_GUARDED_BY(workers_mu_) = 0;
  size_t workers_idle_ XI_GUARDED_BY(workers_mu_) = 0;  // waiting for a job
  bool workers_stop_ XI_GUARDED_BY(workers_mu_) = false;
  std::atomic<uint64_t> workers_started_{0};
  std::atomic<uint64_t> inline_drains_{0};
  std::atomic<uint64_t> worker_start_failures_{0};
};

}  // namespace xinterp
