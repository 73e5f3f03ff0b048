// PythonEngine: the core's Engine for CPython interpreters, and the process-wide registry of the
// interpreters xinterp knows (the ones it created, the main one, and any other that imported
// xinterp).
//
// Main operations:
//   - create(): a new isolated interpreter (own GIL, own allocator, multi-phase extensions only)
//     registered as a core owner. The caller's interpreter keeps running in other threads.
//   - run(id, fn): runs fn on the calling thread inside interpreter `id` (own thread state,
//     caller's GIL released meanwhile), with the interpreter marked running; pending calls
//     queued for it run before fn returns to the caller. One run at a time per interpreter
//     (PEP 734: "interpreter already running"). interrupt() reaches a run (run_interrupt.h);
//     on the process's main thread, so does Ctrl-C (sigint_watch.h). A run ended by the exit
//     interrupt, or refused once shutdown() began, returns kExiting (SystemExit in the caller).
//   - close(id): drains its pending calls and ends it. Refused (InterpreterError) for the main
//     interpreter, the caller's own, one that is running, and one xinterp did not create.
//   - shutdown(): at process exit, interrupts the runs still going (SystemExit, through
//     run_interrupt.h), closes every interpreter xinterp created and the core owner of the main
//     one; afterwards create() fails with InterpreterError and run() with kExiting.
//   - add_listener(): the layers above (queues, channels) hear of interpreters closing, of
//     shutdown and of fork through EngineListener, without the engine depending on them.
//   - Engine: wake() puts at most one call on CPython's per-interpreter pending-call queue per
//     interpreter (a flag coalesces the rest); attach()/detach() give the housekeeper a thread
//     state of its own; is_idle() is "xinterp is not running code in it".
//
// Requirements:
//   - The singleton is created on first use and never destroyed (daemon threads may post at
//     exit).
//   - create/run/close/shutdown are called with the caller attached to at most one interpreter
//     (any Python thread, or a C++ thread with none); they release that interpreter's GIL while
//     they wait or run elsewhere, and re-take it before returning.
// Threading: every method is thread-safe.
#pragma once

#include <Python.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/mutex.h"
#include "engine/engine_listener.h"
#include "engine/interp_record.h"
#include "engine/interp_table.h"
#include "engine/status.h"
#include "xinterp/engine.h"
#include "xinterp/runtime.h"

namespace xinterp::python {

class PythonEngine final : public Engine {
 public:
  static PythonEngine& get();

  Runtime& runtime() noexcept { return *runtime_; }

  // Registers a listener for the rest of the process (engine_listener.h).
  void add_listener(EngineListener* listener) XI_EXCLUDES(mu_);
  // A lent buffer was given back: wakes close() and shutdown() waiting for borrows.
  void borrow_returned() noexcept { notify_state_changed(); }

  // The OS thread `thread` (ThreadVisits::key()) ended: its thread state kept in rec, if any,
  // moves to rec.ended_tstates, deleted by the next visit or the close. Touches no Python.
  void thread_ended(InterpRecord& rec, uint64_t thread) XI_EXCLUDES(mu_);

  // The record of the interpreter the calling thread is attached to, registering it first if
  // xinterp has not seen it. Requires: attached.
  std::shared_ptr<InterpRecord> register_current(Status* status) XI_EXCLUDES(mu_);
  // Called as an interpreter xinterp did not create ends (CPython's per-interpreter exit
  // callback, or the module's m_free): closes its owner and forgets it. Idempotent.
  void forget_current() noexcept;
  // Interpreters xinterp did not create that ended while other interpreters still viewed their
  // buffers (after forget_current's wait): those borrows were given up, released raw.
  uint64_t foreign_ended_with_borrows() const noexcept {
    return foreign_ended_with_borrows_.load(std::memory_order_relaxed);
  }

  std::shared_ptr<InterpRecord> find(int64_t py_id) const XI_EXCLUDES(mu_);
  std::shared_ptr<InterpRecord> find(PyInterpreterState* interp) const XI_EXCLUDES(mu_);
  std::vector<std::shared_ptr<InterpRecord>> all() const XI_EXCLUDES(mu_);

