// SigintWatch: Ctrl-C while the process's main thread runs code in another interpreter.
//
// CPython handles SIGINT only in the main interpreter: its C handler sets a flag that the main
// thread checks between bytecodes of the main interpreter. While that thread runs an exec() or
// call() in another interpreter (PythonEngine::run), nothing would happen until the call ends.
// So a C handler of ours is chained in front of CPython's (installed at the first such run and
// left in place; outside such runs it only passes the signal on): during a run it counts the
// signal and posts (sem_post, async-signal-safe) to a watcher thread, then calls
// the handler it replaced, so that CPython still sees the signal. The watcher interrupts the
// run with KeyboardInterrupt (run_interrupt.h); once the run is back, the caller runs
// PyErr_CheckSignals(), so the main interpreter's Python handler raises there.
//
// Decisions: the handler is installed lazily, at the first such run, and checked again at each
// (one sigaction() call): signal.signal() replaces it, and the next run chains the new one.
// SIGINT ignored (SIG_IGN) or left at SIG_DFL: nothing is installed and the run is not
// interrupted (the signal does what the process asked for). A custom Python handler: the run
// is interrupted (KeyboardInterrupt inside the target) and then that handler runs in the main
// thread; if it does not raise, the call's own ExecutionFailed is raised.
// Only runs on the process's main thread, entered from the main interpreter, are watched
// (that is where CPython delivers the signal's handler); a nested call inside them is reached
// through the outer run's interrupt.
//
// Threading: construct and destroy it on the thread that runs, attached to the caller's
// interpreter; the watcher thread is started once (again after fork in the child).
#pragma once

#include <cstdint>

namespace xinterp::python {

class SigintWatch {
 public:
  explicit SigintWatch(int64_t py_id);
  ~SigintWatch();
  // Whether a SIGINT arrived while watching.
  bool fired() const noexcept;
  SigintWatch(const SigintWatch&) = delete;
  SigintWatch& operator=(const SigintWatch&) = delete;

 private:
  bool active_ = false;
  uint64_t hits_at_start_ = 0;
};

}  // namespace xinterp::python
