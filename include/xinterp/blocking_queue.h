// BlockingQueue<T>: a FIFO of items with an optional capacity, whose put and get block with real
// waits (a brief spin, then a condition-variable park on a futex) and honour timeouts to the
// clock's resolution. CPython's interpreter queues poll with 10 ms sleeps instead.
//
// A two-lock linked queue (Michael & Scott): producers take only the tail lock and consumers
// only the head lock, so a producer and a consumer on different cores do not contend; what
// crosses between them is the node itself.
//
// Main operations:
//   - put(item, timeout) / get(out, timeout): timeout nullopt = wait as long as needed, zero =
//     do not wait. Results: kOk, kFull / kEmpty (would block with a zero timeout), kTimeout,
//     kClosed.
//   - close(): every waiter returns kClosed, and so does every later put or get; the items
//     still queued stay for take_all().
//   - Cancellable waits: put/get take an optional `cancel` flag. A wait that finds it set
//     (before it parks, or once woken) returns kTimeout at once, as if its timeout ran out;
//     an item already there is still taken (or room used), so a cancelled wait never loses one.
//     The canceller sets the flag, then calls wake_all(), which wakes every parked waiter to
//     look at its flag (the others re-park). Used to interrupt code blocked in a wait.
//   - take_all(), remove_if(pred): take items out (to destroy them outside the lock);
//     visit(fn): look at every item.
//   - size(), get_waiters(), put_waiters(): relaxed loads; may be stale.
//   - watch_get / watch_put(waker, token) -> ticket: register an async waiter (async_waiters.h)
//     woken when an item / room appears or the queue closes (at once if there is one already);
//     unwatch_*(ticket) unregisters it (false: already woken); pass_on_*() hands a wake-up that
//     its waiter did not use to the next async waiter.
//
// Requirements: T is movable; its destructor may run on any thread that calls get, take_all or
// remove_if (never under the queue's lock).
// Threading: every method is thread-safe. Callers that hold an interpreter lock (a GIL) release
// it around blocking calls themselves.
// Memory ordering: everything a producer wrote before a successful put happens-before the
// consumer's get of that item returns (the node's next pointer: release store, acquire load).
// A parked consumer or producer is never missed: the waiter registers (seq_cst) before it looks
// again, the other side publishes (seq_cst fence) before it looks for waiters.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "xinterp/async_waiters.h"

