#include "engine/interp_table.h"

namespace xinterp::python {

size_t InterpTable::slot_of(const void* interp) noexcept {
  uint64_t h = reinterpret_cast<uintptr_t>(interp);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return static_cast<size_t>(h) & (kCapacity - 1);
}

bool InterpTable::insert(const void* interp, OwnerId id) noexcept {
  const uintptr_t key = reinterpret_cast<uintptr_t>(interp);
  size_t slot = slot_of(interp);
  for (size_t probe = 0; probe < kCapacity; ++probe, slot = (slot + 1) & (kCapacity - 1)) {
    Entry& e = entries_[slot];
    const uintptr_t k = e.key.load(std::memory_order_relaxed);
    if (k == kEmpty || k == kTombstone || k == key) {
      // A reader probing past this slot for another key is unaffected: the slot is either
      // reused for this key or was already empty (ending its probe).
      e.id.store(id, std::memory_order_relaxed);
      e.key.store(key, std::memory_order_release);
      return true;
    }
  }
  return false;
}

void InterpTable::erase(const void* interp) noexcept {
  const uintptr_t key = reinterpret_cast<uintptr_t>(interp);
  size_t slot = slot_of(interp);
  for (size_t probe = 0; probe < kCapacity; ++probe, slot = (slot + 1) & (kCapacity - 1)) {
    Entry& e = entries_[slot];
    const uintptr_t k = e.key.load(std::memory_order_relaxed);
    if (k == kEmpty) return;
    if (k == key) {
      e.key.store(kTombstone, std::memory_order_release);
      e.id.store(kNoOwner, std::memory_order_relaxed);
      return;
    }
  }
}

OwnerId InterpTable::find(const void* interp) const noexcept {
  if (interp == nullptr) return kNoOwner;
  const uintptr_t key = reinterpret_cast<uintptr_t>(interp);
  size_t slot = slot_of(interp);
  for (size_t probe = 0; probe < kCapacity; ++probe, slot = (slot + 1) & (kCapacity - 1)) {
    const Entry& e = entries_[slot];
    const uintptr_t k = e.key.load(std::memory_order_acquire);
    if (k == kEmpty) return kNoOwner;
    if (k == key) {
      const OwnerId id = e.id.load(std::memory_order_acquire);
      if (e.key.load(std::memory_order_acquire) == key) return id;
      return kNoOwner;
    }
  }
  return kNoOwner;
}

}  // namespace xinterp::python
