// Counts operator new calls made by the calling thread. Include in exactly one file of a test
// binary: it replaces the global operator new/delete.
//
// Sanitizer runtimes define operator new themselves, so there the counter stays 0 and
// kCountsAllocations is false (tests then skip their no-allocation checks; TSan itself reports
// allocation inside a signal handler).
#pragma once

#include <cstdlib>
#include <new>

namespace xinterp::testing {
inline thread_local unsigned long long g_thread_allocations = 0;
#if defined(XINTERP_SANITIZER_THREAD) || defined(XINTERP_SANITIZER_ADDRESS)
inline constexpr bool kCountsAllocations = false;
}  // namespace xinterp::testing
#else
inline constexpr bool kCountsAllocations = true;
}  // namespace xinterp::testing

// The replacements are never inlined. GCC 12 at -O2/-O3 otherwise inlines a delete into its
// caller while leaving the matching `operator new` a call, sees free() applied to a pointer
// returned by operator new, and reports -Wmismatched-new-delete: a false positive (GCC PR 103993),
// since both replacements use malloc/free. Kept as calls, new is paired with delete as written.
[[gnu::noinline]] void* operator new(std::size_t n) {
  ++xinterp::testing::g_thread_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
  ++xinterp::testing::g_thread_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif
