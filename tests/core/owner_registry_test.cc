// The owner registry: never-reused ids, states alive -> closing -> closed, and lookups that are
// safe against a concurrent close.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "test_engine.h"

namespace xinterp::testing {
namespace {

using namespace std::chrono_literals;

class OwnerRegistryTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (OwnerRef& o : runtime.owners()) close_owner(engine, *o);
  }
  TestEngine engine;
  SimOwner sim{SimMode::kDeaf};
  Runtime runtime{engine, RuntimeOptions{100s}};
};

TEST_F(OwnerRegistryTest, IdsAreNeverReused) {
  std::set<OwnerId> seen;
  for (int i = 0; i < 1000; ++i) {
    OwnerRef o = runtime.create_owner(&sim);
    EXPECT_NE(o->id(), kNoOwner);
    EXPECT_TRUE(seen.insert(o->id()).second) << "id " << o->id() << " reused";
    close_owner(engine, *o);
  }
  // Not even by another runtime.
  Runtime other(engine, RuntimeOptions{100s});
  OwnerRef o = other.create_owner(&sim);
  EXPECT_FALSE(seen.count(o->id()));
  close_owner(engine, *o);
}

TEST_F(OwnerRegistryTest, LifecycleStates) {
  OwnerRef o = runtime.create_owner(&sim);
  EXPECT_EQ(o->state(), OwnerState::kAlive);
  EXPECT_EQ(runtime.find(o->id()).get(), o.get());
  EXPECT_TRUE(o->begin_close());
  EXPECT_EQ(o->state(), OwnerState::kClosing);
  EXPECT_FALSE(o->begin_close()) << "closing twice";
  EXPECT_EQ(runtime.find(o->id()).get(), o.get()) << "still findable while closing";
  o->wait_until_unused();
  engine.attach(*o);
  o->finish_close();
  engine.detach(*o);
  EXPECT_EQ(o->state(), OwnerState::kClosed);
  EXPECT_FALSE(runtime.find(o->id())) << "not found once closed";
  EXPECT_STREQ(to_string(o->state()), "closed");
}

TEST_F(OwnerRegistryTest, UseFailsOnceClosingBegan) {
  OwnerRef o = runtime.create_owner(&sim);
  ASSERT_TRUE(o->try_use());
  o->begin_close();
  EXPECT_FALSE(o->try_use());
  std::atomic<bool> unused{false};
  std::thread closer([&] {
    o->wait_until_unused();
    unused = true;
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(unused.load()) << "the closer waits for the outstanding use";
  o->end_use();
  closer.join();
  EXPECT_TRUE(unused.load());
  close_owner(engine, *o);
}

TEST_F(OwnerRegistryTest, StatsCountCreatedAliveAndRetired) {
  OwnerRef a = runtime.create_owner(&sim);
  OwnerRef b = runtime.create_owner(&sim);
  a->post([] {});
  close_owner(engine, *a);
  RegistryStats s = runtime.registry_stats();
  EXPECT_EQ(s.owners_created, 2u);
  EXPECT_EQ(s.owners_alive, 1u);
  EXPECT_EQ(s.retired.posted, 1u);
  EXPECT_EQ(s.retired.run_by_owner, 1u);
}

TEST_F(OwnerRegistryTest, LookupIsSafeAgainstConcurrentClose) {
  // Finders hammer ids that closers are closing. A found record must stay valid (ASan/TSan
  // watch) and be in a coherent state; a closed id must never be found again.
  constexpr int kOwners = 64;
  std::vector<OwnerId> ids;
  std::vector<OwnerRef> refs;
  for (int i = 0; i < kOwners; ++i) {
    refs.push_back(runtime.create_owner(&sim));
    ids.push_back(refs.back()->id());
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> found{0};
  std::vector<std::thread> finders;
  for (int t = 0; t < 3; ++t) {
    finders.emplace_back([&, t] {
      size_t i = static_cast<size_t>(t);
      while (!stop.load(std::memory_order_relaxed)) {
        OwnerRef o = runtime.find(ids[i++ % ids.size()]);
        if (o) {
          found.fetch_add(1, std::memory_order_relaxed);
          OwnerState st = o->state();
          ASSERT_TRUE(st == OwnerState::kAlive || st == OwnerState::kClosing ||
                      st == OwnerState::kClosed);
          o->post([] {});  // always lands somewhere: queue or raw path
        }
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return found.load() > 1000; }));  // the finders are running
  for (int i = 0; i < kOwners; ++i) {
    if (i % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    close_owner(engine, *refs[i]);
    ASSERT_FALSE(runtime.find(ids[i]));
    refs[i] = OwnerRef();  // drop ours: the record may now be freed under the finders' feet
  }
  stop = true;
  for (auto& t : finders) t.join();
  EXPECT_GT(found.load(), 0u);
  EXPECT_EQ(runtime.registry_stats().owners_alive, 0u);
  RegistryStats s = runtime.registry_stats();
  EXPECT_GE(s.retired.posted, s.retired.run_total());
}

}  // namespace
}  // namespace xinterp::testing
