// The wake protocol: one wake per empty -> non-empty transition; an owner that does not drain by
// itself is drained by the housekeeper (at once when idle, after the deadline when deaf).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "housekeeper.h"
#include "test_engine.h"
#include "xinterp/owner_bound.h"

namespace xinterp::testing {
namespace {

using namespace std::chrono_literals;

class WakeProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override { MakeRuntime(5ms); }
  void TearDown() override {
    if (!runtime) return;
    for (OwnerRef& o : runtime->owners()) close_owner(engine, *o);
    runtime.reset();
  }
  void MakeRuntime(std::chrono::nanoseconds deadline) {
    if (runtime) TearDown();
    runtime = std::make_unique<Runtime>(engine, RuntimeOptions{deadline});
  }
  OwnerRef make(SimMode mode) {
    sims.push_back(std::make_unique<SimOwner>(mode));
    return runtime->create_owner(sims.back().get());
  }

  TestEngine engine;
  std::vector<std::unique_ptr<SimOwner>> sims;
  std::unique_ptr<Runtime> runtime;
};

TEST_F(WakeProtocolTest, OneWakePerEmptyToNonEmptyTransition) {
  MakeRuntime(100s);  // keep the housekeeper out of the way
  OwnerRef o = make(SimMode::kDeaf);
  std::vector<Flag> flags(100);
  for (int i = 0; i < 50; ++i) o->post(&flags[i]);
  EXPECT_EQ(o->stats().wakes, 1u);
  EXPECT_EQ(TestEngine::sim(*o).wakes.load(), 1u);
  engine.attach(*o);
  o->drain(DrainBy::kOwner);
  engine.detach(*o);
  for (int i = 50; i < 100; ++i) o->post(&flags[i]);
  EXPECT_EQ(o->stats().wakes, 2u) << "a new transition after the drain wakes again";
  engine.attach(*o);
  o->drain(DrainBy::kOwner);
  engine.detach(*o);
  for (Flag& f : flags) EXPECT_TRUE(f.ran.load());
}

TEST_F(WakeProtocolTest, ListeningOwnerDrainsItselfWhenWoken) {
  MakeRuntime(100s);
  OwnerRef o = make(SimMode::kListening);
  ListeningThread listener(engine, o);
  Flag f;
  o->post(&f);
  ASSERT_TRUE(eventually([&] { return f.ran.load(); }));
  EXPECT_EQ(f.mode, RunMode::kInOwner);
  ASSERT_TRUE(eventually([&] { return o->stats().run_by_owner == 1; }));
  EXPECT_EQ(o->stats().run_by_housekeeper, 0u);
  listener.stop();
}

TEST_F(WakeProtocolTest, DeafOwnerIsDrainedByHousekeeperAfterDeadline) {
  // A busy owner that never runs its pending call (CPython 3.12.1, 1 try in 5).
  OwnerRef o = make(SimMode::kDeaf);
  Flag f;
  auto posted_at = std::chrono::steady_clock::now();
  o->post(&f);
  ASSERT_TRUE(eventually([&] { return f.ran.load(); }, 5s)) << "stranded";
  EXPECT_EQ(f.mode, RunMode::kInOwner);
  auto waited = f.ran_at - posted_at;
  // Not before the deadline: the owner was given its chance.
  EXPECT_GE(waited, 5ms);
  ASSERT_TRUE(eventually([&] { return o->stats().run_by_housekeeper == 1; }));
  EXPECT_GE(TestEngine::sim(*o).attaches.load(), 1u);
}

TEST_F(WakeProtocolTest, IdleOwnerIsDrainedAtOnce) {
  MakeRuntime(100s);  // with the deadline out of reach, only the idle path can drain it
  OwnerRef o = make(SimMode::kIdle);
  Flag f;
  o->post(&f);
  ASSERT_TRUE(eventually([&] { return f.ran.load(); }, 5s)) << "stranded";
  ASSERT_TRUE(eventually([&] { return o->stats().run_by_housekeeper == 1; }));
}

TEST_F(WakeProtocolTest, DeadlineIsConfigurable) {
  MakeRuntime(200ms);
  OwnerRef o = make(SimMode::kDeaf);
  Flag f;
  auto posted_at = std::chrono::steady_clock::now();
  o->post(&f);
  ASSERT_TRUE(eventually([&] { return f.ran.load(); }, 10s));
  EXPECT_GE(f.ran_at - posted_at, 200ms);
}

TEST_F(WakeProtocolTest, NeverStrandedUnderManyTransitions) {
  // Post, let it drain, post again: every transition must be covered, including the ones that
  // race with the housekeeper forgetting the owner.
  OwnerRef deaf = make(SimMode::kDeaf);
  OwnerRef idle = make(SimMode::kIdle);
  constexpr int kRounds = 200;
  std::vector<Flag> flags(2 * kRounds);
  for (int i = 0; i < kRounds; ++i) {
    deaf->post(&flags[2 * i]);
    idle->post(&flags[2 * i + 1]);
    if (i % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(i * 10));
  }
  for (Flag& f : flags) ASSERT_TRUE(eventually([&] { return f.ran.load(); }, 10s));
  EXPECT_EQ(deaf->stats().backlog(), 0u);
  EXPECT_EQ(idle->stats().backlog(), 0u);
}

TEST_F(WakeProtocolTest, NoEngineCallsOnceCloseBegan) {
  // The engine's object may be freed as soon as close finishes, so a poster must not wake (or
  // ask is_idle of) an owner whose close began; the close drain runs the call instead.
  MakeRuntime(100s);
  OwnerRef o = make(SimMode::kDeaf);
  ASSERT_TRUE(o->begin_close());
  uint64_t wakes = engine.wake_calls.load();
  Flag f;
  o->post(&f);
  EXPECT_EQ(engine.wake_calls.load(), wakes);
  EXPECT_EQ(o->stats().wakes, 0u);
  o->wait_until_unused();
  engine.attach(*o);
  o->finish_close();
  engine.detach(*o);
  EXPECT_TRUE(f.ran.load());
  EXPECT_EQ(f.mode, RunMode::kInOwner);
}

TEST_F(WakeProtocolTest, HousekeeperStartsLazilyOnce) {
  MakeRuntime(100s);
  EXPECT_EQ(runtime->housekeeper().starts(), 0u) << "no owner yet, no thread";
  OwnerRef a = make(SimMode::kDeaf);
  OwnerRef b = make(SimMode::kDeaf);
  EXPECT_EQ(runtime->housekeeper().starts(), 1u);
}

TEST_F(WakeProtocolTest, HasPendingIsOneRelaxedLoad) {
  // Not a timing test: has_pending() must be inline and side-effect free; calling it many times
  // changes no counter and no engine state.
  OwnerRef o = make(SimMode::kDeaf);
  uint64_t calls = engine.current_owner_calls.load();
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(o->has_pending());
  EXPECT_EQ(engine.current_owner_calls.load(), calls);
  EXPECT_EQ(o->stats().posted, 0u);
}

}  // namespace
}  // namespace xinterp::testing
