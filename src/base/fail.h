// fail(): the one cold exit for broken invariants.
//
// Formats into a stack buffer, writes it to stderr with write(2) and aborts: no allocation, no
// locks, so it is safe in a signal handler and in a forked child. Recoverable conditions never
// come here; they return a status or raise at the Python boundary.
#pragma once

namespace xinterp::internal {

[[noreturn, gnu::cold, gnu::format(printf, 1, 2)]] void fail(const char* fmt, ...) noexcept;

}  // namespace xinterp::internal

#define XI_CHECK(cond, ...)                                                   \
  do {                                                                        \
    if (__builtin_expect(!(cond), 0)) ::xinterp::internal::fail(__VA_ARGS__); \
  } while (0)
