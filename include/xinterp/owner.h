// Owner: one interpreter as the core sees it: a never-reused id, a lifecycle state, a lock-free
// queue of pending calls and the counters of everything that ran. OwnerRef is a counted reference
// to an Owner record; the record outlives its interpreter, so a holder can always post to it.
//
// Main operations:
//   - post(call): queue a call to run inside the owner. Any thread. Never blocks, never fails for
//     capacity (the queue is an intrusive list threaded through the calls), never allocates for
//     an intrusive PendingCall. FIFO per producer. After the owner closed, the call runs at once
//     in RunMode::kRaw on the posting thread (counted run_raw).
//   - post_signal_safe(call): the same from a signal handler: no allocation, no locks, no engine
//     call. The engine wake is deferred to the housekeeper thread, and a call for a closed owner
//     is run raw by the housekeeper rather than inside the handler.
//   - run_or_post(call): inline when the calling thread is attached to this owner and nothing is
//     queued ahead of it, posted otherwise.
//   - drain(by): run everything queued, in order, outside every lock. Only one thread drains an
//     owner at a time; a drain that finds another in progress returns at once (the active one
//     picks up the rest).
//   - close: begin_close() -> wait_until_unused() -> finish_close(). finish_close drains every
//     call posted before it and seals the queue; calls posted after the seal take the raw path.
//     No call is lost and none runs twice. The one exception is abandon(), for process exit
//     while a thread is stuck inside a call: the calls its drain had not reached never run, and
//     abandon() returns how many (the engine counts them). The engine's object for the owner
//     must outlive a stuck call, which may still return and detach.
//
// Requirements:
//   - Whoever calls a method holds a reference to the owner (an OwnerRef) for the whole call:
//     a posted call may drop the last other reference before post() returns.
//   - drain() and finish_close() are called by a thread attached to the owner that holds a
//     reference to it (an OwnerRef).
//   - wait_until_unused() is called by a thread not attached to this owner (the housekeeper may
//     be waiting to attach).
//   - A PendingCall is not posted again until its call was entered.
//
// Threading: every method is thread-safe unless stated. Memory ordering: a successful post
// publishes the call node with release semantics; the drainer takes the list with acquire
// semantics, so everything the poster wrote before post() is visible to the call. has_pending()
// is one relaxed load (the owner's "is work pending" check on its hot path) and may be stale.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "xinterp/engine.h"
#include "xinterp/owner_stats.h"
#include "xinterp/pending_call.h"

namespace xinterp {

class Runtime;
class OwnerRef;

enum class OwnerState : uint8_t { kAlive, kClosing, kClosed };
enum class DrainBy : uint8_t { kOwner, kHousekeeper };

const char* to_string(OwnerState state) noexcept;

class Owner {
 public:
  Owner(const Owner&) = delete;
  Owner& operator=(const Owner&) = delete;

  OwnerId id() const noexcept { return id_; }
  OwnerState state() const noexcept { return state_.load(std::memory_order_acquire); }
  // The engine's object for this owner (a PyInterpreterState*). Meaningful only while the owner
  // is alive and the caller is attached to it or holds a use (try_use()).
  void* engine_data() const noexcept { return engine_data_; }
  Runtime& runtime() const noexcept { return *runtime_; }

  void post(PendingCall* call) noexcept;
  template <class F>
  requires(!std::is_convertible_v<F, PendingCall*>) void post(F&& f) {
    post(make_pending_call(std::forward<F>(f)));
  }
  void post_signal_safe(PendingCall* call) noexcept;
  void run_or_post(PendingCall* call) noexcept;

  bool has_pending() const noexcept {
    PendingCall* h = head_.load(std::memory_order_relaxed);
    return h != nullptr && h != sealed_marker();
  }
  size_t drain(DrainBy by) noexcept;

  // Lifecycle.
  bool begin_close() noexcept;        // alive -> closing; false if it was not alive
  void wait_until_unused() noexcept;  // until no try_use() is outstanding
  // The same, giving up after `timeout`; false if a use is still outstanding then.
  bool wait_until_unused(std::chrono::nanoseconds timeout) noexcept;
  void finish_close() noexcept;  // closing -> closed; drains, seals
  // closing -> closed without an engine: everything still queued runs raw. For owners whose
  // interpreter is already gone (fork child, runtime teardown).
  void close_raw() noexcept;
  // closing -> closed while a use never ends: a thread is stuck in one of its calls (a call that
  // never returns), and the process is exiting. Everything still queued runs raw now, later
  // posts run raw; the stuck thread keeps its drain lock and use, and the calls its drain had
  // not entered yet never run (unless the stuck call returns). Returns how many calls were
  // posted and neither ran nor are running raw: the abandoned ones. For process exit only.
  uint64_t abandon() noexcept;

  // A use lets a thread that is not the owner's resolve engine_data() and attach. It fails once
  // closing began; the closer waits for outstanding uses to end.
  bool try_use() noexcept;
  void end_use() noexcept;

