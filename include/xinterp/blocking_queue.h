// BlockingQueue<T>: a FIFO of items with an optional capacity, whose put and get block with real
// waits (a brief spin, then a condition-variable park on a futex) and honour timeouts to the
// clock's resolution. CPython's interpreter queues poll with 10 ms sleeps instead.
//
// Main operations:
//   - put(item, timeout) / get(out, timeout): timeout nullopt = wait as long as needed, zero =
//     do not wait. Results: kOk, kFull / kEmpty (would block with a zero timeout), kTimeout,
//     kClosed.
//   - close(): every waiter returns kClosed, and so does every later put or get; the items
//     still queued stay for take_all().
//   - take_all(), remove_if(pred): take items out (to destroy them outside the lock);
//     visit(fn): look at every item.
//   - size(): one relaxed load; may be stale.
//
// Requirements: T is movable; its destructor may run on any thread that calls get, take_all or
// remove_if (never under the queue's lock).
// Threading: every method is thread-safe. Callers that hold an interpreter lock (a GIL) release
// it around blocking calls themselves.
// Memory ordering: everything a producer wrote before a successful put happens-before the
// consumer's get of that item returns (the queue's mutex).
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

namespace xinterp {

enum class QueueStatus { kOk, kFull, kEmpty, kTimeout, kClosed };

template <class T>
class BlockingQueue {
 public:
  using Timeout = std::optional<std::chrono::nanoseconds>;

  // maxsize 0: unbounded.
  explicit BlockingQueue(size_t maxsize = 0) : maxsize_(maxsize) {}
  BlockingQueue(const BlockingQueue&) = delete;
  BlockingQueue& operator=(const BlockingQueue&) = delete;

  size_t maxsize() const noexcept { return maxsize_; }
  size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  QueueStatus put(T&& item, Timeout timeout) {
    if (maxsize_ != 0 && timeout != std::chrono::nanoseconds::zero()) {
      spin_until([&] { return size() < maxsize_; });
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (maxsize_ != 0) {
      QueueStatus s = wait(lock, not_full_, put_waiters_, timeout, QueueStatus::kFull,
                           [&] { return items_.size() < maxsize_; });
      if (s != QueueStatus::kOk) return s;
    } else if (closed_.load(std::memory_order_relaxed)) {
      return QueueStatus::kClosed;
    }
    items_.push_back(std::move(item));
    size_.store(items_.size(), std::memory_order_relaxed);
    const bool wake = get_waiters_ > 0;
    lock.unlock();
    if (wake) not_empty_.notify_one();
    return QueueStatus::kOk;
  }

  QueueStatus get(T* out, Timeout timeout) {
    if (timeout != std::chrono::nanoseconds::zero()) spin_until([&] { return size() > 0; });
    std::unique_lock<std::mutex> lock(mu_);
    QueueStatus s = wait(lock, not_empty_, get_waiters_, timeout, QueueStatus::kEmpty,
                         [&] { return !items_.empty(); });
    if (s != QueueStatus::kOk) return s;
    *out = std::move(items_.front());
    items_.pop_front();
    size_.store(items_.size(), std::memory_order_relaxed);
    const bool wake = put_waiters_ > 0;
    lock.unlock();
    if (wake) not_full_.notify_one();
    return QueueStatus::kOk;
  }

  void close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_.store(true, std::memory_order_release);
    }
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  std::deque<T> take_all() {
    std::deque<T> out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      out.swap(items_);
      size_.store(0, std::memory_order_relaxed);
    }
    if (maxsize_ != 0) not_full_.notify_all();
    return out;
  }

  // Calls look(item) on every item, in order, under the lock (for statistics).
  template <class Look>
  void visit(Look look) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const T& item : items_) look(item);
  }

  // Calls edit(item) on every item, in order, under the lock; items for which it returns true
  // are moved to the result (and so destroyed by the caller, outside the lock).
  template <class Edit>
  std::deque<T> remove_if(Edit edit) {
    std::deque<T> removed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::deque<T> kept;
      for (T& item : items_) {
        if (edit(item)) {
          removed.push_back(std::move(item));
        } else {
          kept.push_back(std::move(item));
        }
      }
      items_.swap(kept);
      size_.store(items_.size(), std::memory_order_relaxed);
    }
    if (!removed.empty() && maxsize_ != 0) not_full_.notify_all();
    return removed;
  }

 private:
  // A short spin before parking: a hand-over between two running threads then costs no
  // futex sleep and wake. Bounded (~a few microseconds), and skipped on one core.
  template <class Ready>
  void spin_until(Ready ready) const {
    static const bool multicore = std::thread::hardware_concurrency() > 1;
    if (!multicore) return;
    for (int i = 0; i < kSpins; ++i) {
      if (ready() || closed()) return;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }

  template <class Ready>
  QueueStatus wait(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, int& waiters,
                   Timeout timeout, QueueStatus would_block, Ready ready) {
    if (closed_.load(std::memory_order_relaxed)) return QueueStatus::kClosed;
    if (ready()) return QueueStatus::kOk;
    if (timeout == std::chrono::nanoseconds::zero()) return would_block;
    const auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                                  : std::chrono::steady_clock::time_point::max();
    ++waiters;
    QueueStatus result = QueueStatus::kOk;
    while (true) {
      if (closed_.load(std::memory_order_relaxed)) {
        result = QueueStatus::kClosed;
        break;
      }
      if (ready()) break;
      if (!timeout) {
        cv.wait(lock);
      } else if (cv.wait_until(lock, deadline) == std::cv_status::timeout) {
        if (!ready()) result = closed_.load() ? QueueStatus::kClosed : QueueStatus::kTimeout;
        break;
      }
    }
    --waiters;
    return result;
  }

  static constexpr int kSpins = 4000;

  const size_t maxsize_;
  mutable std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<T> items_;           // under mu_
  int get_waiters_ = 0;           // under mu_
  int put_waiters_ = 0;           // under mu_
  std::atomic<size_t> size_{0};   // mirror of items_.size() for spinning and size()
  std::atomic<bool> closed_{false};
};

}  // namespace xinterp
