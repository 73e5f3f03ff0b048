// xinterp_core_bench: the core's pending calls beside two baselines, in one binary.
//
//   xinterp      the core: lock-free intrusive queue, wake per transition, housekeeper.
//   mutex_deque  a mutex + std::deque of {fn, arg}; the consumer swaps the deque out.
//   fixed300     CPython's design: a fixed ring of 300 {fn, arg} behind a mutex, popped one at a
//                time; a post to a full ring is refused (counted in `refused`).
//
// Workloads (the implementation's name is in each benchmark's name):
//   post_throughput/<impl>/producers:N  N producers post while one busy owner drains; posts/s
//                                       as the producers see them.
//   post_run_throughput/<impl>/producers:N  the same, until every call ran; calls run/s.
//   latency_busy/<impl>                 post -> run with an owner spinning on its pending flag.
//   latency_idle/<impl>                 post -> run with no owner thread at all (housekeeper).
//
// Run with --benchmark_repetitions=N: every benchmark reports median, mean, min and stdev.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "housekeeper.h"
#include "xinterp/engine.h"
#include "xinterp/owner.h"
#include "xinterp/runtime.h"

namespace {

using Clock = std::chrono::steady_clock;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// --- the work item -----------------------------------------------------------------------------

struct Item : xinterp::PendingCall {
  Item() : PendingCall(&Item::run_in_queue) {}
  static bool run_in_queue(PendingCall* self, xinterp::RunMode) {
    static_cast<Item*>(self)->done->fetch_add(1, std::memory_order_release);
    return true;
  }
  static void run_plain(void* self) {
    static_cast<Item*>(self)->done->fetch_add(1, std::memory_order_release);
  }
  std::atomic<uint64_t>* done = nullptr;
};

// --- xinterp --------------------------------------------------------------------------------

class BenchEngine final : public xinterp::Engine {
 public:
  void wake(xinterp::Owner&) noexcept override {}
  bool attach(xinterp::Owner&) noexcept override { return true; }
  void detach(xinterp::Owner&) noexcept override {}
  xinterp::OwnerId current_owner() const noexcept override { return xinterp::kNoOwner; }
  bool is_idle(xinterp::Owner&) noexcept override { return idle; }
  bool idle = false;
};

class XinterpQueue {
 public:
  static constexpr const char* kName = "xinterp";
  explicit XinterpQueue(bool idle) {
    engine_.idle = idle;
    owner_ = runtime_.create_owner();
  }
  ~XinterpQueue() {
    owner_->begin_close();
    owner_->wait_until_unused();
    owner_->finish_close();
  }
  bool post(Item* item) {
    owner_->post(item);
    return true;
  }
  bool has_pending() const { return owner_->has_pending(); }
  void drain() { owner_->drain(xinterp::DrainBy::kOwner); }
  uint64_t refused() const { return 0; }

 private:
  BenchEngine engine_;
  xinterp::Runtime runtime_{engine_};
  xinterp::OwnerRef owner_;
};

// --- the two baselines share a mutex, {fn, arg} entries and a pending flag ------------------

class LockedBaseline {
 public:
  explicit LockedBaseline(bool /*idle: nothing drains an idle baseline*/) {}
  bool has_pending() const { return pending_.load(std::memory_order_relaxed); }

 protected:
  struct Entry {
    void (*fn)(void*) = nullptr;
    void* arg = nullptr;
  };
  std::mutex mu_;
  std::atomic<bool> pending_{false};
};

// --- mutex + deque --------------------------------------------------------------------------

class MutexDequeQueue : public LockedBaseline {
 public:
  static constexpr const char* kName = "mutex_deque";
  using LockedBaseline::LockedBaseline;
  bool post(Item* item) {
    std::lock_guard<std::mutex> lock(mu_);
    q_.push_back({&Item::run_plain, item});
    pending_.store(true, std::memory_order_release);
    return true;
  }
  void drain() {
    std::deque<Entry> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(q_);
      pending_.store(false, std::memory_order_relaxed);
    }
    for (Entry& e : batch) e.fn(e.arg);  // outside the lock
  }
  uint64_t refused() const { return 0; }

