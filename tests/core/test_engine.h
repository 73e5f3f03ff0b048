// A fake engine for the core's tests: an "interpreter" is a SimOwner with a mutex for a GIL.
//
// Modes: kListening owners have a thread that drains whenever woken (a busy interpreter that
// honours its eval breaker); kDeaf owners never drain by themselves and are not idle (a busy
// interpreter whose pending call was lost, as seen on CPython 3.12.1); kIdle owners never drain
// and say so (an interpreter with no thread running).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "xinterp/engine.h"
#include "xinterp/owner.h"
#include "xinterp/runtime.h"

namespace xinterp::testing {

enum class SimMode { kListening, kDeaf, kIdle };

struct SimOwner {
  explicit SimOwner(SimMode m) : mode(m) {}
  SimMode mode;
  std::mutex gil;
  std::atomic<uint64_t> wakes{0};
  std::atomic<uint64_t> attaches{0};
  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;  // guarded by mu
};

class TestEngine final : public Engine {
 public:
  void wake(Owner& owner) noexcept override {
    wake_calls.fetch_add(1, std::memory_order_relaxed);
    SimOwner& sim = this->sim(owner);
    sim.wakes.fetch_add(1, std::memory_order_relaxed);
    if (sim.mode == SimMode::kListening) {
      std::lock_guard<std::mutex> lock(sim.mu);
      sim.woken = true;
      sim.cv.notify_one();
    }
  }
  bool attach(Owner& owner) noexcept override {
    SimOwner& sim = this->sim(owner);
    sim.gil.lock();
    sim.attaches.fetch_add(1, std::memory_order_relaxed);
    current_ = owner.id();
    return true;
  }
  void detach(Owner& owner) noexcept override {
    current_ = kNoOwner;
    sim(owner).gil.unlock();
  }
  OwnerId current_owner() const noexcept override {
    current_owner_calls.fetch_add(1, std::memory_order_relaxed);
    return current_;
  }
  bool is_idle(Owner& owner) noexcept override { return sim(owner).mode == SimMode::kIdle; }
  void report_failure(Owner&, const char* what) noexcept override {
    failures_reported.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    last_failure_ = what;
  }
  std::string last_failure() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_failure_;
  }

  static SimOwner& sim(Owner& owner) { return *static_cast<SimOwner*>(owner.engine_data()); }

  // Makes the calling thread "attached" to `id` without taking its GIL (for tests of inline
  // paths); restores on destruction.
  struct ScopedCurrent {
    explicit ScopedCurrent(OwnerId id) : saved(current_) { current_ = id; }
    ~ScopedCurrent() { current_ = saved; }
    OwnerId saved;
  };

  std::atomic<uint64_t> wake_calls{0};
  mutable std::atomic<uint64_t> current_owner_calls{0};
  std::atomic<uint64_t> failures_reported{0};

 private:
  static thread_local OwnerId current_;
  std::mutex mu_;
  std::string last_failure_;
};

inline thread_local OwnerId TestEngine::current_ = kNoOwner;

// The thread of a kListening owner: attached most of the time, drains when woken, and lets go of
// its GIL between waits so that others (the housekeeper, a closer) can attach.
class ListeningThread {
 public:
  ListeningThread(TestEngine& engine, OwnerRef owner)
      : engine_(engine), owner_(std::move(owner)), thread_([this] { run(); }) {}
  ~ListeningThread() { stop(); }
  void stop() {
    if (!thread_.joinable()) return;
    stop_.store(true);
    {
      SimOwner& sim = TestEngine::sim(*owner_);
      std::lock_guard<std::mutex> lock(sim.mu);
      sim.cv.notify_one();
    }
    thread_.join();
  }

 private:
  void run() {
    SimOwner& sim = TestEngine::sim(*owner_);
    while (!stop_.load()) {
      {
        std::unique_lock<std::mutex> lock(sim.mu);
        sim.cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return sim.woken || stop_; });
        sim.woken = false;
      }
      if (owner_->state() == OwnerState::kClosed) break;
      if (engine_.attach(*owner_)) {
        owner_->drain(DrainBy::kOwner);
        engine_.detach(*owner_);
      }
    }
  }

  TestEngine& engine_;
  OwnerRef owner_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A call node that records how often it ran and whether the last run was raw. `delay` makes it
// slow; `raw_tally`, if set, counts raw runs across many nodes.
struct Once : PendingCall {
  Once() : PendingCall(&Once::run) {}
  static bool run(PendingCall* self, RunMode mode) {
    auto* o = static_cast<Once*>(self);
    if (o->delay.count() > 0) std::this_thread::sleep_for(o->delay);
    o->runs.fetch_add(1, std::memory_order_relaxed);
    o->raw.store(mode == RunMode::kRaw, std::memory_order_relaxed);
    if (o->raw_tally && mode == RunMode::kRaw) o->raw_tally->fetch_add(1);
    return true;
  }
  std::atomic<int> runs{0};
  std::atomic<bool> raw{false};
  std::chrono::microseconds delay{0};
  std::atomic<int>* raw_tally = nullptr;
};

// A call node that records that it ran, how (mode, read after `ran`) and when.
struct Flag : PendingCall {
  Flag() : PendingCall(&Flag::run) {}
  static bool run(PendingCall* self, RunMode mode) {
    auto* f = static_cast<Flag*>(self);
    f->mode = mode;
    f->ran_at = std::chrono::steady_clock::now();
    f->ran.store(true, std::memory_order_release);
    return true;
  }
  std::atomic<bool> ran{false};
  RunMode mode{};
  std::chrono::steady_clock::time_point ran_at;
};

// Closes an owner the way an engine does: begin, wait for housekeeper uses, attach, finish.
inline void close_owner(TestEngine& engine, Owner& owner) {
  owner.begin_close();
  owner.wait_until_unused();
  engine.attach(owner);
  owner.finish_close();
  engine.detach(owner);
}

// Polls `pred` until true or `timeout`; returns pred().
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return pred();
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

}  // namespace xinterp::testing
