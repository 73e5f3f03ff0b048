#include "xinterp/owner.h"

#include <climits>
#include <exception>

#include "base/fail.h"
#include "futex.h"
#include "housekeeper.h"
#include "owner_registry.h"
#include "thread_id.h"
#include "xinterp/runtime.h"

namespace xinterp {

const char* to_string(OwnerState state) noexcept {
  switch (state) {
    case OwnerState::kAlive:
      return "alive";
    case OwnerState::kClosing:
      return "closing";
    case OwnerState::kClosed:
      return "closed";
  }
  return "?";
}

Owner::Owner(Runtime& runtime, OwnerId id, void* engine_data) noexcept
    : runtime_(&runtime), id_(id), engine_data_(engine_data) {}

Owner::~Owner() {
  PendingCall* h = head_.load(std::memory_order_relaxed);
  // An owner record dies only after its queue was sealed (closed) or while it never had a call:
  // a record freed with calls queued would lose them.
  XI_CHECK(h == nullptr || h == sealed_marker(), "owner %llu freed with calls still queued",
           static_cast<unsigned long long>(id_));
}

void Owner::on_first_pending() noexcept {
  Runtime& rt = *runtime_;
  // The engine's object may only be touched under a use: without one, a closer could finish
  // (and the engine free the interpreter) between our push and the wake. If the use is refused,
  // close has begun and its drain runs our call; there is no one to wake.
  if (!try_use()) return;
  wakes_.fetch_add(1, std::memory_order_relaxed);
  rt.engine().wake(*this);
  const bool idle = rt.engine().is_idle(*this);
  end_use();
  Housekeeper& hk = rt.housekeeper();
  hk.ensure_running();
  hk.watch(*this, /*urgent=*/idle);
}

void Owner::post_signal_safe(PendingCall* call) noexcept {
  posted_.fetch_add(1, std::memory_order_relaxed);
  PendingCall* old = push(call);
  Housekeeper& hk = runtime_->housekeeper();
  if (old == sealed_marker()) {
    hk.defer_raw(*this, call);  // never run a call function inside the signal handler
  } else if (old == nullptr) {
    wake_deferred_.store(true, std::memory_order_seq_cst);
    hk.watch(*this, /*urgent=*/true);
  }
}

void Owner::run_or_post(PendingCall* call) noexcept {
  if (runtime_->engine().current_owner() == id_ && state() != OwnerState::kClosed) {
    // Inline only when nothing is queued ahead and no drain is in progress, so that the calls of
    // one producer keep their order.
    if (!has_pending() && !draining_.load(std::memory_order_relaxed)) {
      posted_.fetch_add(1, std::memory_order_relaxed);
      run_now(call, RunMode::kInOwner, run_inline_);
      return;
    }
    post(call);
    drain(DrainBy::kOwner);
    return;
  }
  post(call);
}

bool Owner::invoke(PendingCall* call, RunMode mode) noexcept {
  bool ok = false;
  try {
    ok = call->fn_(call, mode);
    if (!ok && mode == RunMode::kInOwner) {
      runtime_->engine().report_failure(*this, "pending call reported failure");
    }
  } catch (const std::exception& e) {
    if (mode == RunMode::kInOwner) runtime_->engine().report_failure(*this, e.what());
  } catch (...) {
    if (mode == RunMode::kInOwner) runtime_->engine().report_failure(*this, "unknown exception");
  }
  if (!ok) failed_.fetch_add(1, std::memory_order_relaxed);
  return ok;
}

void Owner::run_now(PendingCall* call, RunMode mode, std::atomic<uint64_t>& counter) noexcept {
  invoke(call, mode);
  counter.fetch_add(1, std::memory_order_release);
}

void Owner::run_raw_deferred(PendingCall* call) noexcept { run_now(call, RunMode::kRaw, run_raw_); }

bool Owner::try_lock_drain() noexcept {
  if (draining_.exchange(true, std::memory_order_acquire)) return false;
  drainer_thread_.store(internal::this_thread_id(), std::memory_order_relaxed);
  return true;
}

void Owner::unlock_drain() noexcept {
  drainer_thread_.store(0, std::memory_order_relaxed);
  draining_.store(false, std::memory_order_seq_cst);
}

size_t Owner::run_batch(PendingCall* lifo, RunMode mode, std::atomic<uint64_t>& counter) noexcept {
  batch_lifo_.store(lifo, std::memory_order_relaxed);
  batch_phase_.store(1, std::memory_order_release);
  // Order the batch through fifo_next_, leaving next_ intact for a fork child to recover.
  PendingCall* fifo = nullptr;
  uint64_t n = 0;
  for (PendingCall* c = lifo; c; c = c->next_) {
    c->fifo_next_ = fifo;
    fifo = c;
    ++n;
  }
  uint64_t peak = peak_backlog_.load(std::memory_order_relaxed);
  while (n > peak && !peak_backlog_.compare_exchange_weak(peak, n, std::memory_order_relaxed)) {
  }
  in_flight_.store(fifo, std::memory_order_release);
  batch_phase_.store(2, std::memory_order_release);
  // run_by_owner_ and run_by_housekeeper_ have one writer at a time (the drain-lock holder), so
  // they are bumped with a plain load and store, not a locked increment: exact at every moment
  // (a fork child sees every call that returned) at the cost of a register add.
  const bool exclusive = &counter != &run_raw_;
  while (fifo) {
    PendingCall* next = fifo->fifo_next_;  // the call may free or re-post its node
    in_flight_.store(next, std::memory_order_release);
    invoke(fifo, mode);
    if (exclusive) {
      counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    } else {
      counter.fetch_add(1, std::memory_order_release);
    }
    fifo = next;
  }
  batch_phase_.store(0, std::memory_order_release);
  return n;
}

PendingCall* Owner::take_orphaned_batch() noexcept {
  // Returns, linked by next_ in FIFO order, the calls of a vanished drainer's batch that it had
  // not entered. The call it was running is lost with it (counted by count_lost_after_fork).
  PendingCall* fifo = nullptr;
  switch (batch_phase_.load(std::memory_order_acquire)) {
    case 1: {
      PendingCall* batch = batch_lifo_.load(std::memory_order_relaxed);
      // Not taken yet if still reachable from the queue: then nothing is orphaned.
      for (PendingCall* q = head_.load(std::memory_order_relaxed);
           q && q != sealed_marker() && batch; q = q->next_) {
        if (q == batch) batch = nullptr;
      }
      for (PendingCall* c = batch; c;) {
        PendingCall* next = c->next_;
        c->next_ = fifo;
        fifo = c;
        c = next;
      }
      break;
    }
    case 2: {
      fifo = in_flight_.load(std::memory_order_acquire);
      for (PendingCall* c = fifo; c; c = c->fifo_next_) c->next_ = c->fifo_next_;
      break;
    }
    default:
      break;
  }
  batch_phase_.store(0, std::memory_order_relaxed);
  return fifo;
}

size_t Owner::drain_locked(std::atomic<uint64_t>& counter, RunMode mode) noexcept {
  size_t total = 0;
  for (;;) {
    // Only the drain-lock holder seals, so a head that is not sealed now stays unsealed until
    // our exchange.
    PendingCall* h = head_.load(std::memory_order_acquire);
    if (h == nullptr || h == sealed_marker()) break;
    // Publish the batch before taking it, so that a fork child can find it whichever side of
    // the take the fork falls (after_fork_child checks whether it is still queued).
    batch_lifo_.store(h, std::memory_order_relaxed);
    batch_phase_.store(1, std::memory_order_release);
    if (!head_.compare_exchange_strong(h, nullptr, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
      continue;  // a producer pushed on top; take the whole stack
    }
    total += run_batch(h, mode, counter);
  }
  drain_epoch_.fetch_add(1, std::memory_order_release);
  return total;
}

size_t Owner::drain(DrainBy by) noexcept {
  std::atomic<uint64_t>& counter = by == DrainBy::kOwner ? run_by_owner_ : run_by_housekeeper_;
  size_t total = 0;
  for (;;) {
    if (!try_lock_drain()) return total;  // the active drainer takes what we would have
    total += drain_locked(counter, RunMode::kInOwner);
    unlock_drain();
    // A post that landed after our last take may have had its drain refused by our lock.
    PendingCall* h = head_.load(std::memory_order_seq_cst);
    if (h == nullptr || h == sealed_marker()) return total;
  }
}

PendingCall* Owner::seal() noexcept {
  return head_.exchange(sealed_marker(), std::memory_order_acq_rel);
}

bool Owner::begin_close() noexcept {
  OwnerState expected = OwnerState::kAlive;
  return state_.compare_exchange_strong(expected, OwnerState::kClosing, std::memory_order_seq_cst);
}

bool Owner::try_use() noexcept {
  users_.fetch_add(1, std::memory_order_seq_cst);
  if (state_.load(std::memory_order_seq_cst) != OwnerState::kAlive) {
    end_use();
    return false;
  }
  return true;
}

void Owner::end_use() noexcept {
  // Saturating: a fork child resets users_ to 0 while the forking thread may still hold a use.
  uint32_t u = users_.load(std::memory_order_relaxed);
  do {
    if (u == 0) return;
  } while (!users_.compare_exchange_weak(u, u - 1, std::memory_order_seq_cst,
                                         std::memory_order_relaxed));
  if (u == 1 && state_.load(std::memory_order_seq_cst) != OwnerState::kAlive) {
    internal::futex_wake(users_, INT_MAX);
  }
}

void Owner::wait_until_unused() noexcept {
  for (;;) {
    uint32_t u = users_.load(std::memory_order_seq_cst);
    if (u == 0) return;
    internal::futex_wait(users_, u);
  }
}

bool Owner::wait_until_unused(std::chrono::nanoseconds timeout) noexcept {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    uint32_t u = users_.load(std::memory_order_seq_cst);
    if (u == 0) return true;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds(0)) return false;
    internal::futex_wait(users_, u, std::chrono::duration_cast<std::chrono::nanoseconds>(left));
  }
}

