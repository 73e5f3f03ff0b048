// AsyncWaiters: a FIFO of waiters that park no thread (coroutines of an event loop), kept by a
// BlockingQueue beside its condition variables, and woken when an item or room appears.
//
// An async waiter is a (waker, token) pair: waking it calls waker->wake(token), which must only
// record the token and poke whatever the waiting side watches (an event loop's eventfd); it runs
// on the thread that put or got, under no lock of the queue or of this list. Nothing is handed
// over with a wake-up: the woken side takes the item (or puts) itself with a non-blocking call,
// and registers again if another consumer was faster. A woken waiter that gives up (cancelled,
// timed out) before taking must pass the wake-up on (wake_one() again), or an item could sit in
// the queue while another async waiter sleeps.
//
// Main operations:
//   - add(waker, token) -> ticket: registers (FIFO); remove(ticket): unregisters one not woken
//     yet (false if it was woken already: its wake-up is on its way).
//   - wake_one(): wakes the oldest; wake_all(): every one (close).
//   - empty(): a relaxed look, for the publisher's fast path (see Memory ordering).
//
// Threading: every method is thread-safe; wake() is called outside the list's lock.
// Memory ordering: add() increments the count with a seq_cst RMW before the caller looks at the
// queue again (BlockingQueue::watch_get/watch_put do that look); a publisher makes its item
// visible, issues a seq_cst fence, then reads empty(). One of the two sees the other, so a
// waiter is never missed.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace xinterp {

class AsyncWaker {
 public:
  virtual ~AsyncWaker() = default;
  // Records `token` as ready and wakes the waiting side. Any thread; must not block for long.
  virtual void wake(uint64_t token) noexcept = 0;
};

class AsyncWaiters {
 public:
  AsyncWaiters() = default;
  AsyncWaiters(const AsyncWaiters&) = delete;
  AsyncWaiters& operator=(const AsyncWaiters&) = delete;

  // May throw std::bad_alloc (nothing registered then).
  uint64_t add(std::shared_ptr<AsyncWaker> waker, uint64_t token) {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t ticket = next_ticket_++;
    waiters_.emplace(ticket, Waiter{std::move(waker), token});
    count_.fetch_add(1, std::memory_order_seq_cst);
    return ticket;
  }

  // false: no such waiter (woken already, or never added).
  bool remove(uint64_t ticket) {
    std::shared_ptr<AsyncWaker> dropped;  // released outside the lock
    std::lock_guard<std::mutex> lock(mu_);
    auto it = waiters_.find(ticket);
    if (it == waiters_.end()) return false;
    dropped = std::move(it->second.waker);
    waiters_.erase(it);
    count_.fetch_sub(1, std::memory_order_relaxed);
    return true;
  }

  bool wake_one() {
    Waiter w;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (waiters_.empty()) return false;
      auto it = waiters_.begin();
      w = std::move(it->second);
      waiters_.erase(it);
      count_.fetch_sub(1, std::memory_order_relaxed);
    }
    w.waker->wake(w.token);
    return true;
  }

  void wake_all() {
    std::map<uint64_t, Waiter> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      all.swap(waiters_);
      count_.store(0, std::memory_order_relaxed);
    }
    for (auto& [ticket, w] : all) w.waker->wake(w.token);
  }

  bool empty() const noexcept { return count_.load(std::memory_order_relaxed) == 0; }
  size_t size() const noexcept { return count_.load(std::memory_order_relaxed); }

 private:
  struct Waiter {
    std::shared_ptr<AsyncWaker> waker;
    uint64_t token = 0;
  };
  mutable std::mutex mu_;
  std::map<uint64_t, Waiter> waiters_;  // by ticket: tickets grow, so this is FIFO order
  uint64_t next_ticket_ = 1;
  std::atomic<size_t> count_{0};
};

}  // namespace xinterp
