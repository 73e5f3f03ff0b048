#include "engine/sigint_watch.h"

#include <Python.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <thread>

#include "cpython/cpython_private.h"
#include "engine/fork_generation.h"
#include "engine/python_engine.h"
#include "engine/run_interrupt.h"

namespace xinterp::python {
namespace {

using Handler = void (*)(int);
using Action = void (*)(int, siginfo_t*, void*);

std::atomic<int64_t> g_target{-1};   // the interpreter the main thread runs, or -1
std::atomic<uint64_t> g_gen{0};      // which watched run (odd while one is under way)
std::atomic<uint64_t> g_hit_gen{0};  // the run the last signal arrived in
std::atomic<uint64_t> g_hits{0};
std::atomic<unsigned long> g_main_thread{0};  // the watched run's thread (PyThread ident)
// The handler ours replaced (CPython's), called after ours. One of the two is set.
std::atomic<Handler> g_prev_handler{nullptr};
std::atomic<Action> g_prev_action{nullptr};
sem_t g_wake;
std::atomic<bool> g_watcher_started{false};

void on_sigint(int sig, siginfo_t* info, void* ctx) {
  const int saved = errno;
  if (g_target.load(std::memory_order_acquire) >= 0) {
    g_hit_gen.store(g_gen.load(std::memory_order_acquire), std::memory_order_release);
    g_hits.fetch_add(1, std::memory_order_acq_rel);
    sem_post(&g_wake);
  }
  if (Action a = g_prev_action.load(std::memory_order_acquire)) {
    a(sig, info, ctx);
  } else if (Handler h = g_prev_handler.load(std::memory_order_acquire)) {
    h(sig);
  }
  errno = saved;
}

void watcher() {
  for (;;) {
    if (sem_wait(&g_wake) != 0) continue;  // EINTR
    const uint64_t gen = g_gen.load(std::memory_order_acquire);
    const int64_t id = g_target.load(std::memory_order_acquire);
    // The run the signal arrived in ended first (the next one must not get it), or is ending.
    if (id < 0 || gen != g_hit_gen.load(std::memory_order_acquire) ||
        gen != g_gen.load(std::memory_order_acquire)) {
      continue;
    }
    if (std::shared_ptr<InterpRecord> rec = PythonEngine::get().find(id)) {
      bool posted;
      (void)post_interrupt(rec, RunInterrupt::Kind::kKeyboardInterrupt, XValue(), &posted,
                           g_main_thread.load(std::memory_order_acquire));
    }
  }
}

void after_fork_child() {
  // The watcher did not survive the fork; the next watched run starts one.
  g_watcher_started.store(false, std::memory_order_relaxed);
  g_target.store(-1, std::memory_order_relaxed);
}

bool start_watcher() {
  if (g_watcher_started.load(std::memory_order_acquire)) return true;
  static const bool once = [] {
    (void)pthread_atfork(nullptr, nullptr, &after_fork_child);
    return true;
  }();
  (void)once;
  if (sem_init(&g_wake, 0, 0) != 0) return false;
  try {
    std::thread(watcher).detach();
  } catch (...) {
    return false;  // no thread: Ctrl-C waits for the call to end, as without xinterp
  }
  g_watcher_started.store(true, std::memory_order_release);
  return true;
}

// Ours in front of the current SIGINT handler; false if SIGINT is ignored or default.
bool ensure_installed() {
  struct sigaction cur;
  if (sigaction(SIGINT, nullptr, &cur) != 0) return false;
  if ((cur.sa_flags & SA_SIGINFO) != 0) {
    // Ours already (a fork child inherits it, but not the watcher thread).
    if (cur.sa_sigaction == &on_sigint) return start_watcher();
  } else if (cur.sa_handler == SIG_IGN || cur.sa_handler == SIG_DFL) {
    return false;
  }
  if (!start_watcher()) return false;
  if ((cur.sa_flags & SA_SIGINFO) != 0) {
    g_prev_handler.store(nullptr, std::memory_order_release);
    g_prev_action.store(cur.sa_sigaction, std::memory_order_release);
  } else {
    g_prev_action.store(nullptr, std::memory_order_release);
    g_prev_handler.store(cur.sa_handler, std::memory_order_release);
  }
  struct sigaction ours = cur;
  ours.sa_sigaction = &on_sigint;
  ours.sa_flags = cur.sa_flags | SA_SIGINFO;
  return sigaction(SIGINT, &ours, nullptr) == 0;
}

bool on_main_thread_of_main() {
  PyThreadState* ts = cpy::current_tstate();
  if (ts == nullptr || PyThreadState_GetInterpreter(ts) != PyInterpreterState_Main()) return false;
  // Cached per thread, again after a fork (the child's main thread is the one that forked).
  static thread_local uint64_t checked_in = ~uint64_t{0};
  static thread_local bool main_thread = false;
  if (checked_in != fork_generation()) {
    main_thread = syscall(SYS_gettid) == getpid();
    checked_in = fork_generation();
  }
  return main_thread;
}

}  // namespace

SigintWatch::SigintWatch(int64_t py_id) {
  if (!on_main_thread_of_main() || !ensure_installed()) return;
  active_ = true;
  hits_at_start_ = g_hits.load(std::memory_order_acquire);
  g_main_thread.store(PyThread_get_thread_ident(), std::memory_order_release);
  g_gen.fetch_add(1, std::memory_order_acq_rel);  // odd: watching
  g_target.store(py_id, std::memory_order_release);
}

SigintWatch::~SigintWatch() {
  if (!active_) return;
  g_target.store(-1, std::memory_order_release);
  g_gen.fetch_add(1, std::memory_order_acq_rel);  // even: between runs
}

bool SigintWatch::fired() const noexcept {
  return active_ && g_hits.load(std::memory_order_acquire) != hits_at_start_;
}

}  // namespace xinterp::python
