// Stress: 4 producers x 16 owners x 10^6 posts per producer (XINTERP_STRESS_POSTS overrides),
// with listening, deaf and idle owners, closed at random moments. Every call runs exactly once,
// and for every owner posted == run_inline + run_by_owner + run_by_housekeeper + run_raw.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "test_engine.h"
#include "xinterp/owner_bound.h"

namespace xinterp::testing {
namespace {

using namespace std::chrono_literals;

uint64_t posts_per_producer() {
  if (const char* env = std::getenv("XINTERP_STRESS_POSTS")) return std::strtoull(env, nullptr, 10);
  return 1'000'000;
}

TEST(StressTest, ProducersOwnersAndRandomCloses) {
  constexpr int kProducers = 4;
  constexpr int kOwners = 16;
  const uint64_t per_producer = posts_per_producer();
  TestEngine engine;
  Runtime runtime(engine, RuntimeOptions{2ms});

  std::vector<std::unique_ptr<SimOwner>> sims;
  std::vector<OwnerRef> owners;
  std::vector<std::unique_ptr<ListeningThread>> listeners;
  for (int i = 0; i < kOwners; ++i) {
    SimMode mode = i % 3 == 0 ? SimMode::kListening : i % 3 == 1 ? SimMode::kDeaf : SimMode::kIdle;
    sims.push_back(std::make_unique<SimOwner>(mode));
    owners.push_back(runtime.create_owner(sims.back().get()));
    listeners.push_back(mode == SimMode::kListening
                            ? std::make_unique<ListeningThread>(engine, owners.back())
                            : nullptr);
  }

  const uint64_t total = per_producer * kProducers;
  std::unique_ptr<std::atomic<uint8_t>[]> runs(new std::atomic<uint8_t>[total]);
  for (uint64_t i = 0; i < total; ++i) runs[i].store(0, std::memory_order_relaxed);
  std::atomic<uint64_t> raw_runs{0};

  std::atomic<int> producers_done{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937_64 rng(static_cast<uint64_t>(p) * 7919 + 1);
      for (uint64_t k = 0; k < per_producer; ++k) {
        uint64_t slot = static_cast<uint64_t>(p) * per_producer + k;
        Owner& o = *owners[rng() % kOwners];
        auto call = [&runs, &raw_runs, slot](RunMode mode) {
          runs[slot].fetch_add(1, std::memory_order_relaxed);
          if (mode == RunMode::kRaw) raw_runs.fetch_add(1, std::memory_order_relaxed);
        };
        if (k % 5 == 0) {
          // Through an owner-affine handle (inline / posted / raw).
          struct Ctx {
            decltype(call) fn;
          };
          OwnerBound h(OwnerRef(&o), new Ctx{call}, [](void* p, RunMode mode) {
            std::unique_ptr<Ctx> ctx(static_cast<Ctx*>(p));
            ctx->fn(mode);
            return true;
          });
        } else {
          o.post(call);
        }
      }
      producers_done.fetch_add(1);
    });
  }

  // Close owners at random moments while the producers run (one stays open to the end).
  std::thread closer([&] {
    std::mt19937_64 rng(42);
    std::vector<int> order(kOwners);
    for (int i = 0; i < kOwners; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (int i = 0; i < kOwners - 1; ++i) {
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20'000));
      if (producers_done.load() == kProducers) break;
      int victim = order[i];
      if (listeners[victim]) listeners[victim]->stop();
      close_owner(engine, *owners[victim]);
    }
  });
  for (auto& t : producers) t.join();
  closer.join();
  for (int i = 0; i < kOwners; ++i) {
    if (listeners[i]) listeners[i]->stop();
    if (owners[i]->state() != OwnerState::kClosed) close_owner(engine, *owners[i]);
  }

  uint64_t posted = 0, raw = 0;
  for (int i = 0; i < kOwners; ++i) {
    OwnerStats s = owners[i]->stats();
    EXPECT_EQ(s.posted, s.run_inline + s.run_by_owner + s.run_by_housekeeper + s.run_raw)
        << "owner " << i;
    EXPECT_EQ(s.failed, 0u);
    posted += s.posted;
    raw += s.run_raw;
  }
  EXPECT_EQ(posted, total);
  EXPECT_EQ(raw, raw_runs.load());
  uint64_t wrong = 0;
  for (uint64_t i = 0; i < total; ++i) wrong += runs[i].load(std::memory_order_relaxed) != 1;
  EXPECT_EQ(wrong, 0u) << "calls lost or run twice";
  RecordProperty("raw_runs", static_cast<int>(raw));
}

}  // namespace
}  // namespace xinterp::testing
