// XINTERP_DEBUG builds check owner affinity at every owner-affine access and name both owners.
#include <gtest/gtest.h>

#include "test_engine.h"
#include "xinterp/owner_bound.h"

namespace xinterp::testing {
namespace {

using namespace std::chrono_literals;

static_assert(
#ifdef XINTERP_DEBUG
    true,
#else
    false,
#endif
    "this test is built against the XINTERP_DEBUG core");

bool release_noop(void*, RunMode) { return true; }

TEST(DebugAffinityDeathTest, GetFromAnotherOwnerFailsNamingBoth) {
  TestEngine engine;
  Runtime runtime(engine, RuntimeOptions{100s});
  SimOwner sa(SimMode::kDeaf), sb(SimMode::kDeaf);
  OwnerRef a = runtime.create_owner(&sa);
  OwnerRef b = runtime.create_owner(&sb);
  int object = 0;
  OwnerBound h(a, &object, &release_noop);
  std::string expected = "object of owner " + std::to_string(a->id()) +
                         " \\(engine id -1\\) touched from owner " + std::to_string(b->id());
  EXPECT_DEATH(
      {
        TestEngine::ScopedCurrent in_b(b->id());
        (void)h.get();
      },
      expected);
  // In the owner: fine.
  engine.attach(*a);
  EXPECT_EQ(h.get(), &object);
  h.reset();
  engine.detach(*a);
  close_owner(engine, *a);
  close_owner(engine, *b);
}

TEST(DebugAffinityDeathTest, GetWithNoOwnerAttachedFails) {
  TestEngine engine;
  Runtime runtime(engine, RuntimeOptions{100s});
  SimOwner sa(SimMode::kDeaf);
  OwnerRef a = runtime.create_owner(&sa);
  int object = 0;
  OwnerBound h(a, &object, &release_noop);
  EXPECT_DEATH((void)h.get(), "touched from owner 0");
  engine.attach(*a);
  h.reset();
  engine.detach(*a);
  close_owner(engine, *a);
}

}  // namespace
}  // namespace xinterp::testing
