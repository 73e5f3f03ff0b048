#include "engine/python_engine.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "base/fail.h"
#include "cpython/cpython_private.h"
#include "engine/fork_generation.h"
#include "engine/run_interrupt.h"
#include "engine/sigint_watch.h"
#include "engine/thread_switch.h"
#include "engine/thread_visits.h"

namespace xinterp::python {
namespace {

std::string interp_name(int64_t id) { return "interpreter " + std::to_string(id); }

Status inherited_error(int64_t id) {
  return Status::error(ErrorKind::kInterpreter,
                       "interpreter " + std::to_string(id) +
                           " belongs to the parent process: it was inherited across fork() "
                           "and cannot be used in the child (create a new one)");
}

Status not_found(int64_t id) {
  return Status::error(ErrorKind::kNotFound, "unrecognized interpreter ID " + std::to_string(id));
}

// How long shutdown() lets an interpreter that is still running code (a daemon thread's call)
// react to its interrupt before leaving it open.
constexpr auto kShutdownGrace = std::chrono::seconds(2);
constexpr auto kFenceWait = std::chrono::milliseconds(200);
// How long shutdown() lets non-daemon threads of an interpreter end before abandoning it.
constexpr auto kThreadGrace = std::chrono::seconds(1);
// How long a close waits for CPython's _interpreters visitors, refused, to leave (they only
// need the interpreter's GIL for a moment).
constexpr auto kVisitorWait = std::chrono::seconds(5);
// How long shutdown() waits for create() and close() calls already under way.
constexpr auto kLifecycleWait = std::chrono::seconds(5);

// Takes interp's GIL on a new thread that keeps it for the rest of the process. Waits up to
// kFenceWait for it (a daemon thread that holds that GIL, running, gives it up within CPython's
// switch interval); returns either way: the thread is detached and never joined.
void fence(PyInterpreterState* interp) {
  std::promise<void> held;
  std::future<void> got = held.get_future();
  std::thread([interp, held = std::move(held)]() mutable {
    PyThreadState* ts = PyThreadState_New(interp);
    if (ts != nullptr) PyEval_RestoreThread(ts);
    held.set_value();  // with the GIL, or without a thread state (out of memory: not fenced)
    if (ts == nullptr) return;
    for (;;) pause();
  }).detach();
  (void)got.wait_for(kFenceWait);
}

}  // namespace

PythonEngine& PythonEngine::get() {
  // Leaked on purpose: daemon threads may still post or look up interpreters during exit.
  static PythonEngine* engine = new PythonEngine();
  return *engine;
}

PythonEngine::PythonEngine() : runtime_(std::make_unique<Runtime>(*this)) {
  // Registered after the core's handlers (the Runtime above): ours prepare first and run last
  // in the child, once the core has closed the owners of the interpreters the child loses.
  // Failure policy: without these handlers a fork child would inherit held locks and abort in
  // CPython's own after-fork cleanup; pthread_atfork fails only for lack of memory at start-up,
  // so that is fatal, with a message.
  const int rc = pthread_atfork(&PythonEngine::before_fork, &PythonEngine::after_fork_parent,
                                &PythonEngine::after_fork_child);
  XI_CHECK(rc == 0, "xinterp: pthread_atfork failed (%s): fork safety cannot be guaranteed",
           std::strerror(rc));
}

void PythonEngine::add_listener(EngineListener* listener) {
  internal::MutexLock lock(mu_);
  listeners_.push_back(listener);
}

std::vector<EngineListener*> PythonEngine::listeners() {
  internal::MutexLock lock(mu_);
  return listeners_;
}

void PythonEngine::notify_state_changed() noexcept {
  // Dekker with wait_state(): a waiter registers, then checks; we changed the state, then look
  // for waiters.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (state_waiters_.load(std::memory_order_relaxed) == 0) return;
  internal::MutexLock lock(state_mu_);
  state_cv_.notify_all();
}

template <class Done>
bool PythonEngine::wait_state(Done done, std::chrono::steady_clock::time_point deadline) {
  state_waiters_.fetch_add(1, std::memory_order_seq_cst);
  bool ok;
  {
    internal::MutexLock lock(state_mu_);
    while (!(ok = done()) && std::chrono::steady_clock::now() < deadline) {
      state_cv_.wait_until(state_mu_, deadline);
    }
  }
  state_waiters_.fetch_sub(1, std::memory_order_relaxed);
  return ok;
}

template <class Enter>
bool PythonEngine::close_owner(Owner& owner, Enter enter, std::chrono::nanoseconds use_timeout) {
  if (!owner.begin_close()) return false;
  CallerRelease release;  // the housekeeper may wait for our GIL to end its visit
  if (use_timeout == kNoTimeout) {
    owner.wait_until_unused();
  } else if (!owner.wait_until_unused(use_timeout)) {
    // At exit: a housekeeper worker is stuck in one of its calls. Abandoned with the process.
    const uint64_t abandoned = owner.abandon();
    calls_abandoned_at_exit_.fetch_add(abandoned, std::memory_order_relaxed);
    release.reattach();
    return true;
  }
  release.reattach();
  if (enter()) {
    owner.finish_close();  // runs everything queued, inside the interpreter; later posts run raw
  } else {
    owner.close_raw();  // queued calls run raw, never touching the interpreter
  }
  return true;
}

// Across fork() the engine's lock is held, then the leaf locks that a thread of the parent may
// hold for a moment (each record's borrow set, the queue and channel registries), so that the
// child finds them all free. Leaf locks: none is held while taking another lock.
void PythonEngine::before_fork() {
  PythonEngine& e = get();
  e.mu_.lock();
  for (auto& [id, rec] : e.by_id_) e.fork_locked_.push_back(rec);
  for (const auto& weak : e.retired_) {
    if (auto rec = weak.lock()) e.fork_locked_.push_back(std::move(rec));
  }
  for (const auto& rec : e.fork_locked_) rec->borrow_mu.lock();
  for (EngineListener* l : e.listeners_) l->before_fork();
}

void PythonEngine::after_fork_parent() {
  PythonEngine& e = get();
  for (auto it = e.listeners_.rbegin(); it != e.listeners_.rend(); ++it) (*it)->after_fork_parent();
  for (const auto& rec : e.fork_locked_) rec->borrow_mu.unlock();
  std::vector<std::shared_ptr<InterpRecord>> locked = std::move(e.fork_locked_);
  e.fork_locked_.clear();
  e.mu_.unlock();
  // `locked` may hold the last reference to a retired record: released here, unlocked.
}

// Fork (DESIGN.md, contract line 8): the child keeps the main interpreter only. Its copies of
// the parent's sub-interpreters are taken out of CPython's list before CPython's own after-fork
// cleanup (which aborts on them), and their records refuse any use with a clear error.
void PythonEngine::after_fork_child() {
  PythonEngine& e = get();
  cpy::unlink_subinterpreters_in_fork_child();
  for (auto& [id, rec] : e.by_id_) {
    if (rec->whence == Whence::kRuntime) continue;
    rec->inherited = true;
    rec->running.store(false, std::memory_order_relaxed);
    rec->visit_tstates.clear();  // threads of the parent: gone
    rec->ended_tstates.clear();
    rec->parked = nullptr;
    e.table_.erase(rec->interp);
  }
  e.lifecycle_ops_ = 0;
  // The parent's queues and channels: abandoned (objects/id_registry.h); new ones work.
  enter_fork_child();
  for (auto it = e.listeners_.rbegin(); it != e.listeners_.rend(); ++it) (*it)->after_fork_child();
  for (const auto& rec : e.fork_locked_) rec->borrow_mu.unlock();
  std::vector<std::shared_ptr<InterpRecord>> locked = std::move(e.fork_locked_);
  e.fork_locked_.clear();
  e.mu_.unlock();
}

std::shared_ptr<InterpRecord> PythonEngine::add_record(PyInterpreterState* interp, Whence whence,
                                                       bool created, Status* status,
                                                       PyThreadState* parked) {
  auto rec = std::make_shared<InterpRecord>();
  rec->interp = interp;
  rec->py_id = cpy::interpreter_id(interp);
  rec->whence = whence;
  rec->created_by_xinterp = created;
  rec->parked = parked;
  // One owning reference from the start, for the creator to adopt (the Python layer's first
  // Interpreter object, or the C++ Interpreter): no window in which another thread's drop of
  // the last reference could close it before its creator holds it.
  rec->refs = created ? 1 : 0;
  internal::MutexLock lock(mu_);
  if (created && shut_down_) {
    *status = Status::error(ErrorKind::kInterpreter, "xinterp is shut down");
    return nullptr;
  }
  auto it = by_id_.find(rec->py_id);
  if (it != by_id_.end()) return it->second;
  rec->owner = runtime_->create_owner(rec.get());
  if (!table_.insert(interp, rec->owner->id())) {
    rec->owner->begin_close();
    rec->owner->close_raw();
    *status =
        Status::error(ErrorKind::kInterpreter, "too many interpreters (xinterp tracks at most " +
                                                   std::to_string(InterpTable::kCapacity) + ")");
    return nullptr;
  }
  by_id_.emplace(rec->py_id, rec);
  return rec;
}

void PythonEngine::remove_record(const std::shared_ptr<InterpRecord>& rec) {
  internal::MutexLock lock(mu_);
  table_.erase(rec->interp);
  by_id_.erase(rec->py_id);
  std::erase_if(retired_, [](const std::weak_ptr<InterpRecord>& w) { return w.expired(); });
  retired_.push_back(rec);
}

std::shared_ptr<InterpRecord> PythonEngine::register_current(Status* status) {
  PyThreadState* ts = cpy::current_tstate();
  PyInterpreterState* interp = PyThreadState_GetInterpreter(ts);
  if (auto rec = find(interp)) return rec;
  {
    internal::MutexLock lock(mu_);
    if (ending_.count(interp) != 0) {
      // Decision: an interpreter being ended lends nothing more (its memory goes with it) and
      // is not registered again as a foreign one (list_all would show it after close()).
      refused_while_closing_.fetch_add(1, std::memory_order_relaxed);
      *status = Status::error(
          ErrorKind::kInterpreter,
          interp_name(cpy::interpreter_id(interp)) +
              " is closing: it cannot lend buffers or use xinterp from its exit handlers");
      return nullptr;
    }
  }
  Whence whence = Whence::kUnknown;
  if (interp == PyInterpreterState_Main()) {
    whence = Whence::kRuntime;
  } else if (long w = cpy::whence(interp); w >= 0 && w <= static_cast<long>(Whence::kStdlib)) {
    whence = static_cast<Whence>(w);
  }
  return add_record(interp, whence, /*created=*/false, status);
}

// Known debt: an interpreter xinterp did not create is unregistered only here, from its xinterp
// module's m_free. If that module object outlived the interpreter's end (leaked in a cycle that
// finalization did not break), its record and core owner would point at a freed interpreter.
void PythonEngine::forget_current() noexcept {
  PyInterpreterState* interp = PyThreadState_GetInterpreter(cpy::current_tstate());
  std::shared_ptr<InterpRecord> rec = find(interp);
  if (rec == nullptr || rec->created_by_xinterp) return;  // ours are closed by close()
  {
    internal::MutexLock lock(mu_);
    if (rec->closing) return;
    rec->closing = true;  // out of list_all() from now on
  }
  // Its buffers other interpreters still view are waited for as close() waits for ours; but
  // CPython ends it regardless (_interpreters.destroy() cannot be refused from here), so those
  // still held after the wait are given up: their releases run raw, never touching the dead
  // interpreter, and a view still held sees memory its exporter no longer guards. Counted.
  std::string held;
  if (wait_for_borrows(*rec, kDefaultBorrowTimeout, &held) != BorrowWait::kClear) {
    foreign_ended_with_borrows_.fetch_add(1, std::memory_order_relaxed);
  }
  // Its lent buffers still queued follow their unbound policy, as for ours.
  for (EngineListener* l : listeners()) l->interpreter_closing(rec->py_id);
  (void)close_owner(*rec->owner, [] { return true; });  // we are attached to it
  remove_record(rec);
}

std::shared_ptr<InterpRecord> PythonEngine::find(int64_t py_id) const {
  internal::MutexLock lock(mu_);
  auto it = by_id_.find(py_id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::shared_ptr<InterpRecord> PythonEngine::find(PyInterpreterState* interp) const {
  if (interp == nullptr) return nullptr;
  return find(cpy::interpreter_id(interp));
}

std::vector<std::shared_ptr<InterpRecord>> PythonEngine::all() const {
  internal::MutexLock lock(mu_);
  std::vector<std::shared_ptr<InterpRecord>> out;
  out.reserve(by_id_.size());
  for (const auto& [id, rec] : by_id_) {
    if (!rec->closing) out.push_back(rec);
  }
  return out;
}

bool PythonEngine::current_is_ending() const {
  PyThreadState* ts = cpy::current_tstate();
  if (ts == nullptr) return false;
  internal::MutexLock lock(mu_);
  return ending_.count(PyThreadState_GetInterpreter(ts)) != 0;
}

bool PythonEngine::is_shut_down() const {
  internal::MutexLock lock(mu_);
  return shut_down_;
}

bool PythonEngine::begin_lifecycle_op() {
  internal::MutexLock lock(mu_);
  if (shut_down_) return false;
  ++lifecycle_ops_;
  return true;
}

void PythonEngine::end_lifecycle_op() {
  {
    internal::MutexLock lock(mu_);
    --lifecycle_ops_;
    XI_CHECK(lifecycle_ops_ >= 0, "xinterp: unbalanced interpreter lifecycle operations");
  }
  lifecycle_cv_.notify_all();
}

Status PythonEngine::create(int64_t* py_id) {
  if (cpy::runtime_finalizing() || !begin_lifecycle_op()) {
    return Status::error(ErrorKind::kInterpreter, "xinterp is shut down");
  }
  PyInterpreterConfig config = {};
  config.use_main_obmalloc = 0;
  config.allow_fork = 0;
  config.allow_exec = 0;
  config.allow_threads = 1;
  config.allow_daemon_threads = 0;
  config.check_multi_interp_extensions = 1;
  config.gil = PyInterpreterConfig_OWN_GIL;

  CallerRelease caller;
  PyThreadState* tstate = nullptr;
  PyStatus st = Py_NewInterpreterFromConfig(&tstate, &config);
  if (PyStatus_Exception(st) || tstate == nullptr) {
    end_lifecycle_op();
    caller.reattach();
    return Status::error(ErrorKind::kInterpreter, std::string("interpreter creation failed: ") +
                                                      (st.err_msg ? st.err_msg : "unknown error"));
  }
  // Ours are marked running __main__ on their parked thread state for their whole life, so that
  // CPython's _interpreters refuses to destroy them or run code in them (it would abort on the
  // parked thread state, or race our close); cleared just before Py_EndInterpreter.
  (void)cpy::mark_running_main();  // a new interpreter is never marked yet
  // And ours hold an id reference of CPython's, so that _interpreters.decref() never ends them.
  (void)cpy::hold_id_ref();  // out of memory: only that module's incref/decref stay a hazard
  // Detach first, keeping the creation thread state parked: the record becomes visible (to
  // list_all, close, the housekeeper) only once nothing runs with that thread state.
  PyInterpreterState* interp = PyThreadState_GetInterpreter(tstate);
  PyEval_SaveThread();
  Status status;
  std::shared_ptr<InterpRecord> rec = add_record(interp, Whence::kStdlib, true, &status, tstate);
  if (rec == nullptr) {  // shut down meanwhile, or too many interpreters
    PyEval_RestoreThread(tstate);
    cpy::clear_running_main();
    Py_EndInterpreter(tstate);
    end_lifecycle_op();
    caller.reattach();
    return status;
  }
  // Done before re-taking the caller's GIL: at exit CPython may end this (daemon) thread there.
  end_lifecycle_op();
  caller.reattach();
  *py_id = rec->py_id;
  return Status();
}

PythonEngine::BorrowWait PythonEngine::wait_for_borrows(InterpRecord& rec,
                                                        std::chrono::nanoseconds timeout,
                                                        std::string* held, bool from_close) {
  // Borrows with holder -1 sit in queues (the unbound policy settles them) or are in transit.
  auto held_by_others = [&](std::string* describe) {
    std::map<int64_t, int> by_holder;
    internal::MutexLock lock(rec.borrow_mu);
    for (const LentBuffer* b : rec.borrowed) {
      const int64_t holder = b->holder.load(std::memory_order_relaxed);
      if (holder >= 0) ++by_holder[holder];
    }
    if (describe != nullptr && !by_holder.empty()) {
      int total = 0;
      std::string ids;
      for (const auto& [holder, n] : by_holder) {
        total += n;
        ids += (ids.empty() ? "" : ", ") + std::to_string(holder);
      }
      *describe = std::to_string(total) + (total == 1 ? " buffer" : " buffers") +
                  " of interpreter " + std::to_string(rec.py_id) +
                  " still borrowed by interpreter" + (by_holder.size() == 1 ? " " : "s ") + ids;
    }
    return !by_holder.empty();
  };
  if (!held_by_others(nullptr)) return BorrowWait::kClear;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto stop = [&] { return from_close && shutting_down_.load(std::memory_order_acquire); };
  // Borrowers may need our GIL to drop their views: it is released while we wait.
  PyThreadState* caller = cpy::current_tstate();
  // Decision: a caller with a thread state re-takes its GIL every kSignalCheckInterval to run
  // signal handlers (PyErr_CheckSignals does so on the main thread of the main interpreter
  // only, and is a no-op elsewhere), so that Ctrl-C interrupts a long close(timeout=...).
  const bool check_signals = from_close && caller != nullptr;
  for (;;) {
    if (caller != nullptr) PyEval_SaveThread();
    auto until = deadline;
    if (check_signals)
      until = std::min(until, std::chrono::steady_clock::now() + kSignalCheckInterval);
    // Woken by every release (BufferBorrow::release -> borrow_returned()) and by shutdown().
    (void)wait_state([&] { return !held_by_others(nullptr) || stop(); }, until);
    if (caller != nullptr) PyEval_RestoreThread(caller);  // may end a daemon thread at exit
    if (!held_by_others(nullptr)) return BorrowWait::kClear;
    if (stop()) return BorrowWait::kShutdown;
    if (check_signals && PyErr_CheckSignals() < 0) return BorrowWait::kSignal;
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  held_by_others(held);
  return BorrowWait::kHeld;
}

std::vector<std::string> PythonEngine::wait_for_threads(
    InterpRecord& rec, std::chrono::steady_clock::time_point deadline, bool from_close) {
  // Joins in slices, re-entering each time, so that a close() gives up once shutdown() began.
  constexpr auto kSlice = std::chrono::milliseconds(50);
  std::vector<std::string> alive;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    const double slice = std::chrono::duration<double>(
                             std::clamp<std::chrono::steady_clock::duration>(
                                 deadline - now, std::chrono::steady_clock::duration(0), kSlice))
                             .count();
    alive.clear();
    EnterInterpreter visit;
    if (!visit.enter(rec.interp)) {
      visit.reattach_caller();
      return alive;  // out of memory: not checked
    }
    // threading is per interpreter; its main thread (whichever visit imported it) and daemon
    // threads are not waited for by Py_EndInterpreter. As CPython's threading._shutdown() (run
    // by Py_EndInterpreter) does, the callbacks of threading._register_atexit run first, once,
    // newest first: they are how a thread is told to end (concurrent.futures' workers among
    // them). They run on a thread of their own ('threading atexit callbacks', non-daemon, as
    // daemon threads are not allowed in isolated interpreters), which is waited for with the
    // others, so that a callback that blocks (an executor's task that never ends) delays the
    // close only up to its deadline. An exception in one is printed and the others still run.
    // If the close is then refused (a thread still runs), they have run: threading is shutting
    // down in that interpreter, so registering another one raises RuntimeError there, as after
    // CPython's.
    char code[2048];
    std::snprintf(code, sizeof code,
                  "import sys, time\n"
                  "t = sys.modules.get('threading')\n"
                  "alive = []\n"
                  "if t is not None:\n"
                  "    cbs = getattr(t, '_threading_atexits', None)\n"
                  "    if cbs:\n"
                  "        t._SHUTTING_DOWN = True\n"
                  "        run = cbs[::-1]\n"
                  "        cbs.clear()\n"
                  "        def run_threading_atexits():\n"
                  "            for f in run:\n"
                  "                try:\n"
                  "                    f()\n"
                  "                except BaseException:\n"
                  "                    import traceback\n"
                  "                    print('Exception ignored in a threading atexit callback:',\n"
                  "                          file=sys.stderr)\n"
                  "                    traceback.print_exc()\n"
                  "        try:\n"
                  "            t.Thread(target=run_threading_atexits,\n"
                  "                     name='threading atexit callbacks').start()\n"
                  "        except RuntimeError:\n"
                  "            run_threading_atexits()  # no thread can start: here, unbounded\n"
                  "    ts = [x for x in t.enumerate()\n"
                  "          if not x.daemon and not isinstance(x, t._MainThread)]\n"
                  "    end = time.monotonic() + %f\n"
                  "    for x in ts:\n"
                  "        x.join(max(0.0, end - time.monotonic()))\n"
                  "    alive = [x.name for x in ts if x.is_alive()]\n",
                  slice);
    if (PyObject* ns = PyDict_New()) {
      if (PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0) {
        PyObject* r = PyRun_String(code, Py_file_input, ns, ns);
        Py_XDECREF(r);
        PyObject* names = r != nullptr ? PyDict_GetItemString(ns, "alive") : nullptr;
        if (names != nullptr && PyList_Check(names)) {
          for (Py_ssize_t k = 0; k < PyList_GET_SIZE(names); ++k) {
            const char* n = PyUnicode_AsUTF8(PyList_GET_ITEM(names, k));
            alive.emplace_back(n != nullptr ? n : "?");
          }
        }
      }
      Py_DECREF(ns);
    }
    PyErr_Clear();  // a failure to look is taken as nothing to wait for
    visit.leave();
    if (alive.empty() || std::chrono::steady_clock::now() >= deadline) return alive;
    if (from_close && shutting_down_.load(std::memory_order_acquire)) return alive;
  }
}

Status PythonEngine::close(int64_t py_id, std::chrono::nanoseconds borrow_timeout) {
  std::shared_ptr<InterpRecord> rec = find(py_id);
  if (rec == nullptr) return not_found(py_id);
  PyThreadState* ts = cpy::current_tstate();
  if (ts != nullptr && PyThreadState_GetInterpreter(ts) == rec->interp) {
    return Status::error(ErrorKind::kInterpreter, "cannot close the current interpreter");
  }
  if (rec->whence == Whence::kRuntime) {
    return Status::error(ErrorKind::kInterpreter, "cannot close the main interpreter");
  }
  if (!rec->created_by_xinterp) {
    return Status::error(ErrorKind::kInterpreter,
                         interp_name(py_id) + " was not created by xinterp; it cannot close it");
  }
  {
    internal::MutexLock lock(mu_);
    if (rec->closing) return not_found(py_id);
    if (rec->inherited) {
      // The parent owns it; the child just forgets its copy (never ends it).
      rec->closing = true;
      by_id_.erase(rec->py_id);
      return Status();
    }
    if (rec->running.load(std::memory_order_acquire)) {
      return Status::error(ErrorKind::kInterpreter, "interpreter running");
    }
    // Decision: marking it closing and joining the lifecycle operations happen together, under
    // mu_. shutdown() skips records already closing, so a close that marked one and then found
    // shutdown begun would leave it to nobody (CPython then aborts at finalization). After
    // shutdown() began, close() leaves the interpreter to it and returns.
    if (shut_down_) return Status();
    rec->closing = true;
    ++lifecycle_ops_;
  }
  const auto deadline = std::chrono::steady_clock::now() + borrow_timeout;
  std::string held;
  Status refused;
  bool left_to_shutdown = false;
  switch (wait_for_borrows(*rec, borrow_timeout, &held, /*from_close=*/true)) {
    case BorrowWait::kClear:
      if (std::vector<std::string> threads = wait_for_threads(*rec, deadline, true);
          threads.empty()) {
        break;
      } else if (shutting_down_.load(std::memory_order_acquire)) {
        left_to_shutdown = true;
      } else {
        std::string names;
        for (const std::string& n : threads) names += (names.empty() ? "'" : ", '") + n + "'";
        refused = Status::error(ErrorKind::kInterpreter,
                                "cannot close " + interp_name(py_id) + ": its non-daemon thread" +
                                    (threads.size() == 1 ? " " : "s ") + names +
                                    " still running (CPython would wait for it forever)");
      }
      break;
    case BorrowWait::kHeld:
      refused = Status::error(ErrorKind::kInterpreter,
                              "cannot close " + interp_name(py_id) + ": " + held);
      break;
    case BorrowWait::kSignal:
      refused = Status::error(ErrorKind::kPythonSet, "");  // KeyboardInterrupt or the like
      break;
    case BorrowWait::kShutdown:
      left_to_shutdown = true;
      break;
  }
  if (!refused.ok() || left_to_shutdown) {
    {
      internal::MutexLock lock(mu_);
      rec->closing = false;  // intact: closable once the borrows are back, or by shutdown()
    }
    end_lifecycle_op();
    return refused;
  }
  return close_locked_out(rec, /*lifecycle_op=*/true);
}

// Closes an interpreter already marked closing (so no run can start in it).
Status PythonEngine::close_locked_out(const std::shared_ptr<InterpRecord>& rec, bool lifecycle_op) {
  // Its buffers still in queues follow their unbound policy; their releases are posted to it
  // and run by finish_close() below, inside it.
  for (EngineListener* l : listeners()) l->interpreter_closing(rec->py_id);
  rec->lending_closed.store(true, std::memory_order_release);
  CallerRelease caller;  // the caller's GIL is released from here on
  const bool closed = close_owner(*rec->owner, [&] {
    PyEval_RestoreThread(rec->parked);
    return true;
  });
  // Failure policy: `closing` admits one closer per record, and only a closer closes the owner;
  // a second close would end the interpreter without being attached to it.
  XI_CHECK(closed, "xinterp: interpreter %lld closed twice", static_cast<long long>(rec->py_id));
  {
    internal::MutexLock lock(mu_);
    ending_.insert(rec->interp);
  }
  remove_record(rec);
  // Py_EndInterpreter wants our thread state to be its last one.
  std::unordered_map<uint64_t, PyThreadState*> kept;
  {
    internal::MutexLock lock(mu_);
    kept.swap(rec->visit_tstates);
  }
  for (const auto& [thread, ts] : kept) {
    PyThreadState_Clear(ts);
    PyThreadState_Delete(ts);
  }
  delete_ended_tstates(*rec);
#if PY_VERSION_HEX < 0x030D0000
  // 3.12's threading._shutdown() (run by Py_EndInterpreter) asserts that the interpreter's
  // "main thread" — whichever thread state imported threading, one of the visits deleted
  // above — still holds its lock, and prints an ignored AssertionError otherwise. Re-bind it to
  // the closing thread state.
  if (PyObject* ns = PyDict_New()) {
    if (PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0) {
      PyObject* r = PyRun_String(
          "import sys\n"
          "t = sys.modules.get('threading')\n"
          "if t is not None and not t._main_thread._tstate_lock.locked():\n"
          "    t._main_thread = t._MainThread()\n",
          Py_file_input, ns, ns);
      Py_XDECREF(r);
    }
    Py_DECREF(ns);
  }
  PyErr_Clear();
#endif
  // CPython's _interpreters must no longer find it, and the visitors it already sent in (3.13:
  // a thread state in it, refused once they hold its GIL) must be gone: Py_EndInterpreter
  // aborts if any thread state but ours is left. Waited for without our GIL, which they need.
  // Not covered: a call that looked the id up just before it was retired and has not yet made
  // its thread state (README).
  {
    PyThreadState* parked = PyEval_SaveThread();
    cpy::retire_interpreter_id(rec->interp);
    const auto deadline = std::chrono::steady_clock::now() + kVisitorWait;
    while (cpy::count_visitors(rec->interp, parked) > 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    PyEval_RestoreThread(parked);
  }
  cpy::clear_running_main();  // CPython's thread state clearing asserts it is unmarked
  Py_EndInterpreter(rec->parked);
  rec->parked = nullptr;
  {
    internal::MutexLock lock(mu_);
    ending_.erase(rec->interp);
  }
  // Before re-taking the caller's GIL: at exit CPython may end this (daemon) thread there.
  if (lifecycle_op) end_lifecycle_op();
  caller.reattach();
  return Status();
}

void PythonEngine::thread_ended(InterpRecord& rec, uint64_t thread) {
  internal::MutexLock lock(mu_);
  auto it = rec.visit_tstates.find(thread);
  if (it == rec.visit_tstates.end()) return;
  rec.ended_tstates.push_back(it->second);
  rec.visit_tstates.erase(it);
}

void PythonEngine::delete_ended_tstates(InterpRecord& rec) {
  std::vector<PyThreadState*> ended;
  {
    internal::MutexLock lock(mu_);
    ended.swap(rec.ended_tstates);
  }
  for (PyThreadState* ts : ended) {
    PyThreadState_Clear(ts);
    PyThreadState_Delete(ts);
  }
}

Status PythonEngine::run(int64_t py_id, const std::function<Status()>& fn) {
  std::shared_ptr<InterpRecord> rec = find(py_id);
  if (rec == nullptr) return not_found(py_id);
  if (!rec->created_by_xinterp) {
    return Status::error(
        ErrorKind::kInterpreter,
        interp_name(py_id) + " was not created by xinterp; it cannot run code in it");
  }
  // A nested call from a run whose interrupt is pending: that interrupt is raised instead.
  if (interrupt_pending_here() && take_interrupt_here()) {
    return Status::error(ErrorKind::kPythonSet, "");
  }
  {
    internal::MutexLock lock(mu_);
    if (shut_down_) {
      // Decision: a call that a daemon thread starts once the exit began ends as quietly as one
      // the exit interrupted (SystemExit, which threading ignores). Counted with those.
      count_interrupted_at_exit();
      return Status::error(ErrorKind::kExiting,
                           "xinterp: the process is exiting (xinterp is shut down)");
    }
    if (rec->inherited) return inherited_error(py_id);
    if (rec->closing) return not_found(py_id);
    if (rec->running.load(std::memory_order_relaxed)) {
      return Status::error(ErrorKind::kInterpreter, "interpreter already running");
    }
    rec->running.store(true, std::memory_order_release);
  }
  // interrupt() reaches this run from here on (as soon as it is marked running, so that an
  // interrupt or the exit never finds it idle while it starts).
  std::optional<RunScope> scope(std::in_place, rec);
  if (shutting_down_.load(std::memory_order_acquire)) {
    // shutdown() began after our check above: its exit interrupt may have missed this run.
    bool posted;
    (void)post_interrupt(rec, RunInterrupt::Kind::kExit, XValue(), &posted);
  }
  SigintWatch sigint(py_id);  // Ctrl-C on the main thread interrupts this run
  EnterInterpreter visit;     // the caller's GIL is released from here on
  ThreadVisits& visits = ThreadVisits::current();
  const uint64_t thread = visits.key();
  const bool keep_tstate = visit.caller_had_tstate();
  PyThreadState* kept = nullptr;
  if (keep_tstate) {
    internal::MutexLock lock(mu_);
    auto it = rec->visit_tstates.find(thread);
    if (it != rec->visit_tstates.end()) {
      kept = it->second;
      rec->visit_tstates.erase(it);
    }
  }
  Status status;
  bool entered = true;
  bool exit_interrupted = false;
  if (kept != nullptr) {
    visit.enter_with(kept);
  } else {
    entered = visit.enter(rec->interp);
  }
  if (entered) {
    delete_ended_tstates(*rec);  // those of threads that ended since the last visit
    status = fn();
    // An interrupt that landed inside an import leaves submodules whose package is gone.
    if (interrupt_taken_here()) forget_orphan_modules();
    // A safe point on the way out: whatever was posted while we ran goes now.
    if (rec->owner->has_pending()) rec->owner->drain(DrainBy::kOwner);
    scope->end();
    exit_interrupted = scope->had_exit_interrupt();
  } else {
    status = Status::error(ErrorKind::kInterpreter, "out of memory entering the interpreter");
  }
  scope.reset();  // waits for posts still queueing into the interpreter
  // `running` is cleared only once our thread state is back in visit_tstates (or deleted), so
  // a closer never misses it; and before the caller's GIL is re-taken, since a daemon thread may
  // end inside that at exit.
  if (keep_tstate && entered) {
    PyThreadState* ts = visit.detach_keep();
    internal::MutexLock lock(mu_);
    rec->visit_tstates[thread] = ts;
    rec->running.store(false, std::memory_order_release);
    visits.keeps_in(rec);
  } else {
    visit.detach_delete();
    rec->running.store(false, std::memory_order_release);
  }
  // Ended by shutdown()'s interrupt (whatever failed: it may land while the call's arguments
  // are being rebuilt): the caller (a daemon thread) gets SystemExit, which threading ignores,
  // so the exit stays quiet. Counted before the caller's GIL is re-taken, which a daemon
  // thread may never get back at exit.
  exit_interrupted = exit_interrupted && !status.ok();
  if (exit_interrupted) count_interrupted_at_exit();
  notify_state_changed();  // shutdown() may wait for runs to end
  visit.reattach_caller();
  if (exit_interrupted) {
    return Status::error(ErrorKind::kExiting, "xinterp: the process is exiting");
  }
  // Back in a run of the caller's interpreter that was interrupted meanwhile (its interrupt
  // was forwarded to this nested one): the caller's interrupt is raised, not this outcome.
  if (interrupt_pending_here() && take_interrupt_here()) {
    return Status::error(ErrorKind::kPythonSet, "");
  }
  // Ctrl-C arrived during the run: the main interpreter's signal handler runs now (it raises
  // KeyboardInterrupt by default) in place of the run's outcome.
  if (sigint.fired() && PyErr_CheckSignals() < 0) return Status::error(ErrorKind::kPythonSet, "");
  return status;
}

Status PythonEngine::incref(int64_t py_id) {
  std::shared_ptr<InterpRecord> rec = find(py_id);
  if (rec == nullptr) return not_found(py_id);
  internal::MutexLock lock(mu_);
  if (rec->closing) return not_found(py_id);
  ++rec->refs;
  return Status();
}

void PythonEngine::decref(int64_t py_id) {
  std::shared_ptr<InterpRecord> rec = find(py_id);
  if (rec == nullptr) return;
  {
    internal::MutexLock lock(mu_);
    if (rec->refs > 0) --rec->refs;
    if (rec->refs > 0 || shut_down_ || rec->closing || !rec->created_by_xinterp) return;
    if (rec->running.load(std::memory_order_acquire)) return;  // stays until close() or exit
  }
  // Not while the caller's own interpreter is being closed: nested closes happen at exit.
  if (auto current = find(PyThreadState_GetInterpreter(cpy::current_tstate()))) {
    internal::MutexLock lock(mu_);
    if (current->closing) return;
  }
  (void)close(py_id);  // a racing close or run simply wins
}

void PythonEngine::shutdown() {
  std::vector<std::shared_ptr<InterpRecord>> ours;
  {
    internal::MutexLock lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
    shutting_down_.store(true, std::memory_order_release);
    for (const auto& [id, rec] : by_id_) {
      if (rec->created_by_xinterp && !rec->inherited) ours.push_back(rec);
    }
  }
  // create() and close() calls already under way finish first (new ones are refused now);
  // those waiting for borrows or threads give up and leave their interpreter to us.
  notify_state_changed();
  {
    CallerRelease release;
    const auto deadline = std::chrono::steady_clock::now() + kLifecycleWait;
    {
      internal::MutexLock lock(mu_);
      while (lifecycle_ops_ != 0 && lifecycle_cv_.wait_until(mu_, deadline)) {
      }
    }
    release.reattach();
  }
  // Interrupt code still running in ours (daemon threads' calls): the exit interrupt raises
  // SystemExit into it (run_interrupt.h: its waits wake, its nested calls are interrupted), and
  // the call returns SystemExit to its thread, which threading ignores. Failure policy:
  // if CPython's pending-call queue is full the interrupt is not queued (counted in
  // exit_interrupts_refused); such an interpreter gets the same grace period and, still running
  // after it, is stranded like one blocked in C.
  // A housekeeper thread draining one of ours (running its __del__ or __release_buffer__) is
  // waited for the same grace period, not interrupted; one still inside after it (a call that
  // never returns) strands the interpreter like a blocked daemon thread, and its owner is
  // abandoned (calls_abandoned_at_exit).
  auto busy = [](const std::shared_ptr<InterpRecord>& rec) {
    return rec->running.load(std::memory_order_acquire) ||
           rec->hk_visits.load(std::memory_order_acquire) > 0;
  };
  bool any_running = false;
  for (const auto& rec : ours) {
    if (rec->hk_visits.load(std::memory_order_acquire) > 0) any_running = true;
    if (rec->running.load(std::memory_order_acquire)) {
      any_running = true;
      // The same delivery as interrupt() (run_interrupt.h): its waits wake, its nested calls
      // are interrupted too, and the call ends with SystemExit in its (daemon) thread.
      bool posted;
      if (!post_interrupt(rec, RunInterrupt::Kind::kExit, XValue(), &posted).ok()) {
        exit_interrupts_refused_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  // Other threads blocked in Queue.get/put or a channel's send/recv wake with an error. After
  // the interrupts: a run's exit interrupt is posted by then, so that its call ends quietly
  // whichever exception ends it.
  for (EngineListener* l : listeners()) l->shutdown();
  if (any_running) {
    CallerRelease release;  // let the interrupted threads get back to their interpreter
    // Woken as each run ends (run() -> notify_state_changed()).
    (void)wait_state([&] { return std::none_of(ours.begin(), ours.end(), busy); },
                     std::chrono::steady_clock::now() + kShutdownGrace);
    release.reattach();
  }
  // Close borrowers before lenders: an interpreter whose buffers others still hold waits until
  // those have closed (their views are released as they end). Interpreters still running code
  // stay open (stranded_at_exit).
  std::vector<std::shared_ptr<InterpRecord>> pending;
  for (const auto& rec : ours) {
    internal::MutexLock lock(mu_);
    if (rec->closing) continue;
    if (busy(rec)) {
      ++stranded_at_exit_;
      rec->closing = true;
      rec->stranded = true;
      continue;  // fenced, unlinked and its owner closed raw below
    }
    rec->closing = true;
    pending.push_back(rec);
  }
  // Non-daemon threads still alive in one (CPython's Py_EndInterpreter would join them forever):
  // given a moment to end together, then their interpreter is stranded like a running one, its
  // threads abandoned with the process. Counted.
  const auto threads_deadline = std::chrono::steady_clock::now() + kThreadGrace;
  for (auto it = pending.begin(); it != pending.end();) {
    std::vector<std::string> alive = wait_for_threads(**it, threads_deadline, false);
    if (alive.empty()) {
      ++it;
      continue;
    }
    internal::MutexLock lock(mu_);
    ++stranded_at_exit_;
    threads_abandoned_at_exit_ += alive.size();
    (*it)->stranded = true;
    it = pending.erase(it);
  }
  bool progress = true;
  while (!pending.empty() && progress) {
    progress = false;
    for (auto it = pending.begin(); it != pending.end();) {
      std::string held;
      if (wait_for_borrows(**it, std::chrono::milliseconds(50), &held) == BorrowWait::kClear) {
        (void)close_locked_out(*it);
        it = pending.erase(it);
        progress = true;
      } else {
        ++it;
      }
    }
  }
  // Lenders whose buffers are still viewed by something that is not closing (the main
  // interpreter, or a borrower that runs on): closed anyway, as CPython's own finalization would
  // end them next. Their outstanding releases then run raw, never touching the dead interpreter;
  // a view still held sees freed memory only if read during finalization. Counted.
  for (const auto& rec : pending) {
    {
      internal::MutexLock lock(mu_);
      ++closed_with_borrows_at_exit_;
    }
    (void)close_locked_out(rec);
  }
  // Stranded ones (a daemon thread inside, blocked in C out of SystemExit's reach) cannot be
  // ended. Each is fenced: a thread of ours takes its GIL and keeps it, so that the daemon
  // thread, when its C call returns, waits for that GIL forever instead of running Python code
  // beside CPython's finalization. Then it leaves CPython's list of interpreters, whose
  // finalization would abort on it (cpython_interp_list.c), and is abandoned with the process,
  // like the daemon thread. Its core owner closes raw, so later releases never touch it.
  for (const auto& rec : ours) {
    if (!rec->stranded) continue;  // set under mu_ above, by this thread
    fence(rec->interp);
    CallerRelease release;  // the list's lock is taken without our GIL (see cpython_private.h)
    (void)cpy::unlink_interpreter(rec->interp);
    release.reattach();
  }
  for (const auto& rec : ours) {
    // Raw; a no-op for closed ones. A stuck housekeeper worker already had its grace period.
    (void)close_owner(
        *rec->owner, [] { return false; }, kFenceWait);
  }
  // The main interpreter's owner closes last, while the runtime can still run code: after this,
  // calls posted to it run raw and the housekeeper never waits for the main GIL again (which
  // CPython would answer by ending the thread once finalization starts).
  if (std::shared_ptr<InterpRecord> main = find(PyInterpreterState_Main())) {
    (void)close_owner(
        *main->owner,
        [&] {
          PyThreadState* ts = cpy::current_tstate();
          return ts != nullptr && PyThreadState_GetInterpreter(ts) == main->interp;
        },
        kShutdownGrace);
  }
}

uint64_t PythonEngine::stranded_at_exit() const {
  internal::MutexLock lock(mu_);
  return stranded_at_exit_;
}

uint64_t PythonEngine::threads_abandoned_at_exit() const {
  internal::MutexLock lock(mu_);
  return threads_abandoned_at_exit_;
}

uint64_t PythonEngine::closed_with_borrows_at_exit() const {
  internal::MutexLock lock(mu_);
  return closed_with_borrows_at_exit_;
}

// --- Engine ---------------------------------------------------------------------------------

int PythonEngine::on_cpython_pending(void* arg) {
  // Runs inside the owner's interpreter, at its eval-breaker safe point, GIL held. `arg` is the
  // core owner id, never a pointer: the owner may have closed since.
  const OwnerId id = static_cast<OwnerId>(reinterpret_cast<uintptr_t>(arg));
  OwnerRef owner = get().runtime().find(id);
  if (!owner) return 0;
  auto* rec = static_cast<InterpRecord*>(owner->engine_data());
  rec->cpython_calls_run.fetch_add(1, std::memory_order_relaxed);
  rec->wake_armed.store(false, std::memory_order_release);
  owner->drain(DrainBy::kOwner);
  return 0;  // never raise into whatever code the owner was running
}

void PythonEngine::wake(Owner& owner) noexcept {
  auto* rec = static_cast<InterpRecord*>(owner.engine_data());
  if (rec->wake_armed.exchange(true, std::memory_order_acq_rel)) {
    // Our one CPython slot is still queued; it drains everything when it runs, and the
    // housekeeper's deadline covers it if CPython never runs it.
    rec->wakes_coalesced.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  void* arg = reinterpret_cast<void*>(static_cast<uintptr_t>(owner.id()));
  rec->cpython_calls_added.fetch_add(1, std::memory_order_relaxed);
  if (!cpy::add_pending_call(rec->interp, &PythonEngine::on_cpython_pending, arg)) {
    rec->cpython_calls_added.fetch_sub(1, std::memory_order_relaxed);
    rec->wake_armed.store(false, std::memory_order_release);
    rec->wakes_refused.fetch_add(1, std::memory_order_relaxed);
  }
}

namespace {
thread_local PyThreadState* t_housekeeper_tstate = nullptr;
}  // namespace

bool PythonEngine::attach(Owner& owner) noexcept {
  auto* rec = static_cast<InterpRecord*>(owner.engine_data());
  // Once the runtime finalizes, CPython ends any other thread that waits for a GIL.
  if (cpy::runtime_finalizing()) return false;
  PyThreadState* ts = PyThreadState_New(rec->interp);
  if (ts == nullptr) return false;
  rec->hk_visits.fetch_add(1, std::memory_order_seq_cst);
  PyEval_RestoreThread(ts);
  t_housekeeper_tstate = ts;
  return true;
}

void PythonEngine::detach(Owner& owner) noexcept {
  if (t_housekeeper_tstate == nullptr) return;
  PyThreadState_Clear(t_housekeeper_tstate);
  PyThreadState_DeleteCurrent();
  t_housekeeper_tstate = nullptr;
  static_cast<InterpRecord*>(owner.engine_data())
      ->hk_visits.fetch_sub(1, std::memory_order_seq_cst);
  notify_state_changed();  // shutdown() may wait for housekeeper visits to end
}

OwnerId PythonEngine::current_owner() const noexcept {
  PyThreadState* ts = cpy::current_tstate();
  if (ts == nullptr) return kNoOwner;
  return table_.find(PyThreadState_GetInterpreter(ts));
}

bool PythonEngine::is_idle(Owner& owner) noexcept {
  auto* rec = static_cast<InterpRecord*>(owner.engine_data());
  // Only xinterp's own interpreters are known to be idle when xinterp runs nothing in them;
  // the main interpreter and foreign ones may be running code we do not see.
  return rec->created_by_xinterp && !rec->running.load(std::memory_order_acquire);
}

void PythonEngine::yield_attached(Owner& /*owner*/) noexcept {
  PyThreadState* ts = PyEval_SaveThread();
  std::this_thread::yield();
  PyEval_RestoreThread(ts);
}

void PythonEngine::report_failure(Owner& owner, const char* what) noexcept {
  auto* rec = static_cast<InterpRecord*>(owner.engine_data());
  PyThreadState* ts = cpy::current_tstate();
  if (ts == nullptr || PyThreadState_GetInterpreter(ts) != rec->interp) return;  // counted only
  if (!PyErr_Occurred()) PyErr_Format(PyExc_RuntimeError, "xinterp pending call failed: %s", what);
  char context[96];
  std::snprintf(context, sizeof context, "in an xinterp pending call of interpreter %lld",
                static_cast<long long>(rec->py_id));
  cpy::write_unraisable(context);
}

int64_t PythonEngine::owner_label(const Owner& owner) const noexcept {
  return static_cast<const InterpRecord*>(owner.engine_data())->py_id;
}

int64_t PythonEngine::current_label() const noexcept {
  PyThreadState* ts = cpy::current_tstate();
  return ts == nullptr ? -1 : cpy::interpreter_id(PyThreadState_GetInterpreter(ts));
}

}  // namespace xinterp::python
