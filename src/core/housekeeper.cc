#include "housekeeper.h"

#include <algorithm>

#include "base/fail.h"
#include "futex.h"
#include "xinterp/runtime.h"

namespace xinterp {

using Clock = std::chrono::steady_clock;

namespace {
// sleep_mode_ values.
constexpr uint32_t kAwake = 0;
constexpr uint32_t kTimed = 1;       // sleeping until a deadline: only urgent news wakes it
constexpr uint32_t kIndefinite = 2;  // nothing watched: any news wakes it
}  // namespace

Housekeeper::Housekeeper(Runtime& runtime) : runtime_(runtime) {}

Housekeeper::~Housekeeper() {
  stop_.store(true, std::memory_order_seq_cst);
  kick(/*urgent=*/true);
  {
    internal::MutexLock lock(start_mu_);
    if (joinable_) pthread_join(thread_, nullptr);
    joinable_ = false;
  }
  // Workers finish the jobs queued (the owners are still open), then exit.
  {
    internal::MutexLock lock(workers_mu_);
    workers_stop_ = true;
    workers_cv_->notify_all();
    while (workers_live_ != 0) workers_cv_->wait(workers_mu_);
  }
  join_retired_workers();
  delete workers_cv_;  // no worker is left to wait on it
  run_deferred_raw();
  internal::MutexLock lock(mu_);
  for (Owner* o = inbox_.exchange(nullptr); o;) {
    Owner* next = o->hk_next_;
    watched_.push_back({o, 0, {}, {}});
    o = next;
  }
  for (Watched& w : watched_) w.owner->unref();
  watched_.clear();
}

size_t Housekeeper::call_stack_size() noexcept {
  // What a thread created with default attributes gets (glibc: `ulimit -s`, or 2 MiB when that
  // is unlimited), and at least 8 MiB, the usual main-thread and Python-thread stack.
  static const size_t size = [] {
    constexpr size_t kMin = 8 * 1024 * 1024;
    size_t n = 0;
    pthread_attr_t attr;
    if (pthread_getattr_default_np(&attr) == 0) {
      (void)pthread_attr_getstacksize(&attr, &n);
      pthread_attr_destroy(&attr);
    }
    return std::max(n, kMin);
  }();
  return size;
}

namespace {
int start_thread(pthread_t* thread, void* (*fn)(void*), void* arg) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, Housekeeper::call_stack_size());
  int rc = pthread_create(thread, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  return rc;
}
}  // namespace

void Housekeeper::start() noexcept {
  internal::MutexLock lock(start_mu_);
  if (running_.load(std::memory_order_relaxed) || stop_.load(std::memory_order_relaxed)) return;
  int rc = start_thread(&thread_, &Housekeeper::thread_main, this);
  XI_CHECK(rc == 0, "cannot start the housekeeper thread (error %d)", rc);
  joinable_ = true;
  starts_.fetch_add(1, std::memory_order_relaxed);
  running_.store(true, std::memory_order_release);
}

void* Housekeeper::thread_main(void* self) {
  static_cast<Housekeeper*>(self)->run();
  return nullptr;
}

void Housekeeper::kick(bool urgent) noexcept {
  seq_.fetch_add(1, std::memory_order_seq_cst);
  uint32_t mode = sleep_mode_.load(std::memory_order_seq_cst);
  if (mode == kIndefinite || (urgent && mode == kTimed)) internal::futex_wake(seq_);
}

void Housekeeper::watch(Owner& owner, bool urgent) noexcept {
  // Fast path for an owner already watched (a busy owner stays watched): a seq_cst load is
  // enough for the Dekker pairing with unwatch_if_empty(); on x86 it is a plain load.
  if (owner.hk_watched_.load(std::memory_order_seq_cst) ||
      owner.hk_watched_.exchange(true, std::memory_order_seq_cst)) {
    if (urgent) kick(true);
    return;
  }
  owner.ref();  // the watch list's
  Owner* head = inbox_.load(std::memory_order_relaxed);
  do {
    owner.hk_next_ = head;
  } while (!inbox_.compare_exchange_weak(head, &owner, std::memory_order_seq_cst,
                                         std::memory_order_relaxed));
  kick(urgent);
}