  OwnerStats stats() const noexcept;

  void ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  friend class Runtime;
  friend class OwnerRegistry;
  friend class Housekeeper;

  Owner(Runtime& runtime, OwnerId id, void* engine_data) noexcept;
  ~Owner();

  static PendingCall* sealed_marker() noexcept {
    return reinterpret_cast<PendingCall*>(uintptr_t{1});
  }
  // Pushes onto the queue; returns the previous head (sealed_marker() = not pushed).
  PendingCall* push(PendingCall* call) noexcept;
  void on_first_pending() noexcept;
  bool invoke(PendingCall* call, RunMode mode) noexcept;  // runs it, counts a failure
  void run_now(PendingCall* call, RunMode mode, std::atomic<uint64_t>& counter) noexcept;
  void run_raw_deferred(PendingCall* call) noexcept;  // by the housekeeper
  bool try_lock_drain() noexcept;
  void unlock_drain() noexcept;
  size_t drain_locked(std::atomic<uint64_t>& counter, RunMode mode) noexcept;
  size_t run_batch(PendingCall* lifo, RunMode mode, std::atomic<uint64_t>& counter) noexcept;
  PendingCall* take_orphaned_batch() noexcept;
  PendingCall* seal() noexcept;  // returns what was queued (LIFO order)
  void after_fork_child(bool survives, uint64_t forking_thread) noexcept;
  void count_lost_after_fork() noexcept;

  // Producer side: contended by posters.
  alignas(64) std::atomic<PendingCall*> head_{nullptr};
  std::atomic<uint64_t> posted_{0};
  std::atomic<uint64_t> wakes_{0};

  // Consumer side.
  alignas(64) std::atomic<bool> draining_{false};
  std::atomic<uint64_t> drainer_thread_{0};
  std::atomic<uint64_t> drain_epoch_{0};
  // Where the batch being drained stands, so that a fork child whose drainer did not survive the
  // fork can recover the calls not entered yet. Written only by the drain-lock holder.
  // batch_phase_: 0 none; 1 ordering (batch_lifo_ is the whole batch, linked by next_);
  // 2 running (in_flight_ is the first call not entered yet, linked by fifo_next_).
  std::atomic<int> batch_phase_{0};
  std::atomic<PendingCall*> batch_lifo_{nullptr};
  std::atomic<PendingCall*> in_flight_{nullptr};
  std::atomic<uint64_t> run_inline_{0};
  std::atomic<uint64_t> run_by_owner_{0};
  std::atomic<uint64_t> run_by_housekeeper_{0};
  std::atomic<uint64_t> run_raw_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> peak_backlog_{0};
  std::atomic<uint64_t> lost_{0};  // written only in a fork child

  // Lifecycle and housekeeping.
  alignas(64) std::atomic<OwnerState> state_{OwnerState::kAlive};
  std::atomic<uint32_t> users_{0};
  std::atomic<uint32_t> refs_{0};
  std::atomic<bool> hk_watched_{false};
  std::atomic<bool> hk_draining_{false};  // a housekeeper drain job is queued or running
  std::atomic<bool> wake_deferred_{false};
  Owner* hk_next_ = nullptr;  // housekeeper inbox link, written before publication

  Runtime* const runtime_;
  const OwnerId id_;
  void* const engine_data_;
};

// A counted reference to an Owner record. Cheap to copy (one atomic increment).
class OwnerRef {
 public:
  OwnerRef() noexcept = default;
  explicit OwnerRef(Owner* owner) noexcept : owner_(owner) {
    if (owner_) owner_->ref();
  }
  OwnerRef(const OwnerRef& o) noexcept : OwnerRef(o.owner_) {}
  OwnerRef(OwnerRef&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)) {}
  OwnerRef& operator=(OwnerRef o) noexcept {
    std::swap(owner_, o.owner_);
    return *this;
  }
  ~OwnerRef() {
    if (owner_) owner_->unref();
  }

  Owner* get() const noexcept { return owner_; }
  Owner* operator->() const noexcept { return owner_; }
  Owner& operator*() const noexcept { return *owner_; }
  explicit operator bool() const noexcept { return owner_ != nullptr; }

 private:
  Owner* owner_ = nullptr;
};

// --- inline fast path -----------------------------------------------------------------------

inline PendingCall* Owner::push(PendingCall* call) noexcept {
  PendingCall* old = head_.load(std::memory_order_relaxed);
  do {
    if (old == sealed_marker()) return old;
    call->next_ = old;
  } while (!head_.compare_exchange_weak(old, call, std::memory_order_seq_cst,
                                        std::memory_order_relaxed));
  return old;
}

inline void Owner::post(PendingCall* call) noexcept {
  posted_.fetch_add(1, std::memory_order_relaxed);
  PendingCall* old = push(call);
  if (old == nullptr) {
    on_first_pending();
  } else if (old == sealed_marker()) {
    run_now(call, RunMode::kRaw, run_raw_);  // the caller's reference keeps us alive
  }
}

}  // namespace xinterp