  // The new interpreter starts with one owning reference (see incref), held by the caller.
  Status create(int64_t* py_id);
  // Waits up to `borrow_timeout` for buffers of this interpreter held by other interpreters to
  // come back, and for its non-daemon threads to end (CPython's Py_EndInterpreter would join
  // them forever); if they do not, fails with InterpreterError naming them, and the interpreter
  // stays intact. A signal's exception (KeyboardInterrupt) ends the wait within
  // kSignalCheckInterval, leaving it intact too (kPythonSet). Once shutdown() has begun, close()
  // leaves the interpreter to it and returns OK. Buffers it lent that still sit in queues follow
  // their unbound policy.
  Status close(int64_t py_id, std::chrono::nanoseconds borrow_timeout = kDefaultBorrowTimeout);
  static constexpr std::chrono::nanoseconds kDefaultBorrowTimeout = std::chrono::milliseconds(500);
  Status run(int64_t py_id, const std::function<Status()>& fn);
  // PEP 734 ownership references: the interpreter closes when the last one is dropped.
  Status incref(int64_t py_id);
  void decref(int64_t py_id);
  void shutdown();
  bool is_shut_down() const;
  // Interpreters shutdown() left open because code still ran in them after the grace period.
  uint64_t stranded_at_exit() const;
  // Interpreters shutdown() closed although some of their buffers were still viewed.
  uint64_t closed_with_borrows_at_exit() const;
  // Non-daemon threads of xinterp's interpreters still alive at exit: their interpreters were
  // abandoned (stranded) instead of ended, since ending them would wait for the threads forever.
  uint64_t threads_abandoned_at_exit() const;
  // Lends and register_current() calls refused because close() is ending the calling
  // interpreter (a buffer put in a queue, or xinterp imported, from its atexit handlers or
  // finalizers).
  uint64_t refused_while_closing() const noexcept {
    return refused_while_closing_.load(std::memory_order_relaxed);
  }
  // A buffer lend refused: its lender was being ended (InterpRecord::lending_closed).
  void count_refused_while_closing() noexcept {
    refused_while_closing_.fetch_add(1, std::memory_order_relaxed);
  }
  // Whether the calling thread's interpreter is one close() is ending (Py_EndInterpreter).
  bool current_is_ending() const XI_EXCLUDES(mu_);
  // How often a close() waiting for borrowed buffers re-takes the caller's GIL to run signal
  // handlers (CPython's handlers set a flag only; our condition variable cannot hear them).
  static constexpr std::chrono::milliseconds kSignalCheckInterval{50};
  // Running interpreters into which shutdown() could not even queue its SystemExit (CPython's
  // pending-call queue was full): they are waited for and, if still running, stranded.
  uint64_t exit_interrupts_refused() const noexcept {
    return exit_interrupts_refused_.load(std::memory_order_relaxed);
  }
  // Calls shutdown() abandoned: a housekeeper thread was stuck in one (a __release_buffer__ or
  // __del__ that never returns) past the grace period; it and the calls queued behind it in
  // that drain never run. Their interpreter is counted in stranded_at_exit.
  uint64_t calls_abandoned_at_exit() const noexcept {
    return calls_abandoned_at_exit_.load(std::memory_order_relaxed);
  }

  // Engine.
  void wake(Owner& owner) noexcept override;
  bool attach(Owner& owner) noexcept override;
  void detach(Owner& owner) noexcept override;
  OwnerId current_owner() const noexcept override;
  bool is_idle(Owner& owner) noexcept override;
  void yield_attached(Owner& owner) noexcept override;
  void report_failure(Owner& owner, const char* what) noexcept override;
  int64_t owner_label(const Owner& owner) const noexcept override;
  int64_t current_label() const noexcept override;

 private:
  enum class CloseHow { kInInterpreter, kRaw };