void Housekeeper::defer_raw(Owner& owner, PendingCall* call) noexcept {
  owner.ref();  // dropped once the call ran
  call->deferred_owner_ = &owner;
  PendingCall* head = raw_.load(std::memory_order_relaxed);
  do {
    call->next_ = head;
  } while (!raw_.compare_exchange_weak(head, call, std::memory_order_seq_cst,
                                       std::memory_order_relaxed));
  kick(true);
}

void Housekeeper::run_deferred_raw() noexcept {
  // The list being run is published in raw_running_ before it is taken and advanced before each
  // call, so that a fork child can put back what this thread had not run (reset_after_fork_child).
  // Raw calls are independent clean-ups of dead owners: they run in LIFO order.
  PendingCall* c;
  for (;;) {
    c = raw_.load(std::memory_order_acquire);
    if (c == nullptr) return;
    raw_running_.store(c, std::memory_order_release);
    if (raw_.compare_exchange_strong(c, nullptr, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      break;
    }
  }
  while (c) {
    PendingCall* next = c->next_;
    raw_running_.store(next, std::memory_order_release);
    Owner* owner = c->deferred_owner_;
    c->deferred_owner_ = nullptr;
    owner->run_raw_deferred(c);
    owner->unref();
    c = next;
  }
}

void Housekeeper::take_inbox_locked(std::chrono::steady_clock::time_point now) {
  Owner* lifo = inbox_.exchange(nullptr, std::memory_order_acquire);
  size_t first = watched_.size();
  for (Owner* o = lifo; o;) {
    Owner* next = o->hk_next_;
    watched_.push_back({o, o->drain_epoch_.load(std::memory_order_acquire), now, {}});
    o = next;
  }
  std::reverse(watched_.begin() + static_cast<ptrdiff_t>(first), watched_.end());
}

bool Housekeeper::unwatch_if_empty(Owner& owner) noexcept {
  // Dekker with Owner::post(): the poster pushes (seq_cst) and then sets hk_watched_; we clear
  // hk_watched_ and then look at the queue. One of us sees the other.
  owner.hk_watched_.store(false, std::memory_order_seq_cst);
  PendingCall* h = owner.head_.load(std::memory_order_seq_cst);
  if (h == nullptr || h == Owner::sealed_marker()) return true;
  // Work arrived: keep our entry unless a poster already re-queued the owner with its own ref.
  return owner.hk_watched_.exchange(true, std::memory_order_seq_cst);
}

void Housekeeper::drain_attached(Owner& owner) noexcept {
  if (!owner.try_use()) return;  // closing: the closer drains
  Engine& engine = runtime_.engine();
  if (engine.attach(owner)) {
    attaches_.fetch_add(1, std::memory_order_relaxed);
    owner.drain(DrainBy::kHousekeeper);
    engine.detach(owner);
  }
  owner.end_use();
}

void Housekeeper::dispatch(Owner& owner) noexcept {
  owner.ref();  // the job's
  bool inline_drain = false;
  {
    internal::MutexLock lock(workers_mu_);
    jobs_.push_back(&owner);
    if (jobs_.size() > workers_idle_ && workers_live_ < runtime_.options().max_drain_workers) {
      pthread_t t;
      if (start_thread(&t, &Housekeeper::worker_main, this) == 0) {
        ++workers_live_;
        workers_started_.fetch_add(1, std::memory_order_relaxed);
        // Joined once it retires (join_retired_workers), by the housekeeper or its destructor.
      } else if (worker_start_failures_.fetch_add(1, std::memory_order_relaxed),
                 workers_live_ == 0) {
        // Fallback: no worker can start and none is alive to take the job: drain it here, as
        // the housekeeper always did (it then waits for this owner alone).
        jobs_.pop_back();
        inline_drain = true;
      }
    }
    if (!inline_drain) workers_cv_->notify_one();
  }
  if (inline_drain) {
    inline_drains_.fetch_add(1, std::memory_order_relaxed);
    drain_attached(owner);
    owner.hk_draining_.store(false, std::memory_order_release);
    owner.unref();
  }
}

void* Housekeeper::worker_main(void* self) {
  static_cast<Housekeeper*>(self)->worker_loop();
  return nullptr;
}

namespace {
// Set on drain worker threads: a call that forks (a __del__ calling os.fork()) leaves the child
// with this one worker still running, which reset_after_fork_child() must count.
thread_local bool t_is_worker = false;
}  // namespace

void Housekeeper::worker_loop() noexcept {
  t_is_worker = true;
  const auto retire_after = runtime_.options().worker_idle_retire;
  workers_mu_.lock();
  for (;;) {
    if (jobs_.empty()) {
      if (workers_stop_) break;
      ++workers_idle_;
      const bool woken =
          workers_cv_->wait_until(workers_mu_, std::chrono::steady_clock::now() + retire_after);
      --workers_idle_;
      if (!woken && jobs_.empty()) break;  // idle for a whole retire period: retire
      continue;
    }
    Owner* owner = jobs_.front();
    jobs_.erase(jobs_.begin());
    workers_mu_.unlock();
    drain_attached(*owner);
    // Cleared after the drain: until then the housekeeper queues no second job for this owner,
    // whatever the call does (blocks forever, posts more calls: this drain takes those too).
    owner->hk_draining_.store(false, std::memory_order_release);
    owner->unref();
    workers_mu_.lock();
  }
  --workers_live_;
  retired_.push_back(pthread_self());
  if (workers_live_ == 0) workers_cv_->notify_all();  // the destructor waits for the last one
  workers_mu_.unlock();
}

void Housekeeper::join_retired_workers() noexcept {
  std::vector<pthread_t> retired;
  {
    internal::MutexLock lock(workers_mu_);
    retired.swap(retired_);
  }
  for (pthread_t t : retired) pthread_join(t, nullptr);  // exiting, or gone already
}

Housekeeper::Verdict Housekeeper::visit(Watched& w, std::chrono::steady_clock::time_point now,
                                        std::chrono::steady_clock::time_point& next_due) noexcept {
  Owner& o = *w.owner;
  Engine& engine = runtime_.engine();
  OwnerState state = o.state();
  if (state == OwnerState::kClosed) return Verdict::kForget;
  // Engine calls only under a use, so that a concurrent close cannot free the engine's object.
  bool idle = false;
  if (state == OwnerState::kAlive && o.try_use()) {
    if (o.wake_deferred_.exchange(false, std::memory_order_acq_rel) && o.has_pending()) {
      o.wakes_.fetch_add(1, std::memory_order_relaxed);
      engine.wake(o);
    }
    idle = engine.is_idle(o);
    o.end_use();
  }
  const auto deadline = runtime_.options().drain_deadline;
  if (!o.has_pending()) {
    // Forget an owner only after it stayed empty for a whole deadline: a busy owner that keeps
    // going empty and non-empty stays watched, so its posters never have to wake us.
    if (w.empty_since == Clock::time_point()) w.empty_since = now;
    if (state == OwnerState::kAlive && now - w.empty_since < deadline) {
      next_due = std::min(next_due, w.empty_since + deadline);
      return Verdict::kKeep;
    }
    return unwatch_if_empty(o) ? Verdict::kForget : Verdict::kKeep;
  }
  w.empty_since = Clock::time_point();
  if (state == OwnerState::kAlive) {
    uint64_t epoch = o.drain_epoch_.load(std::memory_order_acquire);
    if (epoch != w.epoch) {
      // It drained since we last looked: it is alive and listening; restart its clock.
      w.epoch = epoch;
      w.since = now;
    } else if (o.hk_draining_.load(std::memory_order_acquire)) {
      w.since = now;  // a worker has it (perhaps stuck in a call): never a second one
    } else if (idle || now - w.since >= deadline) {
      o.hk_draining_.store(true, std::memory_order_relaxed);  // only this thread sets it
      dispatch(o);
      w.since = now;
    }
  } else {
    w.since = now;  // closing: the closer drains it; look again in a deadline, do not spin
  }
  next_due = std::min(next_due, w.since + deadline);
  return Verdict::kKeep;
}

void Housekeeper::run() noexcept {
  std::vector<Watched> work;
  std::vector<Owner*> forget;
  while (!stop_.load(std::memory_order_acquire)) {
    uint32_t seq = seq_.load(std::memory_order_seq_cst);
    run_deferred_raw();

    Clock::time_point now = Clock::now();
    {
      internal::MutexLock lock(mu_);
      take_inbox_locked(now);
      work = watched_;  // only this thread changes watched_; mu_ keeps it whole across fork
    }
    Clock::time_point next_due = Clock::time_point::max();
    std::vector<bool> keep(work.size());
    for (size_t i = 0; i < work.size(); ++i) {
      keep[i] = visit(work[i], now, next_due) == Verdict::kKeep;
      now = Clock::now();
    }
    bool idle;
    {
      internal::MutexLock lock(mu_);
      // watched_ may have grown only at its end (take_inbox_locked runs on this thread alone).
      size_t out = 0;
      for (size_t i = 0; i < watched_.size(); ++i) {
        if (i < work.size()) {
          if (!keep[i]) {
            forget.push_back(work[i].owner);
            continue;
          }
          watched_[out++] = work[i];
        } else {
          watched_[out++] = watched_[i];
        }
      }
      watched_.resize(out);
      idle = watched_.empty();
    }
    for (Owner* o : forget) o->unref();
    forget.clear();
    join_retired_workers();

    // Sleep. Dekker with kick(): we publish sleep_mode_ and then look for news; a kicker
    // publishes news and then looks at sleep_mode_ (and bumps seq_, which voids our wait).
    const auto deadline = runtime_.options().drain_deadline;
    sleep_mode_.store(idle ? kIndefinite : kTimed, std::memory_order_seq_cst);
    if (inbox_.load(std::memory_order_seq_cst) == nullptr &&
        raw_.load(std::memory_order_seq_cst) == nullptr && !stop_.load(std::memory_order_seq_cst)) {
      std::chrono::nanoseconds timeout(-1);
      if (!idle) {
        // Look again within half a deadline so that an owner first seen late still drains
        // within about 1.5 deadlines of its post.
        auto until_due = next_due - Clock::now();
        timeout = std::clamp<std::chrono::nanoseconds>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(until_due),
            std::chrono::nanoseconds(0), deadline / 2);
      }
      internal::futex_wait(seq_, seq, timeout);
    }
    sleep_mode_.store(kAwake, std::memory_order_seq_cst);
  }
}

