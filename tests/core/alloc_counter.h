// Counts operator new calls made by the calling thread. Include in exactly one file of a test
// binary: it replaces the global operator new/delete.
#pragma once

#include <cstdlib>
#include <new>

namespace xinterp::testing {
inline thread_local unsigned long long g_thread_allocations = 0;
}

void* operator new(std::size_t n) {
  ++xinterp::testing::g_thread_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  ++xinterp::testing::g_thread_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
