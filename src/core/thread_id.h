// A cheap, async-signal-safe number for the calling thread (its pthread_t), used to recognise
// the forking thread in the child. Never 0.
#pragma once

#include <pthread.h>

#include <cstdint>

namespace xinterp::internal {

inline uint64_t this_thread_id() noexcept { return static_cast<uint64_t>(pthread_self()) | 1u; }

}  // namespace xinterp::internal
