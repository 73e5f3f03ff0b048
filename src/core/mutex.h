// Mutex and MutexLock: std::mutex with clang thread-safety annotations.
//
// Threading: ordinary mutex semantics. Fork: every core Mutex that a fork may find held is taken
// by the pthread_atfork prepare handler and released in parent and child by the forking thread
// (fork_handler.cc), so each is usable in the child.
#pragma once

#include <condition_variable>
#include <mutex>

#include "thread_annotations.h"

namespace xinterp::internal {

class XI_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() XI_ACQUIRE() { mu_.lock(); }
  void unlock() XI_RELEASE() { mu_.unlock(); }

  // For condition variables only.
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

class XI_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) XI_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() XI_RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace xinterp::internal
