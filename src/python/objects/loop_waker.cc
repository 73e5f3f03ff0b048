#include "objects/loop_waker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <new>

namespace xinterp::python {

LoopWaker::LoopWaker() {
  fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd_ < 0) errno_ = errno;
}

LoopWaker::~LoopWaker() {
  if (fd_ >= 0) ::close(fd_);
}

void LoopWaker::wake(uint64_t token) noexcept {
  bool poke;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    poke = ready_.empty() && !lost_;
    try {
      ready_.push_back(token);
    } catch (const std::bad_alloc&) {
      lost_ = true;  // drain() then asks every waiter to look again
      poke = true;
    }
  }
  if (poke) {
    const uint64_t one = 1;
    // EAGAIN: the counter is full, so the loop has a wake-up pending anyway.
    [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof one);
  }
}

std::vector<uint64_t> LoopWaker::drain() {
  uint64_t count;
  [[maybe_unused]] ssize_t n = ::read(fd_, &count, sizeof count);  // EAGAIN: nothing pending
  std::vector<uint64_t> out;
  std::lock_guard<std::mutex> lock(mu_);
  out.swap(ready_);
  return out;
}

bool LoopWaker::take_lost() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  const bool was = lost_;
  lost_ = false;
  return was;
}

void LoopWaker::close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  ready_.clear();
}

}  // namespace xinterp::python