namespace xinterp {

enum class QueueStatus { kOk, kFull, kEmpty, kTimeout, kClosed };

// The short spin BlockingQueue does before it parks, for any hand-over between two running
// threads (a channel's receipt, too): a few thousand pause instructions (tens of microseconds),
// so that a partner already on another core costs no futex sleep and wake. Skipped on one core.
// Returns ready()'s last answer.
template <class Ready>
bool spin_briefly(Ready ready) {
  constexpr int kSpins = 4000;
  static const bool multicore = std::thread::hardware_concurrency() > 1;
  if (!multicore) return ready();
  for (int i = 0; i < kSpins; ++i) {
    if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  return ready();
}

template <class T>
class BlockingQueue {
 public:
  using Timeout = std::optional<std::chrono::nanoseconds>;

  // maxsize 0: unbounded.
  explicit BlockingQueue(size_t maxsize = 0) : maxsize_(maxsize) { head_ = tail_ = new Node(); }
  ~BlockingQueue() {
    for (Node* n = head_; n != nullptr;) {
      Node* next = n->next.load(std::memory_order_relaxed);
      delete n;
      n = next;
    }
  }
  BlockingQueue(const BlockingQueue&) = delete;
  BlockingQueue& operator=(const BlockingQueue&) = delete;

  size_t maxsize() const noexcept { return maxsize_; }
  size_t size() const noexcept {
    const uint64_t d = dequeued_.load(std::memory_order_acquire);
    const uint64_t e = enqueued_.load(std::memory_order_acquire);
    return e > d ? static_cast<size_t>(e - d) : 0;
  }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  // Threads parked in get() / put() right now (spinning ones are not counted). For tests and
  // stats, which wait for a waiter to park instead of sleeping; may be stale.
  int get_waiters() const noexcept { return get_waiters_.load(std::memory_order_relaxed); }
  int put_waiters() const noexcept { return put_waiters_.load(std::memory_order_relaxed); }

  using Cancel = const std::atomic<bool>*;

  QueueStatus put(T&& item, Timeout timeout, Cancel cancel = nullptr) {
    if (closed()) return QueueStatus::kClosed;
    if (maxsize_ != 0) {
      if (size() >= maxsize_ && timeout != std::chrono::nanoseconds::zero()) {
        spin_until([&] { return size() < maxsize_; });
      }
      std::unique_lock<std::mutex> lock(tail_mu_);
      QueueStatus s = wait(
          lock, not_full_, put_waiters_, timeout, QueueStatus::kFull,
          [&] { return size() < maxsize_; }, cancel);
      if (s != QueueStatus::kOk) return s;
      append(std::move(item));
    } else {
      std::lock_guard<std::mutex> lock(tail_mu_);
      if (closed_.load(std::memory_order_relaxed)) return QueueStatus::kClosed;
      append(std::move(item));
    }
    // Dekker with get(): we published the item, then look for a parked consumer; a consumer
    // registers as a waiter, then looks for an item. One of us sees the other.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (get_waiters_.load(std::memory_order_relaxed) > 0) {
      std::lock_guard<std::mutex> lock(head_mu_);
      not_empty_.notify_one();
    }
    if (!async_getters_.empty()) async_getters_.wake_one();
    return QueueStatus::kOk;
  }

  QueueStatus get(T* out, Timeout timeout, Cancel cancel = nullptr) {
    if (timeout != std::chrono::nanoseconds::zero() && size() == 0) {
      spin_until([&] { return size() > 0; });
    }
    Node* old;
    {
      std::unique_lock<std::mutex> lock(head_mu_);
      QueueStatus s = wait(
          lock, not_empty_, get_waiters_, timeout, QueueStatus::kEmpty,
          [&] { return head_->next.load(std::memory_order_acquire) != nullptr; }, cancel);
      if (s != QueueStatus::kOk) return s;
      Node* next = head_->next.load(std::memory_order_acquire);
      *out = std::move(next->value);
      old = head_;
      head_ = next;
      dequeued_.fetch_add(1, std::memory_order_release);
    }
    delete old;
    if (maxsize_ != 0) {
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (put_waiters_.load(std::memory_order_relaxed) > 0) {
        std::lock_guard<std::mutex> lock(tail_mu_);
        not_full_.notify_one();
      }
      if (!async_putters_.empty()) async_putters_.wake_one();
    }
    return QueueStatus::kOk;
  }

  void close() {
    {
      std::lock_guard<std::mutex> h(head_mu_);
      std::lock_guard<std::mutex> t(tail_mu_);
      closed_.store(true, std::memory_order_release);
    }
    not_empty_.notify_all();
    not_full_.notify_all();
    async_getters_.wake_all();
    async_putters_.wake_all();
  }

  // Async waiters (see the contract above). watch_* may throw std::bad_alloc (nothing
  // registered then).
  uint64_t watch_get(std::shared_ptr<AsyncWaker> waker, uint64_t token) {
    const uint64_t ticket = async_getters_.add(std::move(waker), token);  // seq_cst
    pass_on_get();  // an item put before we registered: its put may not have seen us
    return ticket;
  }
  uint64_t watch_put(std::shared_ptr<AsyncWaker> waker, uint64_t token) {
    const uint64_t ticket = async_putters_.add(std::move(waker), token);
    pass_on_put();
    return ticket;
  }
  bool unwatch_get(uint64_t ticket) { return async_getters_.remove(ticket); }
  bool unwatch_put(uint64_t ticket) { return async_putters_.remove(ticket); }
  void pass_on_get() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (size() > 0 || closed()) async_getters_.wake_one();
  }
  void pass_on_put() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (maxsize_ == 0 || size() < maxsize_ || closed()) async_putters_.wake_one();
  }
  size_t async_get_waiters() const noexcept { return async_getters_.size(); }
  size_t async_put_waiters() const noexcept { return async_putters_.size(); }

  // Wakes every parked put and get, to look at their cancel flag (set it before calling).
  void wake_all() {
    {
      std::lock_guard<std::mutex> h(head_mu_);
      not_empty_.notify_all();
    }
    std::lock_guard<std::mutex> t(tail_mu_);
    not_full_.notify_all();
  }

  std::deque<T> take_all() {
    return remove_if([](T&) { return true; });
  }

  // Calls look(item) on every item, in order, under the locks (for statistics).
  template <class Look>
  void visit(Look look) const {
    std::lock_guard<std::mutex> h(head_mu_);
    std::lock_guard<std::mutex> t(tail_mu_);
    for (Node* n = head_->next.load(std::memory_order_acquire); n != nullptr;
         n = n->next.load(std::memory_order_acquire)) {
      look(n->value);
    }
  }

  // Calls edit(item) on every item, in order, under the locks; items for which it returns true
  // are moved to the result (and so destroyed by the caller, outside the locks).
  template <class Edit>
  std::deque<T> remove_if(Edit edit) {
    std::deque<T> removed;
    std::vector<Node*> dead;
    {
      std::lock_guard<std::mutex> h(head_mu_);
      std::lock_guard<std::mutex> t(tail_mu_);
      Node* prev = head_;
      for (Node* n = head_->next.load(std::memory_order_relaxed); n != nullptr;) {
        Node* next = n->next.load(std::memory_order_relaxed);
        if (edit(n->value)) {
          removed.push_back(std::move(n->value));
          prev->next.store(next, std::memory_order_relaxed);
          if (tail_ == n) tail_ = prev;
          dead.push_back(n);
          dequeued_.fetch_add(1, std::memory_order_release);
        } else {
          prev = n;
        }
        n = next;
      }
    }
    for (Node* n : dead) delete n;
    if (!removed.empty() && maxsize_ != 0) {
      {
        std::lock_guard<std::mutex> lock(tail_mu_);
        not_full_.notify_all();
      }
      async_putters_.wake_all();
    }
    return removed;
  }

 private:
  struct Node {
    T value{};
    std::atomic<Node*> next{nullptr};
  };

  void append(T&& item) {  // under tail_mu_
    Node* node = new Node();
    node->value = std::move(item);
    tail_->next.store(node, std::memory_order_release);
    tail_ = node;
    enqueued_.fetch_add(1, std::memory_order_release);
  }

  template <class Ready>
  void spin_until(Ready ready) const {
    spin_briefly([&] { return ready() || closed(); });
  }

  // Waits on cv (its mutex held through `lock`) until ready(), close, the timeout, or *cancel
  // (kTimeout).
  template <class Ready>
  QueueStatus wait(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                   std::atomic<int>& waiters, Timeout timeout, QueueStatus would_block, Ready ready,
                   Cancel cancel) {
    if (closed_.load(std::memory_order_relaxed)) return QueueStatus::kClosed;
    if (ready()) return QueueStatus::kOk;
    if (timeout == std::chrono::nanoseconds::zero()) return would_block;
    const auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                                  : std::chrono::steady_clock::time_point::max();
    waiters.fetch_add(1, std::memory_order_seq_cst);
    QueueStatus result = QueueStatus::kOk;
    while (true) {
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (closed_.load(std::memory_order_relaxed)) {
        result = QueueStatus::kClosed;
        break;
      }
      if (ready()) break;
      // Read under the lock that wake_all() takes: set before it, never missed.
      if (cancel != nullptr && cancel->load(std::memory_order_acquire)) {
        result = QueueStatus::kTimeout;
        break;
      }
      if (!timeout) {
        cv.wait(lock);
      } else if (cv.wait_until(lock, deadline) == std::cv_status::timeout) {
        if (!ready()) result = closed() ? QueueStatus::kClosed : QueueStatus::kTimeout;
        break;
      }
    }
    waiters.fetch_sub(1, std::memory_order_relaxed);
    return result;
  }

  const size_t maxsize_;
  // Consumers' side.
  alignas(64) mutable std::mutex head_mu_;
  Node* head_;  // the dummy before the first item; under head_mu_
  std::condition_variable not_empty_;
  std::atomic<uint64_t> dequeued_{0};
  // Producers' side.
  alignas(64) mutable std::mutex tail_mu_;
  Node* tail_;  // under tail_mu_
  std::condition_variable not_full_;
  std::atomic<uint64_t> enqueued_{0};
  // Read on every put and get, written only when a thread parks: a line of their own, so that
  // reading them does not pull in the other side's lock.
  alignas(64) std::atomic<int> get_waiters_{0};
  std::atomic<int> put_waiters_{0};
  std::atomic<bool> closed_{false};
  // Waiters that park no thread (event loops' coroutines).
  AsyncWaiters async_getters_;
  AsyncWaiters async_putters_;
};

}  // namespace xinterp
