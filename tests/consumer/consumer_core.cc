// Uses the installed core (xinterp::core) with an engine of its own: a call posted from another
// thread must run inside the owner when the owner drains, and a call posted after the owner
// closed must run raw at once. Exits 0 on success, 1 with a message otherwise.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "xinterp/engine.h"
#include "xinterp/owner.h"
#include "xinterp/runtime.h"

namespace {

// One "interpreter" whose lock is a mutex; wake() tells the owner's thread to drain.
class LoopEngine final : public xinterp::Engine {
 public:
  void wake(xinterp::Owner&) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
    cv_.notify_one();
  }
  bool attach(xinterp::Owner& owner) noexcept override {
    gil_.lock();
    current_ = owner.id();
    return true;
  }
  void detach(xinterp::Owner&) noexcept override {
    current_ = xinterp::kNoOwner;
    gil_.unlock();
  }
  xinterp::OwnerId current_owner() const noexcept override { return current_; }

  void wait_for_wake() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return woken_; });
    woken_ = false;
  }

 private:
  static inline thread_local xinterp::OwnerId current_ = xinterp::kNoOwner;
  std::mutex gil_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;  // guarded by mu_
};

int failed(const char* what) {
  std::fprintf(stderr, "consumer_core: FAILED: %s\n", what);
  return 1;
}

}  // namespace

int main() {
  LoopEngine engine;
  // A long deadline: this thread drains, not the housekeeper.
  xinterp::Runtime runtime(engine, xinterp::RuntimeOptions{std::chrono::seconds(60)});
  xinterp::OwnerRef owner = runtime.create_owner();
  const xinterp::OwnerId id = owner->id();
  const std::thread::id owner_thread = std::this_thread::get_id();

  std::atomic<int> runs{0};
  std::thread::id ran_on;
  xinterp::RunMode ran_as = xinterp::RunMode::kRaw;
  std::thread poster([&] {
    runtime.post(id, [&](xinterp::RunMode mode) {
      ran_on = std::this_thread::get_id();
      ran_as = mode;
      runs.fetch_add(1);
    });
  });
  poster.join();
  if (runs.load() != 0) return failed("the call ran before the owner drained");

  engine.wait_for_wake();
  engine.attach(*owner);
  const size_t drained = owner->drain(xinterp::DrainBy::kOwner);
  engine.detach(*owner);
  if (drained != 1 || runs.load() != 1) return failed("draining did not run the call once");
  if (ran_on != owner_thread || ran_as != xinterp::RunMode::kInOwner) {
    return failed("the call did not run inside the owner");
  }

  // Close the way an engine does, then post to the closed owner: the call runs raw at once.
  owner->begin_close();
  owner->wait_until_unused();
  engine.attach(*owner);
  owner->finish_close();
  engine.detach(*owner);
  bool ran_raw = false;
  runtime.post(id, [&](xinterp::RunMode mode) { ran_raw = mode == xinterp::RunMode::kRaw; });
  if (!ran_raw) return failed("a call to a closed owner did not run raw");

  const xinterp::OwnerStats stats = owner->stats();
  if (stats.posted != 1 || stats.run_by_owner != 1 || stats.failed != 0) {
    return failed("owner stats do not match");
  }
  if (runtime.registry_stats().unknown_owner_posts != 1) {
    return failed("the post to the closed owner was not counted");
  }
  owner = xinterp::OwnerRef();  // no reference may outlive the runtime
  std::printf("consumer_core: ok (owner %llu)\n", static_cast<unsigned long long>(id));
  return 0;
}
