// InterpTable: a fixed-size map from an interpreter's address (its PyInterpreterState*) to the
// core OwnerId of that interpreter, read without locks, so that Engine::current_owner() stays
// cheap and async-signal-safe. Python-free (keys are plain addresses), so it is tested alone
// under the sanitizers (tests/engine/interp_table_test.cc).
//
// Requirements:
//   - insert() and erase() are serialised by the caller (the engine's registry lock).
//   - An entry is erased before its interpreter is freed, so its address cannot be reused while
//     the entry is visible.
// Guarantees:
//   - find() never blocks, never allocates and is async-signal-safe.
//   - At most kCapacity interpreters are registered at once; insert() returns false beyond.
//
// Memory ordering: insert() publishes the id before the key (release); find() reads the key with
// acquire, then the id, then re-checks the key, so a reader never pairs a key with another
// interpreter's id.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "xinterp/engine.h"

namespace xinterp::python {

class InterpTable {
 public:
  static constexpr size_t kCapacity = 4096;

  bool insert(const void* interp, OwnerId id) noexcept;
  void erase(const void* interp) noexcept;
  OwnerId find(const void* interp) const noexcept;

 private:
  static constexpr uintptr_t kEmpty = 0;
  static constexpr uintptr_t kTombstone = 1;
  static size_t slot_of(const void* interp) noexcept;

  struct Entry {
    std::atomic<uintptr_t> key{kEmpty};
    std::atomic<OwnerId> id{kNoOwner};
  };
  std::array<Entry, kCapacity> entries_;
};

}  // namespace xinterp::python