 private:
  std::deque<Entry> q_;
};

// --- CPython-style fixed ring ------------------------------------------------------------

class Fixed300Queue : public LockedBaseline {
 public:
  static constexpr const char* kName = "fixed300";
  using LockedBaseline::LockedBaseline;
  bool post(Item* item) {
    std::lock_guard<std::mutex> lock(mu_);
    int next = (last_ + 1) % kSize;
    if (next == first_) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return false;  // CPython: _PyEval_AddPendingCall returns -1 and the release is dropped
    }
    ring_[last_] = {&Item::run_plain, item};
    last_ = next;
    pending_.store(true, std::memory_order_release);
    return true;
  }
  void drain() {
    for (;;) {
      Entry e;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (first_ == last_) {
          pending_.store(false, std::memory_order_relaxed);
          return;
        }
        e = ring_[first_];
        first_ = (first_ + 1) % kSize;
      }
      e.fn(e.arg);
    }
  }
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  static constexpr int kSize = 300 + 1;  // 300 usable slots, one kept empty
  Entry ring_[kSize];
  int first_ = 0, last_ = 0;
  std::atomic<uint64_t> refused_{0};
};

// A busy owner: a thread that spins on the pending flag and drains.
template <class Q>
class BusyOwner {
 public:
  explicit BusyOwner(Q& q) : q_(q), thread_([this] { run(); }) {}
  ~BusyOwner() {
    stop_.store(true);
    thread_.join();
  }

