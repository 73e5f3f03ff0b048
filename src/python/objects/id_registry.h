// IdRegistry<T>: the process-wide table of one kind of shared object (queues, channels), found by
// a never-reused id from any interpreter.
//
// Main operations: add() registers a new object under the next id; find(), all() and
// with_locked() look it up; remove() unregisters it. existed() tells a closed id from one that
// never was; inherited() tells the ids of a parent process's objects in a fork child.
//
// Fork: the registry's lock is held across fork() (before_fork / after_fork_*, called from the
// engine's pthread_atfork handlers through the owning registry's EngineListener). The child
// abandons every object: their BlockingQueues' mutexes may have been held, and their condition
// variables waited on, by threads of the parent that do not exist in the child, and touching
// them could hang it (glibc's condition variables wait for their old waiters). So each is moved
// into memory that is never freed, and its id is remembered, so that using it raises a clear
// "inherited across fork()" error rather than "not found". New objects in the child work.
//
// Requirements: T is held by std::shared_ptr; nothing is destroyed under the registry's lock
// (remove() hands the object back for its caller to finish outside it).
// Threading: every method is thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/mutex.h"
#include "engine/fork_generation.h"

namespace xinterp::python {

template <class T>
class IdRegistry {
 public:
  using Ptr = std::shared_ptr<T>;

  // Registers make(id) under a new id and returns the id.
  template <class Make>
  int64_t add(Make make) XI_EXCLUDES(mu_) {
    internal::MutexLock lock(mu_);
    const int64_t id = next_id_++;
    live_.emplace(id, make(id));
    return id;
  }

  Ptr find(int64_t id) XI_EXCLUDES(mu_) {
    internal::MutexLock lock(mu_);
    auto it = live_.find(id);
    return it == live_.end() ? nullptr : it->second;
  }

  // Runs fn(T&) under the registry's lock if `id` is registered (for state that the lock guards,
  // such as a reference count); returns whether it ran. fn must not take other locks.
  template <class Fn>
  bool with_locked(int64_t id, Fn fn) XI_EXCLUDES(mu_) {
    internal::MutexLock lock(mu_);
    auto it = live_.find(id);
    if (it == live_.end()) return false;
    fn(*it->second);
    return true;
  }

  // Runs fn(T&) on every registered object under the registry's lock (for statistics over
  // state that the lock guards). fn must not take other locks.
  template <class Fn>
  void for_each_locked(Fn fn) XI_EXCLUDES(mu_) {
    internal::MutexLock lock(mu_);
    for (const auto& [id, p] : live_) fn(*p);
  }

  // Unregisters `id` if registered and pred(T&) (under the lock) says so; returns the object
  // for the caller to finish outside the lock, or nullptr.
  template <class Pred>
  Ptr remove_if(int64_t id, Pred pred) XI_EXCLUDES(mu_) {
    internal::MutexLock lock(mu_);
    auto it = live_.find(id);
    if (it == live_.end() || !pred(*it->second)) return nullptr;
    Ptr out = std::move(it->second);
    live_.erase(it);
    return out;
  }
  Ptr remove(int64_t id) XI_EXCLUDES(mu_) {
    return remove_if(id, [](T&) { return true; });
  }
  // Unregisters everything; returns it for the caller to finish outside the lock.
  std::vector<Ptr> remove_all() XI_EXCLUDES(mu_) {
    internal::MutexLock lock(mu_);
    std::vector<Ptr> out;
    out.reserve(live_.size());
    for (auto& [id, p] : live_) out.push_back(std::move(p));
    live_.clear();
    return out;
  }

  std::vector<Ptr> all() XI_EXCLUDES(mu_) {
    internal::MutexLock lock(mu_);
    std::vector<Ptr> out;
    out.reserve(live_.size());
    for (const auto& [id, p] : live_) out.push_back(p);
    return out;
  }
  size_t size() XI_EXCLUDES(mu_) {
    internal::MutexLock lock(mu_);
    return live_.size();
  }

  // Whether `id` was ever registered here (ids are never reused).
  bool existed(int64_t id) XI_EXCLUDES(mu_) {
    internal::MutexLock lock(mu_);
    return id > 0 && id < next_id_;
  }
  // Whether `id` belongs to the parent process, abandoned in this fork child.
  bool inherited(int64_t id) XI_EXCLUDES(mu_) {
    internal::MutexLock lock(mu_);
    return inherited_.count(id) != 0;
  }

  void before_fork() XI_ACQUIRE(mu_) { mu_.lock(); }
  void after_fork_parent() XI_RELEASE(mu_) { mu_.unlock(); }
  void after_fork_child() XI_RELEASE(mu_) {
    auto* abandoned = new std::vector<Ptr>();  // leaked on purpose: see above
    abandoned->reserve(live_.size());
    for (auto& [id, p] : live_) {
      inherited_.insert(id);
      abandoned->push_back(std::move(p));
    }
    live_.clear();  // only moved-from (empty) pointers are destroyed here
    mu_.unlock();
  }

 private:
  internal::Mutex mu_;
  int64_t next_id_ XI_GUARDED_BY(mu_) = 1;
  std::unordered_map<int64_t, Ptr> live_ XI_GUARDED_BY(mu_);
  std::unordered_set<int64_t> inherited_ XI_GUARDED_BY(mu_);
};

}  // namespace xinterp::python
