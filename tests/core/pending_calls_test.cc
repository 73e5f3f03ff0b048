// Pending calls per owner: unbounded, FIFO per producer, intrusive without allocation, callbacks
// outside every lock, failures counted and contained.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "alloc_counter.h"
#include "test_engine.h"

namespace xinterp::testing {
namespace {

class PendingCallsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Drain and close every owner so leak checkers stay meaningful.
    for (OwnerRef& o : runtime.owners()) close_owner(engine, *o);
  }
  OwnerRef make(SimMode mode = SimMode::kDeaf) {
    sims.push_back(std::make_unique<SimOwner>(mode));
    return runtime.create_owner(sims.back().get());
  }
  void drain(Owner& o) {
    engine.attach(o);
    o.drain(DrainBy::kOwner);
    engine.detach(o);
  }

  TestEngine engine;
  std::vector<std::unique_ptr<SimOwner>> sims;
  // A long deadline: these tests drain by hand and must not race the housekeeper.
  Runtime runtime{engine, RuntimeOptions{std::chrono::seconds(100)}};
};

struct Counter : PendingCall {
  Counter() : PendingCall(&Counter::run) {}
  static bool run(PendingCall* self, RunMode mode) {
    auto* c = static_cast<Counter*>(self);
    (mode == RunMode::kInOwner ? c->in_owner : c->raw)++;
    return true;
  }
  int in_owner = 0;
  int raw = 0;
};

TEST_F(PendingCallsTest, PostedCallRunsOnDrainInOwner) {
  OwnerRef o = make();
  Counter c;
  o->post(&c);
  EXPECT_EQ(c.in_owner, 0);
  EXPECT_TRUE(o->has_pending());
  drain(*o);
  EXPECT_EQ(c.in_owner, 1);
  EXPECT_FALSE(o->has_pending());
  OwnerStats s = o->stats();
  EXPECT_EQ(s.posted, 1u);
  EXPECT_EQ(s.run_by_owner, 1u);
  EXPECT_EQ(s.backlog(), 0u);
}

TEST_F(PendingCallsTest, UnboundedNeverRefuses) {
  // CPython's own queue holds 31 (3.12) or 300 (3.13) calls and drops the rest.
  OwnerRef o = make();
  constexpr int kCalls = 1'000'000;
  std::vector<Counter> calls(kCalls);
  for (Counter& c : calls) o->post(&c);
  EXPECT_EQ(o->stats().posted, uint64_t{kCalls});
  drain(*o);
  for (const Counter& c : calls) ASSERT_EQ(c.in_owner, 1);
  OwnerStats s = o->stats();
  EXPECT_EQ(s.run_by_owner, uint64_t{kCalls});
  EXPECT_EQ(s.peak_backlog, uint64_t{kCalls});
  EXPECT_EQ(s.wakes, 1u) << "one empty -> non-empty transition";
}

TEST_F(PendingCallsTest, IntrusivePostDoesNotAllocate) {
  if (!kCountsAllocations) GTEST_SKIP() << "sanitizer runtime owns operator new";
  OwnerRef o = make();
  std::vector<Counter> calls(1000);
  o->post(&calls[0]);  // the first post starts the housekeeper; later ones must be free
  unsigned long long before = g_thread_allocations;
  for (size_t i = 1; i < calls.size(); ++i) o->post(&calls[i]);
  EXPECT_EQ(g_thread_allocations, before);
  drain(*o);
  EXPECT_EQ(g_thread_allocations, before) << "draining allocates nothing either";
}

