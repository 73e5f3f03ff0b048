// BlockingQueue's async waiters (xinterp/async_waiters.h): woken when an item or room appears
// or the queue closes, FIFO, never missed by a concurrent put (under TSan and ASan in the test
// command), and a wake-up that its waiter did not use can be passed on.
#include "xinterp/async_waiters.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "xinterp/blocking_queue.h"

namespace xinterp {
namespace {

using namespace std::chrono_literals;
constexpr std::chrono::nanoseconds kNoWait = 0ns;

// Records the tokens it was woken with.
class RecordingWaker final : public AsyncWaker {
 public:
  void wake(uint64_t token) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.push_back(token);
    count_.fetch_add(1, std::memory_order_release);
  }
  std::vector<uint64_t> tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }
  int count() const { return count_.load(std::memory_order_acquire); }

 private:
  std::mutex mu_;
  std::vector<uint64_t> tokens_;
  std::atomic<int> count_{0};
};

TEST(AsyncWaiters, PutWakesTheOldestGetterOnly) {
  BlockingQueue<int> q;
  auto w = std::make_shared<RecordingWaker>();
  q.watch_get(w, 1);
  q.watch_get(w, 2);
  EXPECT_EQ(w->count(), 0);
  EXPECT_EQ(q.async_get_waiters(), 2u);
  ASSERT_EQ(q.put(7, kNoWait), QueueStatus::kOk);
  EXPECT_EQ(w->tokens(), std::vector<uint64_t>{1});
  EXPECT_EQ(q.async_get_waiters(), 1u);
  int out = 0;
  ASSERT_EQ(q.get(&out, kNoWait), QueueStatus::kOk);  // the woken side takes it itself
  EXPECT_EQ(out, 7);
}

TEST(AsyncWaiters, WatchingWhenAnItemIsThereWakesAtOnce) {
  BlockingQueue<int> q;
  ASSERT_EQ(q.put(1, kNoWait), QueueStatus::kOk);
  auto w = std::make_shared<RecordingWaker>();
  q.watch_get(w, 9);
  EXPECT_EQ(w->tokens(), std::vector<uint64_t>{9});
}

TEST(AsyncWaiters, UnwatchTellsWhetherTheWakeUpWasSent) {
  BlockingQueue<int> q;
  auto w = std::make_shared<RecordingWaker>();
  const uint64_t a = q.watch_get(w, 1);
  const uint64_t b = q.watch_get(w, 2);
  EXPECT_TRUE(q.unwatch_get(b));  // never woken: gone quietly
  ASSERT_EQ(q.put(1, kNoWait), QueueStatus::kOk);
  EXPECT_FALSE(q.unwatch_get(a));  // woken already
  EXPECT_EQ(w->tokens(), std::vector<uint64_t>{1});
}

TEST(AsyncWaiters, AnUnusedWakeUpIsPassedOn) {
  BlockingQueue<int> q;
  auto w = std::make_shared<RecordingWaker>();
  const uint64_t a = q.watch_get(w, 1);
  q.watch_get(w, 2);
  ASSERT_EQ(q.put(1, kNoWait), QueueStatus::kOk);  // wakes 1
  EXPECT_FALSE(q.unwatch_get(a));                  // 1 gives up (cancelled)
  q.pass_on_get();                                 // the item is still there: 2 gets the wake-up
  EXPECT_EQ(w->tokens(), (std::vector<uint64_t>{1, 2}));
  int out;
  ASSERT_EQ(q.get(&out, kNoWait), QueueStatus::kOk);
  q.watch_get(w, 3);
  q.pass_on_get();  // empty: nothing to pass on
  EXPECT_EQ(w->count(), 2);
}

TEST(AsyncWaiters, GetWakesAPutterOfABoundedQueue) {
  BlockingQueue<int> q(1);
  ASSERT_EQ(q.put(1, kNoWait), QueueStatus::kOk);
  auto w = std::make_shared<RecordingWaker>();
  q.watch_put(w, 4);
  EXPECT_EQ(w->count(), 0);  // full
  int out;
  ASSERT_EQ(q.get(&out, kNoWait), QueueStatus::kOk);
  EXPECT_EQ(w->tokens(), std::vector<uint64_t>{4});
}

TEST(AsyncWaiters, RemovingItemsWakesPutters) {
  BlockingQueue<int> q(1);
  ASSERT_EQ(q.put(1, kNoWait), QueueStatus::kOk);
  auto w = std::make_shared<RecordingWaker>();
  q.watch_put(w, 5);
  q.take_all();
  EXPECT_EQ(w->tokens(), std::vector<uint64_t>{5});
}

TEST(AsyncWaiters, CloseWakesEveryWaiter) {
  BlockingQueue<int> q(1);
  auto w = std::make_shared<RecordingWaker>();
  q.watch_get(w, 1);
  q.watch_get(w, 2);
  ASSERT_EQ(q.put(1, kNoWait), QueueStatus::kOk);  // wakes 1
  q.watch_put(w, 3);
  q.close();
  EXPECT_EQ(w->count(), 3);
  EXPECT_EQ(q.async_get_waiters(), 0u);
  EXPECT_EQ(q.async_put_waiters(), 0u);
}

// Producers on threads, async-style consumers that only take with non-blocking gets after a
// wake-up and re-register when another was faster: every item is taken exactly once and no
// consumer sleeps while an item waits (a lost wake-up would hang this test).
TEST(AsyncWaiters, NoWakeUpIsLostUnderConcurrentPuts) {
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 5000;
  constexpr int kConsumers = 3;
  BlockingQueue<int> q;
  std::atomic<long> sum{0};
  std::atomic<int> taken{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      auto w = std::make_shared<RecordingWaker>();
      while (taken.load() < kProducers * kPerProducer) {
        int out;
        if (q.get(&out, kNoWait) == QueueStatus::kOk) {
          sum += out;
          ++taken;
          continue;
        }
        const int before = w->count();
        const uint64_t ticket = q.watch_get(w, static_cast<uint64_t>(c));
        // Park until woken (or everything was taken by others, which then never wake us).
        while (w->count() == before && taken.load() < kProducers * kPerProducer) {
          std::this_thread::yield();
        }
        if (q.unwatch_get(ticket)) continue;  // not woken: everything was taken
      }
    });
  }
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&] {
      for (int i = 1; i <= kPerProducer; ++i) ASSERT_EQ(q.put(int{i}, kNoWait), QueueStatus::kOk);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(taken.load(), kProducers * kPerProducer);
  EXPECT_EQ(sum.load(), static_cast<long>(kProducers) * kPerProducer * (kPerProducer + 1) / 2);
  EXPECT_EQ(q.size(), 0u);
}

}  // namespace
}  // namespace xinterp
