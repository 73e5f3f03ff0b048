// The housekeeper's drain workers (issue 13): a call that never returns holds up only its own
// owner; calls run with a full stack; idle workers retire; an owner stuck at exit is abandoned.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <future>

#include "housekeeper.h"
#include "test_engine.h"

namespace xinterp::testing {
namespace {

using namespace std::chrono_literals;

// Blocks until the test lets it go (a call that "never returns" for as long as the test wants).
struct Stuck : PendingCall {
  Stuck() : PendingCall(&Stuck::run) {}
  static bool run(PendingCall* self, RunMode) {
    auto* s = static_cast<Stuck*>(self);
    s->entered.set_value();
    s->go_future.wait();
    s->returned.store(true, std::memory_order_release);
    return true;
  }
  std::promise<void> entered;
  std::promise<void> go;
  std::shared_future<void> go_future = go.get_future().share();
  std::atomic<bool> returned{false};
};

// Records the stack size of the thread that runs it.
struct StackProbe : PendingCall {
  StackProbe() : PendingCall(&StackProbe::run) {}
  static bool run(PendingCall* self, RunMode) {
    auto* p = static_cast<StackProbe*>(self);
    pthread_attr_t attr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      pthread_attr_getstacksize(&attr, &size);
      pthread_attr_destroy(&attr);
    }
    p->stack.store(size, std::memory_order_relaxed);
    p->ran.store(true, std::memory_order_release);
    return true;
  }
  std::atomic<size_t> stack{0};
  std::atomic<bool> ran{false};
};

class HousekeeperWorkersTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (OwnerRef& o : runtime->owners()) close_owner(engine, *o);
    runtime.reset();
  }
  OwnerRef make(SimMode mode) {
    sims.push_back(std::make_unique<SimOwner>(mode));
    return runtime->create_owner(sims.back().get());
  }

  TestEngine engine;
  std::vector<std::unique_ptr<SimOwner>> sims;
  std::unique_ptr<Runtime> runtime =
      std::make_unique<Runtime>(engine, RuntimeOptions{5ms, 16, 50ms});
};

TEST_F(HousekeeperWorkersTest, StuckCallInOneOwnerDoesNotDelayAnothersDrain) {
  OwnerRef a = make(SimMode::kIdle);
  OwnerRef b = make(SimMode::kIdle);
  Stuck stuck;
  a->post(&stuck);
  stuck.entered.get_future().wait();  // a housekeeper thread is inside a's call, and stays
  Flag f;
  b->post(&f);
  // Before the fix the one housekeeper thread was inside a's call: b's never ran.
  EXPECT_TRUE(eventually([&] { return f.ran.load(std::memory_order_acquire); }, 30s));
  EXPECT_EQ(f.mode, RunMode::kInOwner);
  EXPECT_TRUE(eventually([&] { return b->stats().run_by_housekeeper == 1u; },
                         30s));  // counted after the call
  EXPECT_FALSE(stuck.returned.load());
  // a's next call waits for a's own drain, which takes it once the stuck call returns.
  Flag after;
  a->post(&after);
  stuck.go.set_value();
  EXPECT_TRUE(eventually([&] { return after.ran.load(std::memory_order_acquire); }, 30s));
  EXPECT_TRUE(eventually([&] { return a->stats().run_by_housekeeper == 2u; },
                         30s));  // counted after the call
  EXPECT_EQ(runtime->housekeeper().inline_drains(), 0u);
}

TEST_F(HousekeeperWorkersTest, CallsRunWithAFullStack) {
  OwnerRef o = make(SimMode::kIdle);
  StackProbe probe;
  o->post(&probe);
  ASSERT_TRUE(eventually([&] { return probe.ran.load(std::memory_order_acquire); }, 30s));
  EXPECT_TRUE(eventually([&] { return o->stats().run_by_housekeeper == 1u; },
                         30s));  // counted after the call
  EXPECT_GE(probe.stack.load(), size_t{8} * 1024 * 1024);
  EXPECT_EQ(Housekeeper::call_stack_size(),
            std::max(Housekeeper::call_stack_size(), size_t{8} * 1024 * 1024));
}

TEST_F(HousekeeperWorkersTest, IdleWorkersRetire) {
  OwnerRef o = make(SimMode::kIdle);
  Flag f;
  o->post(&f);
  ASSERT_TRUE(eventually([&] { return f.ran.load(std::memory_order_acquire); }, 30s));
  EXPECT_GE(runtime->housekeeper().workers_started(), 1u);
  EXPECT_TRUE(eventually([&] { return runtime->housekeeper().workers_alive() == 0; }, 30s));
  // And a new one starts for the next drain.
  Flag g;
  o->post(&g);
  EXPECT_TRUE(eventually([&] { return g.ran.load(std::memory_order_acquire); }, 30s));
}

TEST_F(HousekeeperWorkersTest, AbandonRunsQueuedCallsRawAndCountsTheStuckOne) {
  OwnerRef a = make(SimMode::kIdle);
  Stuck stuck;
  a->post(&stuck);
  stuck.entered.get_future().wait();
  Flag queued;
  a->post(&queued);  // behind the stuck call: a's drain is busy
  a->begin_close();
  EXPECT_FALSE(a->wait_until_unused(10ms)) << "the stuck worker holds a use";
  EXPECT_EQ(a->abandon(), 1u) << "the stuck call";
  EXPECT_TRUE(queued.ran.load());
  EXPECT_EQ(queued.mode, RunMode::kRaw);
  EXPECT_EQ(a->state(), OwnerState::kClosed);
  Flag later;
  a->post(&later);  // sealed: runs raw on the poster
  EXPECT_TRUE(later.ran.load());
  EXPECT_EQ(later.mode, RunMode::kRaw);
  // The stuck call returns after all: its worker ends its drain and its use.
  stuck.go.set_value();
  EXPECT_TRUE(a->wait_until_unused(30s));
  EXPECT_EQ(a->stats().backlog(), 0u);
}

}  // namespace
}  // namespace xinterp::testing
