// Closing an owner: everything posted before close completes is drained in the owner; posts
// racing with close run in that drain or take the raw path; nothing is lost or run twice.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "test_engine.h"
#include "xinterp/owner_bound.h"

namespace xinterp::testing {
namespace {

using namespace std::chrono_literals;

class CloseLifecycleTest : public ::testing::Test {
 protected:
  TestEngine engine;
  Runtime runtime{engine, RuntimeOptions{5ms}};
};

TEST_F(CloseLifecycleTest, CloseDrainsWhatWasPostedBefore) {
  SimOwner sim(SimMode::kDeaf);
  OwnerRef o = runtime.create_owner(&sim);
  std::vector<Once> calls(10'000);
  for (Once& c : calls) o->post(&c);
  close_owner(engine, *o);
  for (Once& c : calls) {
    ASSERT_EQ(c.runs.load(), 1);
    ASSERT_FALSE(c.raw.load()) << "ran in the owner, by the close drain or the housekeeper";
  }
  OwnerStats s = o->stats();
  EXPECT_EQ(s.posted, 10'000u);
  EXPECT_EQ(s.run_by_owner + s.run_by_housekeeper, 10'000u);
  EXPECT_EQ(s.run_raw, 0u);
}

TEST_F(CloseLifecycleTest, PostAfterCloseRunsRawAtOnce) {
  SimOwner sim(SimMode::kDeaf);
  OwnerRef o = runtime.create_owner(&sim);
  close_owner(engine, *o);
  Once c;
  o->post(&c);
  EXPECT_EQ(c.runs.load(), 1);
  EXPECT_TRUE(c.raw.load());
  EXPECT_EQ(o->stats().run_raw, 1u);
  EXPECT_FALSE(o->has_pending());
}

TEST_F(CloseLifecycleTest, PostsRacingWithCloseAreNeverLostNorRunTwice) {
  for (int round = 0; round < 20; ++round) {
    SimOwner sim(round % 2 ? SimMode::kIdle : SimMode::kDeaf);
    OwnerRef o = runtime.create_owner(&sim);
    constexpr int kProducers = 3, kPerProducer = 20'000;
    std::vector<std::vector<Once>> calls(kProducers);
    for (auto& v : calls) v = std::vector<Once>(kPerProducer);
    std::atomic<int> started{0};
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        started.fetch_add(1);
        for (Once& c : calls[p]) o->post(&c);
      });
    }
    while (started.load() < kProducers) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(100 * round));
    close_owner(engine, *o);
    for (auto& t : producers) t.join();
    uint64_t raw = 0;
    for (auto& v : calls) {
      for (Once& c : v) {
        ASSERT_EQ(c.runs.load(), 1) << "lost or run twice";
        raw += c.raw.load();
      }
    }
    OwnerStats s = o->stats();
    ASSERT_EQ(s.posted, uint64_t{kProducers * kPerProducer});
    ASSERT_EQ(s.posted, s.run_total());
    ASSERT_EQ(s.run_raw, raw);
  }
}

TEST_F(CloseLifecycleTest, CloseWaitsForTheHousekeeperToLetGo) {
  // The housekeeper may be attached (draining) when close begins; the closer waits for it to
  // leave without holding the owner itself, then drains the rest.
  SimOwner sim(SimMode::kIdle);
  OwnerRef o = runtime.create_owner(&sim);
  std::atomic<bool> in_call{false}, release{false};
  o->post([&] {
    in_call = true;
    while (!release.load()) std::this_thread::sleep_for(1ms);
  });
  ASSERT_TRUE(eventually([&] { return in_call.load(); }));  // the housekeeper is in the call
  ASSERT_TRUE(o->begin_close());
  Once after;
  o->post(&after);
  std::thread closer([&] {
    o->wait_until_unused();
    engine.attach(*o);
    o->finish_close();
    engine.detach(*o);
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_NE(o->state(), OwnerState::kClosed) << "must wait for the housekeeper's drain";
  release = true;
  closer.join();
  EXPECT_EQ(after.runs.load(), 1);
  EXPECT_FALSE(after.raw.load());
  EXPECT_EQ(o->stats().posted, o->stats().run_total());
}

TEST_F(CloseLifecycleTest, HandlesOutliveTheirOwnerSafely) {
  // A borrow released long after its owner closed (CPython 3.13 segfaults here).
  SimOwner sim(SimMode::kDeaf);
  OwnerRef o = runtime.create_owner(&sim);
  int object = 0;
  std::vector<OwnerBound> handles;
  for (int i = 0; i < 100; ++i) {
    handles.emplace_back(o, &object, [](void* p, RunMode mode) {
      if (mode == RunMode::kInOwner) ++*static_cast<int*>(p);
      return true;
    });
  }
  OwnerId id = o->id();
  close_owner(engine, *o);
  o = OwnerRef();  // only the handles keep the record now
  EXPECT_FALSE(runtime.find(id));
  handles.clear();  // raw releases: the record is freed with the last of them
  EXPECT_EQ(object, 0);
  EXPECT_EQ(runtime.registry_stats().retired.posted, 0u) << "retired totals are taken at close";
}

TEST_F(CloseLifecycleTest, CloseRawRunsQueuedCallsRaw) {
  SimOwner sim(SimMode::kDeaf);
  Runtime rt(engine, RuntimeOptions{100s});
  OwnerRef o = rt.create_owner(&sim);
  Once c;
  o->post(&c);
  o->close_raw();
  EXPECT_EQ(c.runs.load(), 1);
  EXPECT_TRUE(c.raw.load());
  EXPECT_EQ(o->stats().run_raw, 1u);
}

}  // namespace
}  // namespace xinterp::testing
