// Interrupting the code an exec()/call() runs in one of xinterp's interpreters: interrupt(),
// Ctrl-C (sigint_watch.h) and the exit interrupt of shutdown() all go through post().
//
// A run (PythonEngine::run) is one exec()/call() on one thread. post() tags an interrupt with
// the run it targets (InterpRecord::run_seq) and puts a pending call on CPython's queue of that
// interpreter; whichever thread of it runs the call first:
//   - the run's own thread raises the exception there, at that bytecode boundary;
//   - another thread (one the user started in that interpreter) hands it to the run's thread
//     with PyThreadState_SetAsyncExc, raised at that thread's next bytecode boundary. CPython
//     raises only an exception class that way: an instance loses its args (the class is raised
//     without arguments). Both 3.12 and 3.13 behave so.
// A run that ended (or a later run) drops the call: a stale interrupt never hits a later call.
// The exception is taken once: by that pending call, by a wait of the run's thread that it
// woke (take_here(), see Wait), or by the run's caller when a nested run returns.
//
// xinterp's own waits on the run's thread (queue get/put, channel send/recv) are woken: they
// register a Wait, whose cancel flag the queue or channel reads and whose wake hook post()
// calls. A run's thread that called into another interpreter (a nested exec/call) has that run
// interrupted too (same exception); back in the outer interpreter, the outer interrupt's
// exception is raised in place of the nested call's outcome.
//
// Code blocked inside a C call (time.sleep, lock.acquire, select) sees the exception when that
// call returns: nothing here can end a system call.
//
// Layering: the one engine file that reads a value in transit (data/xidata.h decode(), for an
// exception given as a class or instance); the engine's run() and shutdown() call into it.
//
// Threading: post() needs no GIL and no thread state (the Ctrl-C watcher and shutdown() call
// it); everything else runs attached to the interpreter named.
#pragma once

#include <Python.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "data/xidata.h"
#include "engine/interp_record.h"
#include "engine/status.h"

namespace xinterp::python {

struct RunInterrupt {
  enum class Kind {
    kValue,              // exc: a BaseException subclass or instance, as encode() made it
    kKeyboardInterrupt,  // Ctrl-C (no encoding: posted by a thread without an interpreter)
    kExit,               // shutdown(): SystemExit("xinterp: the process is exiting")
  };
  Kind kind = Kind::kValue;
  XValue exc;
  int64_t py_id = -1;
  uint64_t run_seq = 0;
  // Under the record's run_mu.
  bool taken = false;  // raised (or handed to the run's thread as an async exception)
  bool async = false;  // handed over with PyThreadState_SetAsyncExc
};

// Posts an interrupt to the run in progress in rec. *posted: whether one was in progress (false:
// nothing posted). An interrupt already pending for that run is kept (the first one wins; still
// *posted). Returns an error only if CPython's pending-call queue was full (kInterpreter).
// A kExit interrupt marks the run even when another interrupt is already pending (the call then
// ends as exiting, whatever exception it raised).
// only_thread (a PyThread ident, 0 = any): post only if that thread does the run (Ctrl-C
// targets the main thread's call, never another thread's run that began after it).
Status post_interrupt(const std::shared_ptr<InterpRecord>& rec, RunInterrupt::Kind kind,
                      const XValue& exc, bool* posted, unsigned long only_thread = 0);

// The run the calling thread is doing, for its whole length (PythonEngine::run). Construct it
// as rec is marked running (still attached to the caller, or to nothing), and destroy it before
// that mark is cleared, attached to the target or to nothing; it links the caller's own run, if
// any (a nested call), and forwards an interrupt already pending there.
class RunScope {
 public:
  explicit RunScope(const std::shared_ptr<InterpRecord>& rec);
  // Attached to the target, at the end of the run: retires the run (later posts see it idle)
  // and withdraws an async exception handed over but never raised.
  void end();
  // Whether shutdown()'s exit interrupt was posted to this run (valid after end()).
  bool had_exit_interrupt() const noexcept { return exit_; }
  ~RunScope();
  RunScope(const RunScope&) = delete;
  RunScope& operator=(const RunScope&) = delete;

 private:
  std::shared_ptr<InterpRecord> rec_;
  uint64_t seq_ = 0;
  RunScope* outer_;
  bool ended_ = false;
  bool exit_ = false;
  friend bool interrupt_pending_here() noexcept;
  friend bool take_interrupt_here();
  friend bool interrupt_taken_here() noexcept;
  friend class InterruptibleWait;
};

// Whether an interrupt is posted to the run the calling thread does in the interpreter it is
// attached to and not taken yet. Cheap (a thread-local and an atomic).
bool interrupt_pending_here() noexcept;
// Takes that interrupt: sets its exception in the calling thread and returns true; false if
// there is none. If the target cannot rebuild the exception, a RuntimeError saying so is set
// instead (counted: interrupt_rebuild_failed). Requires: attached (GIL held).
bool take_interrupt_here();
// Whether the run the calling thread does has had its interrupt raised (taken) already: an
// exception seen now may be that interrupt, not the code's own failure (call() rebuilding its
// arguments reports it as the interrupt, not as NotShareableError). Requires: attached.
bool interrupt_taken_here() noexcept;
// After a run an interrupt was raised in: forgets the modules of sys.modules whose parent
// package is missing. An interrupt inside `import pkg` leaves pkg's submodules imported so far
// in sys.modules while pkg itself is dropped; the next `import pkg` would then find them there
// but not bound on the new package object (NameError in pkg/__init__). CPython has the same
// hazard for a KeyboardInterrupt during an import; an interrupted interpreter of ours comes
// back clean of it. Counted (modules_forgotten_after_interrupt). Requires: attached, no
// exception set (one set is kept).
void forget_orphan_modules();

// A wait of xinterp's (queue, channel) for the length of one blocking operation: cancel() is
// the flag to hand to the wait (nullptr when the thread runs no exec/call here), wake(arg) is
// called when an interrupt is posted. Construct and destroy it attached (GIL held); the wait
// itself runs without the GIL. An interrupt the wait did not take (it ended with its item)
// is posted again as it ends, to be raised at the next bytecode boundary.
class InterruptibleWait {
 public:
  InterruptibleWait(void (*wake)(void*), void* arg);
  ~InterruptibleWait();
  const std::atomic<bool>* cancel() const noexcept { return cancel_; }
  InterruptibleWait(const InterruptibleWait&) = delete;
  InterruptibleWait& operator=(const InterruptibleWait&) = delete;

 private:
  std::shared_ptr<InterpRecord> rec_;
  const std::atomic<bool>* cancel_ = nullptr;
};

// Process-wide counts (xinterp.runtime_stats()).
struct InterruptStats {
  uint64_t posted = 0;          // interrupts posted to a running exec/call
  uint64_t async_handoffs = 0;  // handed to the run's thread by another thread (args lost)
  uint64_t rebuild_failed = 0;  // the target could not rebuild the exception (RuntimeError)
  uint64_t refused = 0;         // CPython's pending-call queue was full
  // exec/calls ended by the exit interrupt, or refused as the exit began (SystemExit in caller)
  uint64_t at_exit = 0;
  uint64_t modules_forgotten = 0;  // forget_orphan_modules()
};
InterruptStats interrupt_stats() noexcept;
void count_interrupted_at_exit() noexcept;

}  // namespace xinterp::python
