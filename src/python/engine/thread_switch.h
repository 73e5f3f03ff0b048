// Moving the calling thread between interpreters, each with its own GIL.
//
// CallerRelease: detaches the calling thread from whatever interpreter it is attached to (if
// any), releasing that GIL; reattach() takes it back.
// EnterInterpreter: detaches the caller like CallerRelease; enter() then attaches the thread to a
// target interpreter with a thread state of its own, made for this visit; leave() deletes that
// thread state and reattaches the caller.
//
// Requirements:
//   - leave()/reattach() are called explicitly, never from a destructor: re-taking the caller's
//     GIL at interpreter exit makes CPython end a daemon thread with pthread_exit, whose forced
//     unwind must not cross a noexcept frame (that would call std::terminate).
//   - The target is not finalized while the thread is inside it (the engine's run and close
//     protocols ensure it).
// Threading: the objects are used by the thread that made them only.
#pragma once

#include <Python.h>

#include "cpython/cpython_private.h"

namespace xinterp::python {

class CallerRelease {
 public:
  CallerRelease() : saved_(cpy::current_tstate()) {
    if (saved_ != nullptr) PyEval_SaveThread();
  }
  CallerRelease(const CallerRelease&) = delete;
  CallerRelease& operator=(const CallerRelease&) = delete;

  PyThreadState* saved() const { return saved_; }
  // Re-takes the caller's GIL. May end the thread (daemon thread at exit).
  void reattach() {
    if (saved_ != nullptr) PyEval_RestoreThread(saved_);
    saved_ = nullptr;
  }

 private:
  PyThreadState* saved_;
};

class EnterInterpreter {
 public:
  // Detaches the caller; enter() then attaches the thread to the target.
  EnterInterpreter() = default;
  EnterInterpreter(const EnterInterpreter&) = delete;
  EnterInterpreter& operator=(const EnterInterpreter&) = delete;

  // false: no thread state could be made (out of memory); the thread is not inside the target.
  bool enter(PyInterpreterState* target) {
    tstate_ = PyThreadState_New(target);
    if (tstate_ == nullptr) return false;
    PyEval_RestoreThread(tstate_);
    return true;
  }
  // Enters with a thread state kept from an earlier visit by this same thread.
  void enter_with(PyThreadState* kept) {
    tstate_ = kept;
    PyEval_RestoreThread(tstate_);
  }
  PyThreadState* tstate() const { return tstate_; }

  // Detaches from the target, keeping our thread state for a later visit; returns it.
  PyThreadState* detach_keep() {
    PyThreadState* ts = tstate_;
    if (ts != nullptr) PyEval_SaveThread();
    tstate_ = nullptr;
    return ts;
  }
  // Detaches from the target, deleting our thread state.
  void detach_delete() {
    if (tstate_ != nullptr) {
      PyThreadState_Clear(tstate_);
      PyThreadState_DeleteCurrent();
      tstate_ = nullptr;
    }
  }
  // Re-takes the caller's GIL (after a detach). May end the thread (daemon thread at exit).
  void reattach_caller() { caller_.reattach(); }
  // detach_delete() + reattach_caller().
  void leave() {
    detach_delete();
    reattach_caller();
  }
  bool caller_had_tstate() const { return caller_.saved() != nullptr; }

 private:
  CallerRelease caller_;
  PyThreadState* tstate_ = nullptr;
};

}  // namespace xinterp::python
