// InterpTable, the lock-free map behind PythonEngine::current_owner(): single-threaded behaviour,
// capacity, and readers racing writers (run under TSan and ASan by the test command).
#include "engine/interp_table.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace xinterp::python {
namespace {

const void* addr(uintptr_t i) { return reinterpret_cast<const void*>(i * 4096 + 0x10000); }

TEST(InterpTable, FindsWhatWasInsertedAndNothingElse) {
  auto table = std::make_unique<InterpTable>();
  EXPECT_EQ(table->find(addr(1)), kNoOwner);
  EXPECT_EQ(table->find(nullptr), kNoOwner);
  ASSERT_TRUE(table->insert(addr(1), 11));
  ASSERT_TRUE(table->insert(addr(2), 22));
  EXPECT_EQ(table->find(addr(1)), 11u);
  EXPECT_EQ(table->find(addr(2)), 22u);
  EXPECT_EQ(table->find(addr(3)), kNoOwner);
  table->erase(addr(1));
  EXPECT_EQ(table->find(addr(1)), kNoOwner);
  EXPECT_EQ(table->find(addr(2)), 22u);  // found past the tombstone
  // An address reused by a new interpreter maps to the new owner.
  ASSERT_TRUE(table->insert(addr(1), 33));
  EXPECT_EQ(table->find(addr(1)), 33u);
}

TEST(InterpTable, RefusesBeyondCapacityAndReusesErasedSlots) {
  auto table = std::make_unique<InterpTable>();
  for (uintptr_t i = 0; i < InterpTable::kCapacity; ++i) {
    ASSERT_TRUE(table->insert(addr(i), i + 1)) << i;
  }
  EXPECT_FALSE(table->insert(addr(InterpTable::kCapacity), 99));
  for (uintptr_t i = 0; i < InterpTable::kCapacity; ++i) EXPECT_EQ(table->find(addr(i)), i + 1);
  table->erase(addr(7));
  EXPECT_TRUE(table->insert(addr(InterpTable::kCapacity), 99));
  EXPECT_EQ(table->find(addr(InterpTable::kCapacity)), 99u);
  EXPECT_EQ(table->find(addr(7)), kNoOwner);
}

TEST(InterpTable, ReadersNeverSeeAnotherInterpretersId) {
  // One writer (the engine, under its lock) churns entries; readers look up stable and churning
  // keys and must get either the right id or kNoOwner, never a wrong id.
  auto table = std::make_unique<InterpTable>();
  constexpr uintptr_t kStable = 64;
  for (uintptr_t i = 0; i < kStable; ++i) ASSERT_TRUE(table->insert(addr(i), 1000 + i));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, missing_stable{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        for (uintptr_t i = 0; i < kStable; ++i) {
          if (table->find(addr(i)) != 1000 + i) missing_stable.fetch_add(1);
        }
        for (uintptr_t i = kStable; i < kStable + 256; ++i) {
          OwnerId id = table->find(addr(i));
          if (id != kNoOwner && id % 100000 != i) wrong.fetch_add(1);
        }
      }
    });
  }
  for (int round = 0; round < 200; ++round) {
    for (uintptr_t i = kStable; i < kStable + 256; ++i) {
      ASSERT_TRUE(table->insert(addr(i), static_cast<OwnerId>(round) * 100000 + i));
    }
    for (uintptr_t i = kStable; i < kStable + 256; ++i) table->erase(addr(i));
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(missing_stable.load(), 0u);
}

}  // namespace
}  // namespace xinterp::python
