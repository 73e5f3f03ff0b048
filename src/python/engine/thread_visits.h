// ThreadVisits: the calling OS thread as the engine keys the thread states it keeps for it
// between visits to an interpreter (InterpRecord::visit_tstates).
//
// Decision: the key is a number drawn once per OS thread from a process-wide counter, never
// PyThread_get_thread_ident(). An ident is reused by the next thread once its thread ended (glibc
// hands out the same pthread_t), and a kept thread state carries its thread's Python state
// (threading.local data, the thread's dict): keyed by ident, a new thread would have entered an
// interpreter with a dead thread's state and read its threading.local values.
// And a kept thread state ends with its thread: when the OS thread ends, the destructor of its
// ThreadVisits hands the thread states it kept over to their interpreters (PythonEngine::
// thread_ended), whose next visit or close deletes them (a thread state is deleted only by a
// thread attached to its interpreter, which the ending thread is not).
//
// Requirements: none; current() is used by the calling thread only.
// Threading: each object belongs to one thread; the destructor runs on that thread at its end
// (for the main thread, inside exit()), takes only the engine's lock and touches no Python.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/interp_record.h"

namespace xinterp::python {

class ThreadVisits {
 public:
  static ThreadVisits& current() {
    thread_local ThreadVisits visits;
    return visits;
  }
  ThreadVisits(const ThreadVisits&) = delete;
  ThreadVisits& operator=(const ThreadVisits&) = delete;
  ~ThreadVisits();  // thread_visits.cc

  // Unique to this OS thread for the life of the process (never 0).
  uint64_t key() const noexcept { return key_; }
  // This thread now keeps a thread state in rec (called when one is stored in visit_tstates).
  void keeps_in(const std::shared_ptr<InterpRecord>& rec) {
    for (auto it = kept_in_.begin(); it != kept_in_.end();) {
      std::shared_ptr<InterpRecord> r = it->lock();
      if (r == rec) return;
      it = r ? it + 1 : kept_in_.erase(it);  // closed interpreters drop out
    }
    kept_in_.push_back(rec);
  }

 private:
  ThreadVisits() : key_(next_key().fetch_add(1, std::memory_order_relaxed)) {}
  static std::atomic<uint64_t>& next_key() {
    static std::atomic<uint64_t> next{1};
    return next;
  }

  const uint64_t key_;
  std::vector<std::weak_ptr<InterpRecord>> kept_in_;
};

}  // namespace xinterp::python
