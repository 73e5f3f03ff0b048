// post_signal_safe() from a real signal handler: no allocation and no locks in the handler (TSan
// reports signal-unsafe calls), the wake deferred to the housekeeper, calls to a closed owner run
// raw on the housekeeper rather than in the handler.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <thread>
#include <vector>

#include "alloc_counter.h"
#include "test_engine.h"

namespace xinterp::testing {
namespace {

using namespace std::chrono_literals;

struct Marked : PendingCall {
  Marked() : PendingCall(&Marked::run) {}
  static bool run(PendingCall* self, RunMode mode) {
    auto* m = static_cast<Marked*>(self);
    m->raw.store(mode == RunMode::kRaw);
    m->ran_on = pthread_self();
    m->runs.fetch_add(1);
    return true;
  }
  std::atomic<int> runs{0};
  std::atomic<bool> raw{false};
  pthread_t ran_on{};
};

constexpr int kNodes = 64;
Owner* g_target = nullptr;
Marked g_nodes[kNodes];
std::atomic<int> g_next{0};
std::atomic<unsigned long long> g_handler_allocations{0};

void on_signal(int) {
  unsigned long long before = g_thread_allocations;
  int i = g_next.fetch_add(1);
  if (i < kNodes) g_target->post_signal_safe(&g_nodes[i]);
  g_handler_allocations.fetch_add(g_thread_allocations - before);
}

class SignalPostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    struct sigaction sa {};
    sa.sa_handler = &on_signal;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR1, &sa, &old_), 0);
    g_next = 0;
    for (Marked& m : g_nodes) {
      m.runs = 0;
      m.raw = false;
    }
  }
  void TearDown() override { sigaction(SIGUSR1, &old_, nullptr); }
  struct sigaction old_ {};
};

TEST_F(SignalPostTest, PostFromHandlerRunsInOwnerAfterDeferredWake) {
  TestEngine engine;
  Runtime runtime(engine, RuntimeOptions{100s});
  SimOwner sim(SimMode::kListening);
  OwnerRef o = runtime.create_owner(&sim);
  ListeningThread listener(engine, o);
  g_target = o.get();
  for (int i = 0; i < 16; ++i) {
    ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR1), 0);
    if (i % 4 == 0) std::this_thread::sleep_for(1ms);
  }
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(eventually([&] { return g_nodes[i].runs.load() == 1; }, 5s)) << i;
    EXPECT_FALSE(g_nodes[i].raw.load());
  }
  EXPECT_EQ(g_handler_allocations.load(), 0u);
  // The engine's wake came from the housekeeper (deferred), and it ran in the owner by itself.
  EXPECT_GE(sim.wakes.load(), 1u);
  ASSERT_TRUE(eventually([&] { return o->stats().run_by_owner == 16; }));
  EXPECT_EQ(o->stats().posted, 16u);
  listener.stop();
  close_owner(engine, *o);
}

TEST_F(SignalPostTest, PostFromHandlerToIdleOwnerIsDrainedByHousekeeper) {
  TestEngine engine;
  Runtime runtime(engine, RuntimeOptions{100s});
  SimOwner sim(SimMode::kIdle);
  OwnerRef o = runtime.create_owner(&sim);
  g_target = o.get();
  ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR1), 0);
  ASSERT_TRUE(eventually([&] { return g_nodes[0].runs.load() == 1; }, 5s));
  EXPECT_FALSE(g_nodes[0].raw.load());
  ASSERT_TRUE(eventually([&] { return o->stats().run_by_housekeeper == 1; }));
  close_owner(engine, *o);
}

TEST_F(SignalPostTest, PostFromHandlerToClosedOwnerRunsRawOnHousekeeper) {
  TestEngine engine;
  Runtime runtime(engine, RuntimeOptions{100s});
  SimOwner sim(SimMode::kDeaf);
  OwnerRef o = runtime.create_owner(&sim);
  close_owner(engine, *o);
  g_target = o.get();
  ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR1), 0);
  ASSERT_TRUE(eventually([&] { return g_nodes[0].runs.load() == 1; }, 5s));
  EXPECT_TRUE(g_nodes[0].raw.load());
  EXPECT_FALSE(pthread_equal(g_nodes[0].ran_on, pthread_self()))
      << "ran on the housekeeper, not in the handler";
  EXPECT_EQ(o->stats().run_raw, 1u);
  EXPECT_EQ(g_handler_allocations.load(), 0u);
}

}  // namespace
}  // namespace xinterp::testing
