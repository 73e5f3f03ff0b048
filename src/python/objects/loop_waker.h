// LoopWaker: how a queue or channel wakes an asyncio event loop without a thread per wait. One
// per (event loop, interpreter): it owns an eventfd that the loop watches (loop.add_reader), and
// a list of ready tokens. wake(token), from any thread of any interpreter with or without a GIL,
// appends the token and writes the eventfd (only when the list was empty: one write per batch);
// the loop's reader callback drain()s the tokens and resolves the futures they name.
//
// Lifetime: shared by the Python notifier object (a capsule) and every queue where one of its
// waiters is registered; the eventfd is closed with the last owner. After close() (the loop
// went away) wake() does nothing.
//
// Threading: every method is thread-safe; wake() never blocks (the eventfd is non-blocking and a
// full counter means a wake-up is pending anyway).
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "xinterp/async_waiters.h"

namespace xinterp::python {

class LoopWaker final : public AsyncWaker {
 public:
  // fd() < 0 if the eventfd could not be made (errno_ says why).
  LoopWaker();
  ~LoopWaker() override;
  LoopWaker(const LoopWaker&) = delete;
  LoopWaker& operator=(const LoopWaker&) = delete;

  int fd() const noexcept { return fd_; }
  int error() const noexcept { return errno_; }
  void wake(uint64_t token) noexcept override;
  // The tokens woken since the last drain (clears the eventfd).
  std::vector<uint64_t> drain();
  void close();
  // Whether a token could not be recorded (no memory) since the last call: the loop then wakes
  // every waiter it has, which all look again (a spurious wake-up is harmless).
  bool take_lost() noexcept;

 private:
  int fd_ = -1;
  int errno_ = 0;
  mutable std::mutex mu_;
  std::vector<uint64_t> ready_;  // under mu_
  bool closed_ = false;          // under mu_
  bool lost_ = false;            // under mu_: a token was dropped (no memory)
};

}  // namespace xinterp::python
