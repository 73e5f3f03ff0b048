// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable with clang
// thread-safety annotations, shared by the core and the CPython engine (src/base is the layer
// under both), so that the -Wthread-safety build checks the lock discipline of each.
//
// Threading: ordinary mutex semantics. Fork: every Mutex that a fork may find held is taken by a
// pthread_atfork prepare handler and released in parent and child by the forking thread (the
// core's fork_handler.cc, the engine's PythonEngine::before_fork), so each is usable in the
// child.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "base/thread_annotations.h"

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

// A condition variable waited on with a Mutex held (the analysis sees the Mutex held throughout,
// as the caller does).
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void wait(Mutex& mu) XI_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.native(), std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // false once `deadline` passed (the caller re-checks its condition either way).
  template <class Clock, class Duration>
  bool wait_until(Mutex& mu, const std::chrono::time_point<Clock, Duration>& deadline)
      XI_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.native(), std::adopt_lock);
    const bool in_time = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    lock.release();
    return in_time;
  }
  void notify_one() noexcept { cv_.notify_one(); }
  void notify_all() noexcept { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace xinterp::internal
