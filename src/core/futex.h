// Futex wait/wake on a std::atomic<uint32_t> (Linux).
//
// Used where a sleeping thread must be woken from an async-signal-safe path or from a forked
// child: a futex is a syscall on a word, with no lock that a dead thread could have kept.
// Spurious wake-ups are allowed; callers re-check their condition.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace xinterp::internal {

// Sleeps while *word == expected, at most `timeout` (negative: no limit).
void futex_wait(std::atomic<uint32_t>& word, uint32_t expected,
                std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1)) noexcept;
// Wakes up to `count` sleepers of `word`. Async-signal-safe.
void futex_wake(std::atomic<uint32_t>& word, int count = 1) noexcept;

}  // namespace xinterp::internal
