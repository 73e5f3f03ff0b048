// InterpRecord: what the CPython engine keeps about one interpreter it knows: the CPython handle,
// its ids, where it came from, and the state that gates running code in it and closing it.
//
// Requirements:
//   - `interp` is dereferenced only while the record is registered and the caller either holds
//     a use of `owner`, is attached to the interpreter, or has it marked running (see
//     PythonEngine::RunScope); a closer waits for all three to end.
// Threading: the fields marked "under PythonEngine::mu_" are read and written with the engine's
// mutex held (clang's analysis cannot name another object's lock there); borrowed is guarded by
// borrow_mu (checked); the atomics are read anywhere.
#pragma once

#include <Python.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/mutex.h"
#include "xinterp/owner.h"

namespace xinterp::python {

struct InterpRecord;
struct RunInterrupt;  // engine/run_interrupt.h

// A buffer an interpreter lent (data/buffer_borrow.h): what stays with the owner's record until
// the release ran: the Py_buffer itself and who holds it now.
struct LentBuffer {
  Py_buffer view{};
  std::shared_ptr<InterpRecord> owner;
  // A receiving interpreter's id, or -1 while it sits in a queue or is in transit (for close()'s
  // error message).
  std::atomic<int64_t> holder{-1};
};

// CPython's values of interpreter "whence" (3.13's _PyInterpreterState_WHENCE_*), used on 3.12 too.
enum class Whence : int {
  kUnknown = 0,
  kRuntime = 1,  // the main interpreter
  kLegacyCapi = 2,
  kCapi = 3,
  kCrossInterp = 4,
  kStdlib = 5,  // created by xinterp.create() (the stand-in for CPython's _interpreters)
};

struct InterpRecord {
  PyInterpreterState* interp = nullptr;
  int64_t py_id = -1;  // CPython's interpreter id (never reused; main is 0)
  Whence whence = Whence::kUnknown;
  bool created_by_xinterp = false;
  OwnerRef owner;  // the core's owner for this interpreter
  // xinterp's interpreters keep the thread state they were created with, detached, for their
  // whole life, and end with it. An interpreter must never run out of thread states: CPython
  // 3.12.1 then reuses its built-in initial thread state and aborts ("thread state already
  // initialized"). Visits (run, housekeeper) use thread states of their own.
  PyThreadState* parked = nullptr;

  // One CPython pending-call slot at most: set while our wake callback is queued in CPython.
  std::atomic<bool> wake_armed{false};
  std::atomic<uint64_t> wakes_coalesced{0};  // wakes skipped: our CPython slot was still queued
  std::atomic<uint64_t> wakes_refused{0};    // CPython's queue was full (the housekeeper covers)
  std::atomic<uint64_t> cpython_calls_added{0};  // our calls put on CPython's pending queue
  std::atomic<uint64_t> cpython_calls_run{0};    // ... and run by CPython (added - run <= 1)
  std::atomic<bool> running{false};              // an exec/call is in progress (is_idle's source)
  // Set once close() starts ending it: it lends no more buffers (BufferBorrow::take refuses),
  // since nothing would release them inside it any more (its atexit handlers, finalizers).
  std::atomic<bool> lending_closed{false};
  // Housekeeper threads attached to it now (draining its calls: user code such as a
  // __release_buffer__ runs). shutdown() waits for them, and strands it if one never ends.
  std::atomic<int> hk_visits{0};

  // The exec()/call() in progress, for interrupt() (engine/run_interrupt.h). run_mu is a leaf
  // lock, except that a wait's wake hook (a queue's or channel's own lock) is called under it,
  // and so is PyThreadState_SetAsyncExc (CPython's runtime list lock, taken without detaching).
  internal::Mutex run_mu;
  bool in_run XI_GUARDED_BY(run_mu) = false;
  uint64_t run_seq XI_GUARDED_BY(run_mu) = 0;          // which run: stale interrupts are dropped
  unsigned long run_thread XI_GUARDED_BY(run_mu) = 0;  // its PyThread ident
  int64_t nested_into XI_GUARDED_BY(run_mu) = -1;      // the interpreter that thread called into
  std::shared_ptr<RunInterrupt> interrupt XI_GUARDED_BY(run_mu);  // posted to this run
  bool exit_posted XI_GUARDED_BY(run_mu) = false;  // shutdown()'s interrupt reached this run
  // Posts queueing their pending call (outside run_mu): the run's end waits for them, so that
  // the interpreter outlives them.
  int posters XI_GUARDED_BY(run_mu) = 0;
  // The run thread's xinterp wait in progress (queue, channel): woken by an interrupt.
  void (*wait_wake)(void*) XI_GUARDED_BY(run_mu) = nullptr;
  void* wait_wake_arg XI_GUARDED_BY(run_mu) = nullptr;
  // Set while an interrupt of this run is posted and not yet taken: the run thread's waits
  // read it (cheaply, without run_mu) as their cancel flag.
  std::atomic<bool> cancel{false};

  // Buffers of this interpreter lent to others and not given back yet, and which they are.
  std::atomic<int64_t> borrows{0};
  internal::Mutex borrow_mu;  // a leaf lock: nothing else is taken while it is held
  std::unordered_set<LentBuffer*> borrowed XI_GUARDED_BY(borrow_mu);

  // Under PythonEngine::mu_.
  bool closing = false;
  bool inherited = false;  // a fork child's copy of a parent's sub-interpreter: unusable
  bool stranded = false;   // still running at exit: fenced, unlinked, abandoned (shutdown)
  // Thread states kept between visits, by thread (ThreadVisits::key(), never reused), so that a
  // Python thread calling into this interpreter again skips creating one. Only threads that
  // already have a thread state of their own are served (a bare C++ thread's first thread state
  // would become its PyGILState one). The closer deletes them all before ending the interpreter.
  std::unordered_map<uint64_t, PyThreadState*> visit_tstates;
  // Kept thread states whose OS thread ended (PythonEngine::thread_ended): deleted by the next
  // visit, or by the closer.
  std::vector<PyThreadState*> ended_tstates;
  int64_t refs = 0;  // owning Interpreter objects (PEP 734 "ownsref")
};

}  // namespace xinterp::python