uint64_t Owner::abandon() noexcept {
  begin_close();
  // Sealing without the drain lock is safe: the stuck drainer's take (a CAS from a call list to
  // nullptr) fails on the seal marker, and it stops there. Its batch bookkeeping is left alone.
  PendingCall* lifo = seal();
  PendingCall* fifo = nullptr;
  while (lifo && lifo != sealed_marker()) {
    PendingCall* next = lifo->next_;
    lifo->next_ = fifo;
    fifo = lifo;
    lifo = next;
  }
  while (fifo) {
    PendingCall* next = fifo->next_;  // the call may free its node
    run_now(fifo, RunMode::kRaw, run_raw_);
    fifo = next;
  }
  state_.store(OwnerState::kClosed, std::memory_order_seq_cst);
  runtime_->registry().retire(*this);
  const OwnerStats s = stats();
  const uint64_t done = s.run_total() + s.lost;
  return s.posted > done ? s.posted - done : 0;
}

void Owner::finish_close() noexcept {
  begin_close();  // no-op if the caller began it
  Engine& engine = runtime_->engine();
  while (!try_lock_drain()) engine.yield_attached(*this);
  drain_locked(run_by_owner_, RunMode::kInOwner);
  PendingCall* rest = seal();
  if (rest && rest != sealed_marker()) run_batch(rest, RunMode::kInOwner, run_by_owner_);
  state_.store(OwnerState::kClosed, std::memory_order_seq_cst);
  unlock_drain();
  runtime_->registry().retire(*this);
}

