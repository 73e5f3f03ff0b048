// The fork generation: how many forks this process descends through (0 in the original process,
// one more in each child, counted by the engine's pthread_atfork child handler). An object that
// caches a queue or channel stamps it and compares on use (a single relaxed load), so that a
// handle made before a fork refuses use in the child.
#pragma once

#include <atomic>
#include <cstdint>

namespace xinterp::python {

inline std::atomic<uint64_t> g_fork_generation{0};
inline uint64_t fork_generation() noexcept {
  return g_fork_generation.load(std::memory_order_relaxed);
}
inline void enter_fork_child() noexcept {
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace xinterp::python