 private:
  void run() {
    while (!stop_.load(std::memory_order_relaxed)) {
      if (q_.has_pending()) {
        q_.drain();
      } else {
        cpu_relax();
        if (++idle_spins_ % 64 == 0) std::this_thread::yield();
      }
    }
    q_.drain();
  }
  Q& q_;
  uint64_t idle_spins_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// --- post throughput ------------------------------------------------------------------------

// kEndToEnd = false: the time until every producer's post() returned (the cost the posting side
// pays, with the owner draining concurrently). true: until every call also ran.
template <class Q, bool kEndToEnd>
void BM_post_throughput(benchmark::State& state) {
  // The benchmark thread is producer 0; producers 1.. are threads of their own. Every wait
  // yields: with 2 cores, an owner plus 2 producers already oversubscribe the machine.
  const int producers = static_cast<int>(state.range(0));
  constexpr int kBatch = 20'000;  // per producer per iteration
  Q q(/*idle=*/false);
  BusyOwner<Q> owner(q);
  std::atomic<uint64_t> done{0};
  std::vector<std::vector<Item>> items(producers);
  for (auto& v : items) {
    v = std::vector<Item>(kBatch);
    for (Item& it : v) it.done = &done;
  }
  std::atomic<uint64_t> go{0};
  std::atomic<int> finished{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> accepted{0};
  auto produce = [&](int p) {
    uint64_t ok = 0;
    for (Item& it : items[p]) ok += q.post(&it);
    accepted.fetch_add(ok, std::memory_order_relaxed);
    finished.fetch_add(1, std::memory_order_release);
  };
  std::vector<std::thread> threads;
  for (int p = 1; p < producers; ++p) {
    threads.emplace_back([&, p] {
      uint64_t seen = 0;
      for (;;) {
        uint64_t g;
        while ((g = go.load(std::memory_order_acquire)) == seen) {
          if (stop.load(std::memory_order_relaxed)) return;
          std::this_thread::yield();
        }
        seen = g;
        produce(p);
      }
    });
  }
  uint64_t total_run = 0;
  for (auto _ : state) {
    done.store(0, std::memory_order_relaxed);
    accepted.store(0, std::memory_order_relaxed);
    finished.store(0, std::memory_order_relaxed);
    auto t0 = Clock::now();
    go.fetch_add(1, std::memory_order_release);
    produce(0);
    while (finished.load(std::memory_order_acquire) < producers) std::this_thread::yield();
    auto t_posted = Clock::now();
    const uint64_t want = accepted.load(std::memory_order_relaxed);
    while (done.load(std::memory_order_acquire) < want) std::this_thread::yield();
    auto t1 = kEndToEnd ? Clock::now() : t_posted;
    total_run += want;
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  state.SetItemsProcessed(static_cast<int64_t>(total_run));
  const double offered = static_cast<double>(state.iterations()) * producers * kBatch;
  state.counters["refused"] = benchmark::Counter(static_cast<double>(q.refused()) / offered);
}

// --- latency, busy owner --------------------------------------------------------------------

template <class Q>
void BM_latency_busy(benchmark::State& state) {
  Q q(/*idle=*/false);
  BusyOwner<Q> owner(q);
  std::atomic<uint64_t> done{0};
  Item item;
  item.done = &done;
  uint64_t expected = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    if (!q.post(&item)) {
      state.SkipWithError("post refused");
      break;
    }
    ++expected;
    while (done.load(std::memory_order_acquire) < expected) cpu_relax();
    state.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
  }
}

// --- latency, idle owner --------------------------------------------------------------------

template <class Q>
void BM_latency_idle(benchmark::State& state) {
  Q q(/*idle=*/true);  // nobody drains but, for xinterp, the housekeeper
  std::atomic<uint64_t> done{0};
  Item item;
  item.done = &done;
  uint64_t expected = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    q.post(&item);
    ++expected;
    auto give_up = t0 + std::chrono::milliseconds(100);
    while (done.load(std::memory_order_acquire) < expected) {
      if (Clock::now() > give_up) {
        state.SkipWithError("stranded: the call never ran (no thread drains an idle owner)");
        // Run it ourselves so the item is not left behind in the queue.
        q.drain();
        return;
      }
      std::this_thread::yield();
    }
    state.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
  }
}

double min_of(const std::vector<double>& v) {
  double m = v.empty() ? 0 : v[0];
  for (double x : v) m = x < m ? x : m;
  return m;
}

template <class B>
B* common(B* b) {
  return b->UseManualTime()->ComputeStatistics("min", min_of);
}

#define XI_REGISTER_ALL(Q)                                                                      \
  common(benchmark::RegisterBenchmark((std::string("post_throughput/") + Q::kName).c_str(),     \
                                      BM_post_throughput<Q, false>))                            \
      ->ArgName("producers")                                                                    \
      ->Arg(1)                                                                                  \
      ->Arg(2)                                                                                  \
      ->Unit(benchmark::kMicrosecond);                                                          \
  common(benchmark::RegisterBenchmark((std::string("post_run_throughput/") + Q::kName).c_str(), \
                                      BM_post_throughput<Q, true>))                             \
      ->ArgName("producers")                                                                    \
      ->Arg(1)                                                                                  \
      ->Arg(2)                                                                                  \
      ->Unit(benchmark::kMicrosecond);                                                          \
  common(benchmark::RegisterBenchmark((std::string("latency_busy/") + Q::kName).c_str(),        \
                                      BM_latency_busy<Q>))                                      \
      ->Unit(benchmark::kMicrosecond);                                                          \
  common(benchmark::RegisterBenchmark((std::string("latency_idle/") + Q::kName).c_str(),        \
                                      BM_latency_idle<Q>))                                      \
      ->Unit(benchmark::kMicrosecond)                                                           \
      ->Iterations(200);

}  // namespace

int main(int argc, char** argv) {
  XI_REGISTER_ALL(XinterpQueue);
  XI_REGISTER_ALL(MutexDequeQueue);
  XI_REGISTER_ALL(Fixed300Queue);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