void Owner::close_raw() noexcept {
  begin_close();
  wait_until_unused();
  while (!try_lock_drain()) sched_yield();
  PendingCall* rest = seal();
  if (rest && rest != sealed_marker()) run_batch(rest, RunMode::kRaw, run_raw_);
  state_.store(OwnerState::kClosed, std::memory_order_seq_cst);
  unlock_drain();
  runtime_->registry().retire(*this);
}

void Owner::after_fork_child(bool survives, uint64_t forking_thread) noexcept {
  // Only the forking thread exists now: uses and drains of other threads will never end.
  users_.store(0, std::memory_order_relaxed);
  PendingCall* orphaned = nullptr;  // FIFO: what a vanished drainer had not entered yet
  if (draining_.load(std::memory_order_relaxed) &&
      drainer_thread_.load(std::memory_order_relaxed) != forking_thread) {
    unlock_drain();
    orphaned = take_orphaned_batch();
  }
  hk_watched_.store(false, std::memory_order_relaxed);
  // A drain job of the parent's housekeeper: queued jobs are dropped by the housekeeper's reset,
  // and a worker that was running one is gone.
  hk_draining_.store(false, std::memory_order_relaxed);
  wake_deferred_.store(false, std::memory_order_relaxed);
  Housekeeper& hk = runtime_->housekeeper();
  if (survives) {
    if (orphaned) {
      // Single-threaded here: put the orphans at the bottom of the LIFO queue so that they run
      // before everything queued after them.
      PendingCall* lifo = nullptr;
      while (orphaned) {
        PendingCall* next = orphaned->next_;
        orphaned->next_ = lifo;
        lifo = orphaned;
        orphaned = next;
      }
      PendingCall* head = head_.load(std::memory_order_relaxed);
      if (head == nullptr) {
        head_.store(lifo, std::memory_order_relaxed);
      } else {
        PendingCall* last = head;
        while (last->next_) last = last->next_;
        last->next_ = lifo;
      }
    }
    if (has_pending()) {
      wake_deferred_.store(true, std::memory_order_relaxed);
      hk.watch(*this, /*urgent=*/true);
    }
    count_lost_after_fork();
    return;
  }
  state_.store(OwnerState::kClosed, std::memory_order_relaxed);
  while (orphaned) {
    PendingCall* next = orphaned->next_;
    hk.defer_raw(*this, orphaned);
    orphaned = next;
  }
  PendingCall* rest = seal();
  while (rest && rest != sealed_marker()) {
    PendingCall* next = rest->next_;
    hk.defer_raw(*this, rest);  // run raw once the housekeeper restarts, never in the handler
    rest = next;
  }
  count_lost_after_fork();
}

