// What a fork child does with the parent's queues and channels: abandons them.
//
// Their BlockingQueues' mutexes may have been held, and their condition variables waited on, by
// threads of the parent that do not exist in the child; touching them could hang the child
// (glibc's condition variables wait for their old waiters). So the child never touches them
// again: each is moved out of its registry into memory that is never freed, and its id is
// remembered, so that using it raises a clear "inherited across fork()" error rather than "not
// found". New queues and channels in the child are unaffected.
//
// Requirements: only in a pthread_atfork child handler, with the registry's lock held.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_set>
#include <utility>
#include <vector>

namespace xinterp::python {

// How many forks this process descends through: 0 in the original process, one more in each
// child (PythonEngine's child handler). An object that caches a queue or channel stamps it and
// compares on use: a single relaxed load.
inline std::atomic<uint64_t> g_fork_generation{0};
inline uint64_t fork_generation() noexcept {
  return g_fork_generation.load(std::memory_order_relaxed);
}
inline void enter_fork_child() noexcept {
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
}

template <class Map>
void abandon_in_fork_child(Map* live, std::unordered_set<int64_t>* inherited) {
  using Ptr = typename Map::mapped_type;
  auto* abandoned = new std::vector<Ptr>();  // leaked on purpose: see above
  abandoned->reserve(live->size());
  for (auto& [id, entry] : *live) {
    inherited->insert(id);
    abandoned->push_back(std::move(entry));
  }
  live->clear();  // only moved-from (empty) pointers are destroyed here
}

}  // namespace xinterp::python