void Housekeeper::reset_after_fork_child() {
  // The thread did not survive the fork. Drop everything it watched (survivors are watched anew
  // by Owner::after_fork_child) and let the next ensure_running() start a new thread.
  for (Owner* o = inbox_.exchange(nullptr); o;) {
    Owner* next = o->hk_next_;
    o->unref();
    o = next;
  }
  for (Watched& w : watched_) w.owner->unref();
  watched_.clear();
  // Raw calls the vanished thread had taken but not run: put them back, unless they were never
  // taken (still reachable from raw_). The call it was running is lost with it.
  PendingCall* left = raw_running_.exchange(nullptr, std::memory_order_relaxed);
  for (PendingCall* q = raw_.load(std::memory_order_relaxed); q && left; q = q->next_) {
    if (q == left) left = nullptr;
  }
  if (left) {
    PendingCall* tail = left;
    while (tail->next_) tail = tail->next_;
    tail->next_ = raw_.load(std::memory_order_relaxed);
    raw_.store(left, std::memory_order_relaxed);
  }
  sleep_mode_.store(kAwake, std::memory_order_relaxed);
  running_.store(false, std::memory_order_relaxed);
  joinable_ = false;
  // The workers did not survive either. Queued jobs are dropped (their owners are watched anew,
  // and Owner::after_fork_child cleared every hk_draining_); the reference a vanished worker
  // held on the owner it was draining is leaked with it (the record is never freed).
  for (Owner* o : jobs_) o->unref();
  jobs_.clear();
  retired_.clear();                     // threads of the parent: nothing to join
  workers_live_ = t_is_worker ? 1 : 0;  // the worker that forked, if it was one, runs on
  workers_idle_ = 0;
  workers_cv_ = new internal::CondVar();  // the old one is leaked (see its declaration)
  workers_mu_.unlock();
  mu_.unlock();
  start_mu_.unlock();
}

}  // namespace xinterp