void Owner::count_lost_after_fork() noexcept {
  // Single-threaded here, with every recoverable call back in the queue or on the housekeeper's
  // raw list: whatever was posted and is neither run nor waiting vanished with another thread
  // (a producer between its count and its push, a call a drainer had entered).
  uint64_t waiting = runtime_->housekeeper().count_deferred_for(*this);
  for (PendingCall* c = head_.load(std::memory_order_relaxed); c && c != sealed_marker();
       c = c->next_) {
    ++waiting;
  }
  OwnerStats s = stats();
  uint64_t accounted = s.run_total() + s.lost + waiting;
  if (s.posted > accounted) lost_.fetch_add(s.posted - accounted, std::memory_order_relaxed);
}

OwnerStats Owner::stats() const noexcept {
  OwnerStats s;
  // Runs before posts: a snapshot never shows more runs than posts.
  s.run_inline = run_inline_.load(std::memory_order_acquire);
  s.run_by_owner = run_by_owner_.load(std::memory_order_acquire);
  s.run_by_housekeeper = run_by_housekeeper_.load(std::memory_order_acquire);
  s.run_raw = run_raw_.load(std::memory_order_acquire);
  s.failed = failed_.load(std::memory_order_relaxed);
  s.wakes = wakes_.load(std::memory_order_relaxed);
  s.peak_backlog = peak_backlog_.load(std::memory_order_relaxed);
  s.lost = lost_.load(std::memory_order_relaxed);
  s.posted = posted_.load(std::memory_order_acquire);
  return s;
}

}  // namespace xinterp
