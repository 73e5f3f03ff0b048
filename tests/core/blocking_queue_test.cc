// BlockingQueue: order, capacity, timeouts, close, and many producers and consumers (under TSan
// and ASan in the test command).
#include "xinterp/blocking_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace xinterp {
namespace {

using namespace std::chrono_literals;
constexpr std::chrono::nanoseconds kNoWait = 0ns;

TEST(BlockingQueue, FifoAndNonBlockingResults) {
  BlockingQueue<int> q;
  int out = 0;
  EXPECT_EQ(q.get(&out, kNoWait), QueueStatus::kEmpty);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(q.put(int{i}, kNoWait), QueueStatus::kOk);
  EXPECT_EQ(q.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(q.get(&out, kNoWait), QueueStatus::kOk);
    EXPECT_EQ(out, i);
  }
  EXPECT_EQ(q.get(&out, kNoWait), QueueStatus::kEmpty);
}

TEST(BlockingQueue, CapacityRefusesWithoutWaitAndTimesOut) {
  BlockingQueue<int> q(2);
  ASSERT_EQ(q.put(1, kNoWait), QueueStatus::kOk);
  ASSERT_EQ(q.put(2, kNoWait), QueueStatus::kOk);
  EXPECT_EQ(q.put(3, kNoWait), QueueStatus::kFull);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(q.put(3, 25ms), QueueStatus::kTimeout);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 25ms);  // never early
}

TEST(BlockingQueue, GetTimeoutIsHonouredNeverEarly) {
  BlockingQueue<int> q;
  int out;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(q.get(&out, 12500us), QueueStatus::kTimeout);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 12500us);
}

TEST(BlockingQueue, BlockedGetWakesOnPut) {
  BlockingQueue<int> q;
  std::thread consumer([&] {
    int out = 0;
    EXPECT_EQ(q.get(&out, std::nullopt), QueueStatus::kOk);
    EXPECT_EQ(out, 42);
  });
  std::this_thread::sleep_for(20ms);  // let it park
  ASSERT_EQ(q.put(42, kNoWait), QueueStatus::kOk);
  consumer.join();
}

TEST(BlockingQueue, BlockedPutWakesOnGet) {
  BlockingQueue<int> q(1);
  ASSERT_EQ(q.put(1, kNoWait), QueueStatus::kOk);
  std::thread producer([&] { EXPECT_EQ(q.put(2, std::nullopt), QueueStatus::kOk); });
  std::this_thread::sleep_for(20ms);
  int out;
  ASSERT_EQ(q.get(&out, kNoWait), QueueStatus::kOk);
  producer.join();
  ASSERT_EQ(q.get(&out, kNoWait), QueueStatus::kOk);
  EXPECT_EQ(out, 2);
}

TEST(BlockingQueue, CloseWakesEveryWaiterAndKeepsItems) {
  BlockingQueue<int> empty;
  BlockingQueue<int> full(1);
  ASSERT_EQ(full.put(7, kNoWait), QueueStatus::kOk);
  std::vector<std::thread> waiters;
  std::atomic<int> closed{0};
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&] {
      int out;
      if (empty.get(&out, std::nullopt) == QueueStatus::kClosed) closed++;
    });
    waiters.emplace_back([&] {
      if (full.put(8, std::nullopt) == QueueStatus::kClosed) closed++;
    });
  }
  std::this_thread::sleep_for(20ms);
  empty.close();
  full.close();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(closed.load(), 6);
  int out;
  EXPECT_EQ(empty.get(&out, kNoWait), QueueStatus::kClosed);
  EXPECT_EQ(full.put(9, kNoWait), QueueStatus::kClosed);
  auto rest = full.take_all();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest.front(), 7);
}

TEST(BlockingQueue, CancelledWaitsReturnTimeoutAndLoseNothing) {
  BlockingQueue<int> q(1);
  std::atomic<bool> cancel{false};
  ASSERT_EQ(q.put(1, kNoWait), QueueStatus::kOk);
  std::thread producer([&] {  // parks: full
    EXPECT_EQ(q.put(2, std::nullopt, &cancel), QueueStatus::kTimeout);
  });
  while (q.put_waiters() == 0) std::this_thread::yield();
  cancel.store(true, std::memory_order_release);
  q.wake_all();
  producer.join();
  EXPECT_EQ(q.size(), 1u);  // the cancelled put enqueued nothing
  // A set flag does not stop a get that finds an item: it is taken, not lost.
  int out = 0;
  EXPECT_EQ(q.get(&out, std::nullopt, &cancel), QueueStatus::kOk);
  EXPECT_EQ(out, 1);
  // Nor a get that finds none: it returns at once instead of parking.
  EXPECT_EQ(q.get(&out, std::nullopt, &cancel), QueueStatus::kTimeout);
  // A parked get woken by wake_all() with its flag clear parks again and gets the next item.
  cancel.store(false);
  std::thread consumer([&] {
    int got = 0;
    EXPECT_EQ(q.get(&got, std::nullopt, &cancel), QueueStatus::kOk);
    EXPECT_EQ(got, 7);
  });
  while (q.get_waiters() == 0) std::this_thread::yield();
  q.wake_all();
  ASSERT_EQ(q.put(7, kNoWait), QueueStatus::kOk);
  consumer.join();
}

TEST(BlockingQueue, RemoveIfEditsKeepsAndRemoves) {
  BlockingQueue<std::unique_ptr<int>> q;
  for (int i = 0; i < 6; ++i) ASSERT_EQ(q.put(std::make_unique<int>(i), kNoWait), QueueStatus::kOk);
  auto removed = q.remove_if([](std::unique_ptr<int>& v) {
    if (*v == 1) *v = 101;  // edited in place
    return *v % 2 == 0;
  });
  EXPECT_EQ(removed.size(), 3u);
  std::unique_ptr<int> out;
  std::vector<int> left;
  while (q.get(&out, kNoWait) == QueueStatus::kOk) left.push_back(*out);
  EXPECT_EQ(left, (std::vector<int>{101, 3, 5}));
}

TEST(BlockingQueue, ManyProducersAndConsumersDeliverEachItemOnce) {
  BlockingQueue<uint64_t> q(64);
  constexpr int kProducers = 3, kConsumers = 3;
  constexpr uint64_t kPerProducer = 20000;
  std::vector<std::atomic<int>> seen(kProducers * kPerProducer);
  std::atomic<uint64_t> got{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        ASSERT_EQ(q.put(p * kPerProducer + i, std::nullopt), QueueStatus::kOk);
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      uint64_t v;
      while (q.get(&v, 200ms) == QueueStatus::kOk) {
        seen[v].fetch_add(1);
        got.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(got.load(), kProducers * kPerProducer);
  for (auto& s : seen) ASSERT_EQ(s.load(), 1);
}

}  // namespace
}  // namespace xinterp