  PythonEngine();
  static int on_cpython_pending(void* arg);
  static void before_fork() XI_NO_THREAD_SAFETY_ANALYSIS;  // takes mu_, released after fork
  static void after_fork_parent() XI_NO_THREAD_SAFETY_ANALYSIS;
  static void after_fork_child() XI_NO_THREAD_SAFETY_ANALYSIS;
  std::vector<EngineListener*> listeners() XI_EXCLUDES(mu_);
  Status close_locked_out(const std::shared_ptr<InterpRecord>& rec, bool lifecycle_op = false);
  // The core's close protocol for an owner, written once: begin_close() (later posts run raw),
  // wait without the caller's GIL until nobody uses the owner (a housekeeper visit ends), then
  // enter() — with the calling thread as it was at the call — attaches the thread where
  // finish_close() must run and returns true, or returns false to close the owner raw. Returns
  // false, doing nothing, if the owner was already closing.
  // At exit (use_timeout given): a use still outstanding after it (a housekeeper worker stuck
  // in a call) abandons the owner instead (Owner::abandon, counted in calls_abandoned_at_exit).
  static constexpr std::chrono::nanoseconds kNoTimeout = std::chrono::nanoseconds::max();
  template <class Enter>
  bool close_owner(Owner& owner, Enter enter, std::chrono::nanoseconds use_timeout = kNoTimeout);
  // Deletes rec's thread states whose OS thread ended. Requires: attached to rec's interpreter.
  void delete_ended_tstates(InterpRecord& rec) XI_EXCLUDES(mu_);
  bool begin_lifecycle_op() XI_EXCLUDES(mu_);  // false after shutdown
  void end_lifecycle_op() XI_EXCLUDES(mu_);
  // Waits (caller's GIL released) until no other interpreter holds one of rec's buffers;
  // otherwise describes who does. `from_close`: also ends early for a signal's exception
  // (kSignal, the exception set in the caller) or once shutdown() began (kShutdown).
  enum class BorrowWait { kClear, kHeld, kSignal, kShutdown };
  BorrowWait wait_for_borrows(InterpRecord& rec, std::chrono::nanoseconds timeout,
                              std::string* held, bool from_close = false);
  // Joins rec's non-daemon threads (other than its main thread) until `deadline`, inside rec
  // (the caller's GIL released); returns the names of those still alive. `from_close`: gives up
  // early once shutdown() began. Requires: rec is closing and not running.
  std::vector<std::string> wait_for_threads(InterpRecord& rec,
                                            std::chrono::steady_clock::time_point deadline,
                                            bool from_close);
  // Waits (no GIL held) until done() or `deadline`, woken by notify_state_changed(); returns
  // done()'s last answer. For state that changes without a lock of ours: borrows given back,
  // interpreters that stop running.
  template <class Done>
  bool wait_state(Done done, std::chrono::steady_clock::time_point deadline);
  void notify_state_changed() noexcept;
  // Registers an interpreter; `parked` is the thread state xinterp's own interpreters keep.
  // Refused (nullptr, InterpreterError) for a new interpreter of ours after shutdown().
  std::shared_ptr<InterpRecord> add_record(PyInterpreterState* interp, Whence whence, bool created,
                                           Status* status, PyThreadState* parked = nullptr)
      XI_EXCLUDES(mu_);
  void remove_record(const std::shared_ptr<InterpRecord>& rec) XI_EXCLUDES(mu_);

  std::unique_ptr<Runtime> runtime_;
  InterpTable table_;  // written under mu_ (InterpTable's own rule); read lock-free
  mutable internal::Mutex mu_;
  std::unordered_map<int64_t, std::shared_ptr<InterpRecord>> by_id_ XI_GUARDED_BY(mu_);
  // Closed records that outstanding borrows still point to (their borrow_mu is still used).
  std::vector<std::weak_ptr<InterpRecord>> retired_ XI_GUARDED_BY(mu_);
  // Every record whose borrow_mu is held across a fork (between the atfork handlers).
  std::vector<std::shared_ptr<InterpRecord>> fork_locked_ XI_GUARDED_BY(mu_);
  std::vector<EngineListener*> listeners_ XI_GUARDED_BY(mu_);
  bool shut_down_ XI_GUARDED_BY(mu_) = false;
  std::atomic<bool> shutting_down_{false};  // shut_down_, readable without mu_ (wait_state)
  // Interpreters close() is ending right now (unregistered, Py_EndInterpreter under way): they
  // must not register again (register_current), as a foreign interpreter that outlives them.
  std::unordered_set<PyInterpreterState*> ending_ XI_GUARDED_BY(mu_);
  std::atomic<uint64_t> refused_while_closing_{0};
  uint64_t threads_abandoned_at_exit_ XI_GUARDED_BY(mu_) = 0;
  // create() and close() calls in progress (they run Py_NewInterpreterFromConfig or
  // Py_EndInterpreter); shutdown() waits for them, since CPython aborts if the runtime
  // finalizes while one is half done.
  int lifecycle_ops_ XI_GUARDED_BY(mu_) = 0;
  internal::CondVar lifecycle_cv_;
  uint64_t stranded_at_exit_ XI_GUARDED_BY(mu_) = 0;
  uint64_t closed_with_borrows_at_exit_ XI_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> exit_interrupts_refused_{0};
  std::atomic<uint64_t> foreign_ended_with_borrows_{0};
  std::atomic<uint64_t> calls_abandoned_at_exit_{0};
  // wait_state(): a leaf lock and its condition variable; notifiers take the lock only while
  // someone waits.
  internal::Mutex state_mu_;
  internal::CondVar state_cv_;
  std::atomic<int> state_waiters_{0};
};

}  // namespace xinterp::python