TEST_F(PendingCallsTest, FifoPerProducer) {
  OwnerRef o = make();
  constexpr int kProducers = 4, kPerProducer = 50'000;
  struct Seq : PendingCall {
    Seq() : PendingCall(&Seq::run) {}
    static bool run(PendingCall* self, RunMode) {
      auto* s = static_cast<Seq*>(self);
      s->order->push_back(s->value);
      return true;
    }
    std::vector<int>* order = nullptr;
    int value = 0;
  };
  std::vector<std::vector<int>> orders(kProducers);
  std::vector<std::vector<Seq>> nodes(kProducers, std::vector<Seq>(kPerProducer));
  std::atomic<bool> done{false};
  std::thread consumer([&] {
    while (!done.load()) drain(*o);
    drain(*o);
  });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        nodes[p][i].order = &orders[p];
        nodes[p][i].value = i;
        o->post(&nodes[p][i]);
      }
    });
  }
  for (auto& t : producers) t.join();
  done = true;
  consumer.join();
  for (int p = 0; p < kProducers; ++p) {
    ASSERT_EQ(orders[p].size(), size_t{kPerProducer});
    for (int i = 0; i < kPerProducer; ++i) ASSERT_EQ(orders[p][i], i) << "producer " << p;
  }
}

TEST_F(PendingCallsTest, AllocatingFormRunsLambdas) {
  OwnerRef o = make();
  int ran = 0;
  o->post([&] { ++ran; });
  o->post([&](RunMode mode) { ran += mode == RunMode::kInOwner ? 10 : 100; });
  drain(*o);
  EXPECT_EQ(ran, 11);
}

TEST_F(PendingCallsTest, CallbacksRunOutsideLocksAndMayPostAndDrain) {
  // A call that posts to its own owner and drains it (re-entrantly) must neither deadlock nor
  // reorder: the nested post runs after the current call, in the same drain.
  OwnerRef o = make();
  std::vector<int> order;
  o->post([&] {
    order.push_back(1);
    o->post([&] { order.push_back(3); });
    o->drain(DrainBy::kOwner);  // refused: a drain is in progress; no deadlock
    order.push_back(2);
  });
  drain(*o);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST_F(PendingCallsTest, FailingCallbacksAreCountedAndContained) {
  OwnerRef o = make();
  int after = 0;
  o->post([]() -> bool { return false; });
  o->post([] { throw std::runtime_error("boom in a release"); });
  o->post([&] { ++after; });
  EXPECT_NO_THROW(drain(*o));
  EXPECT_EQ(after, 1) << "a failure does not stop the drain";
  OwnerStats s = o->stats();
  EXPECT_EQ(s.failed, 2u);
  EXPECT_EQ(s.run_by_owner, 3u);
  EXPECT_EQ(engine.failures_reported.load(), 2u);
  EXPECT_EQ(engine.last_failure(), "boom in a release");
}

TEST_F(PendingCallsTest, PostByUnknownIdRunsRawAndIsCounted) {
  Counter c;
  runtime.post(OwnerId{0xdeadbeef}, &c);
  EXPECT_EQ(c.raw, 1);
  EXPECT_EQ(c.in_owner, 0);
  EXPECT_EQ(runtime.registry_stats().unknown_owner_posts, 1u);
}

TEST_F(PendingCallsTest, FailingRawCallForUnknownIdIsCounted) {
  runtime.post(OwnerId{0xdeadbeef}, [](RunMode) { return false; });
  runtime.post(OwnerId{0xdeadbeef}, [](RunMode) -> bool { throw std::runtime_error("raw"); });
  RegistryStats s = runtime.registry_stats();
  EXPECT_EQ(s.unknown_owner_posts, 2u);
  EXPECT_EQ(s.unknown_owner_failed, 2u);
}

TEST_F(PendingCallsTest, PostByIdReachesTheOwner) {
  OwnerRef o = make();
  Counter c;
  runtime.post(o->id(), &c);
  drain(*o);
  EXPECT_EQ(c.in_owner, 1);
}

TEST_F(PendingCallsTest, HasPendingIsCheapAndAccurateWhenQuiet) {
  OwnerRef o = make();
  EXPECT_FALSE(o->has_pending());
  Counter c;
  o->post(&c);
  EXPECT_TRUE(o->has_pending());
  drain(*o);
  EXPECT_FALSE(o->has_pending());
}

}  // namespace
}  // namespace xinterp::testing
