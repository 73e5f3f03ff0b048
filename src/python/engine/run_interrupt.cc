#include "engine/run_interrupt.h"

#include <pythread.h>

#include <string>
#include <thread>
#include <utility>

#include "cpython/cpython_private.h"
#include "engine/python_engine.h"

namespace xinterp::python {
namespace {

constexpr const char* kExitMessage = "xinterp: the process is exiting";

thread_local RunScope* t_scope = nullptr;

std::atomic<uint64_t> g_posted{0};
std::atomic<uint64_t> g_async{0};
std::atomic<uint64_t> g_rebuild_failed{0};
std::atomic<uint64_t> g_refused{0};
std::atomic<uint64_t> g_at_exit{0};
std::atomic<uint64_t> g_modules_forgotten{0};

// What CPython's pending call carries: the interrupt and (weakly) its interpreter's record.
struct Posted {
  std::shared_ptr<RunInterrupt> interrupt;
  std::weak_ptr<InterpRecord> rec;
};

bool attached_to(const InterpRecord& rec, PyThreadState** ts) {
  *ts = cpy::current_tstate();
  return *ts != nullptr && PyThreadState_GetInterpreter(*ts) == rec.interp;
}

// The interrupt's exception, made in the target (attached). A new reference; nullptr only with
// an exception set that could not be replaced (memory).
PyObject* make_exception(const RunInterrupt& it) {
  switch (it.kind) {
    case RunInterrupt::Kind::kKeyboardInterrupt:
      return PyObject_CallNoArgs(PyExc_KeyboardInterrupt);
    case RunInterrupt::Kind::kExit:
      return PyObject_CallFunction(PyExc_SystemExit, "s", kExitMessage);
    case RunInterrupt::Kind::kValue:
      break;
  }
  PyObject* obj = decode(it.exc);
  if (obj != nullptr && PyExceptionClass_Check(obj)) {
    PyObject* inst = PyObject_CallNoArgs(obj);
    Py_DECREF(obj);
    obj = inst;
  } else if (obj != nullptr && !PyExceptionInstance_Check(obj)) {
    PyErr_Format(PyExc_TypeError, "rebuilt as %.200s, not an exception", Py_TYPE(obj)->tp_name);
    Py_DECREF(obj);
    obj = nullptr;
  }
  if (obj != nullptr) return obj;
  // Decision: the target still stops, with a RuntimeError that says why (its cause: what the
  // rebuild raised). Counted.
  g_rebuild_failed.fetch_add(1, std::memory_order_relaxed);
  PyObject* cause = PyErr_GetRaisedException();
  PyObject* err = PyObject_CallFunction(
      PyExc_RuntimeError, "s",
      "xinterp: interrupted, but the exception given to interrupt() could not be rebuilt in "
      "this interpreter");
  if (err == nullptr) {
    Py_XDECREF(cause);
    return nullptr;
  }
  if (cause != nullptr) PyException_SetCause(err, cause);  // steals cause
  return err;
}

void raise_here(const RunInterrupt& it) {
  PyObject* exc = make_exception(it);
  if (exc != nullptr) PyErr_SetRaisedException(exc);
}

// Whether `it` is still the live, untaken interrupt of rec's run. Requires: rec.run_mu held.
bool still_pending(const InterpRecord& rec, const std::shared_ptr<RunInterrupt>& it)
    XI_REQUIRES(rec.run_mu) {
  return rec.in_run && rec.run_seq == it->run_seq && rec.interrupt == it && !it->taken;
}

int on_pending(void* arg) {
  std::unique_ptr<Posted> posted(static_cast<Posted*>(arg));
  std::shared_ptr<InterpRecord> rec = posted->rec.lock();
  if (rec == nullptr) return 0;
  const std::shared_ptr<RunInterrupt>& it = posted->interrupt;
  PyThreadState* ts;
  if (!attached_to(*rec, &ts)) return 0;
  const unsigned long me = PyThread_get_thread_ident();
  bool mine = false;
  {
    internal::MutexLock lock(rec->run_mu);
    // Stale (the run ended, or a later one runs) or already taken: nothing to do.
    if (!still_pending(*rec, it)) return 0;
    if (me == rec->run_thread) {
      mine = true;
      it->taken = true;
      rec->cancel.store(false, std::memory_order_release);
    } else if (rec->wait_wake != nullptr || rec->nested_into >= 0) {
      // The run's thread is in one of our waits or in a nested call: it takes the interrupt
      // itself as that ends (woken for it).
      return 0;
    }
  }
  if (mine) {
    raise_here(*it);
    return -1;
  }
  // Another thread of the interpreter: hand it over. CPython raises only a class this way.
  // Making the exception runs Python code (a rebuild, an __init__), which may let the run end
  // meanwhile: it is handed over only if still pending after that, under run_mu, so a run that
  // ended never keeps it for the next call.
  PyObject* exc = make_exception(*it);
  if (exc == nullptr) {
    cpy::write_unraisable("in xinterp's interrupt");
    return 0;
  }
  bool handed = false;
  {
    internal::MutexLock lock(rec->run_mu);
    if (still_pending(*rec, it) && rec->wait_wake == nullptr && rec->nested_into < 0) {
      PyObject* type = reinterpret_cast<PyObject*>(Py_TYPE(exc));
      handed = PyThreadState_SetAsyncExc(rec->run_thread, type) > 0;
      if (handed) {
        it->taken = true;
        it->async = true;
        rec->cancel.store(false, std::memory_order_release);
      }
    }
  }
  Py_DECREF(exc);
  if (handed) g_async.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

// Queues the pending call. Requires: rec->posters counted for the caller (the run's end waits,
// so the interpreter stays), run_mu not held: on 3.13 CPython's queue lock may detach a caller
// that waits for it, which must then hold none of our locks.
bool queue_call(const std::shared_ptr<InterpRecord>& rec, std::shared_ptr<RunInterrupt> it) {
  auto* arg = new Posted{std::move(it), rec};
  if (cpy::add_pending_call(rec->interp, &on_pending, arg)) return true;
  delete arg;
  g_refused.fetch_add(1, std::memory_order_relaxed);
  return false;
}

// Waits (holding nothing of ours) until no post is queueing into rec's interpreter.
void wait_for_posters(InterpRecord& rec) {
  for (;;) {
    {
      internal::MutexLock lock(rec.run_mu);
      if (rec.posters == 0) return;
    }
    std::this_thread::yield();
  }
}

}  // namespace

Status post_interrupt(const std::shared_ptr<InterpRecord>& rec, RunInterrupt::Kind kind,
                      const XValue& exc, bool* posted, unsigned long only_thread) {
  *posted = false;
  int64_t nested = -1;
  std::shared_ptr<RunInterrupt> it;
  {
    internal::MutexLock lock(rec->run_mu);
    if (!rec->in_run) return Status();
    if (only_thread != 0 && rec->run_thread != only_thread) return Status();
    *posted = true;
    if (kind == RunInterrupt::Kind::kExit) rec->exit_posted = true;
    if (rec->interrupt != nullptr && !rec->interrupt->taken) return Status();  // first wins
    it = std::make_shared<RunInterrupt>();
    it->kind = kind;
    if (kind == RunInterrupt::Kind::kValue) it->exc = exc;
    it->py_id = rec->py_id;
    it->run_seq = rec->run_seq;
    rec->interrupt = it;
    rec->cancel.store(true, std::memory_order_release);
    if (rec->wait_wake != nullptr) rec->wait_wake(rec->wait_wake_arg);
    nested = rec->nested_into;
    ++rec->posters;
  }
  const bool queued = queue_call(rec, it);
  bool lost = false;
  {
    internal::MutexLock lock(rec->run_mu);
    --rec->posters;
    if (!queued && rec->interrupt == it && !it->taken) {  // not taken by a woken wait either
      rec->interrupt.reset();
      rec->cancel.store(false, std::memory_order_release);
      lost = true;
    }
  }
  if (lost) {
    return Status::error(ErrorKind::kInterpreter,
                         "interpreter " + std::to_string(rec->py_id) +
                             ": CPython's pending-call queue is full; the interrupt was not "
                             "posted (try again)");
  }
  g_posted.fetch_add(1, std::memory_order_relaxed);
  if (nested >= 0) {
    // The run's thread is inside a call into another interpreter: interrupt that run too.
    if (std::shared_ptr<InterpRecord> inner = PythonEngine::get().find(nested)) {
      bool inner_posted;
      (void)post_interrupt(inner, kind, exc, &inner_posted, only_thread);
    }
  }
  return Status();
}

RunScope::RunScope(const std::shared_ptr<InterpRecord>& rec) : rec_(rec), outer_(t_scope) {
  {
    internal::MutexLock lock(rec_->run_mu);
    rec_->in_run = true;
    seq_ = ++rec_->run_seq;
    rec_->run_thread = PyThread_get_thread_ident();
    rec_->nested_into = -1;
    rec_->interrupt.reset();
    rec_->exit_posted = false;
    rec_->wait_wake = nullptr;
    rec_->cancel.store(false, std::memory_order_release);
  }
  t_scope = this;
  if (outer_ == nullptr) return;
  // A nested call: the outer run learns where its thread is; an interrupt posted to it before
  // that (and not taken) is forwarded.
  std::shared_ptr<RunInterrupt> pending;
  bool exiting;
  {
    internal::MutexLock lock(outer_->rec_->run_mu);
    outer_->rec_->nested_into = rec_->py_id;
    exiting = outer_->rec_->exit_posted;
    if (outer_->rec_->interrupt != nullptr && !outer_->rec_->interrupt->taken) {
      pending = outer_->rec_->interrupt;
    }
  }
  bool posted;
  if (pending != nullptr) (void)post_interrupt(rec_, pending->kind, pending->exc, &posted);
  if (exiting) (void)post_interrupt(rec_, RunInterrupt::Kind::kExit, XValue(), &posted);
}

void RunScope::end() {
  if (ended_) return;
  PyThreadState* ts;
  const bool attached = attached_to(*rec_, &ts);
  internal::MutexLock lock(rec_->run_mu);
  // Handed over by another thread but never raised (the run ended in C): withdrawn, so that
  // the thread state kept for the next call carries nothing stale.
  if (attached && rec_->interrupt != nullptr && rec_->interrupt->async) {
    (void)cpy::take_async_exc(ts);
  }
  exit_ = rec_->exit_posted;
  rec_->in_run = false;
  rec_->interrupt.reset();
  rec_->exit_posted = false;
  rec_->wait_wake = nullptr;
  rec_->cancel.store(false, std::memory_order_release);
  ended_ = true;
}

RunScope::~RunScope() {
  if (!ended_) {
    internal::MutexLock lock(rec_->run_mu);
    rec_->in_run = false;
    rec_->interrupt.reset();
    rec_->cancel.store(false, std::memory_order_release);
  }
  // Posts that found the run going may still be queueing into the interpreter; it must not
  // close under them (close() waits for `running`, cleared after this).
  wait_for_posters(*rec_);
  t_scope = outer_;
  if (outer_ != nullptr) {
    internal::MutexLock lock(outer_->rec_->run_mu);
    outer_->rec_->nested_into = -1;
  }
}

bool interrupt_pending_here() noexcept {
  RunScope* s = t_scope;
  if (s == nullptr || s->ended_ || !s->rec_->cancel.load(std::memory_order_acquire)) return false;
  PyThreadState* ts;
  return attached_to(*s->rec_, &ts);
}

bool take_interrupt_here() {
  RunScope* s = t_scope;
  if (s == nullptr || s->ended_) return false;
  PyThreadState* ts;
  if (!attached_to(*s->rec_, &ts)) return false;
  std::shared_ptr<RunInterrupt> it;
  {
    internal::MutexLock lock(s->rec_->run_mu);
    if (!s->rec_->in_run || s->rec_->run_seq != s->seq_ || s->rec_->interrupt == nullptr) {
      return false;
    }
    it = s->rec_->interrupt;
    if (it->taken) {
      // Handed over as an async exception not raised yet: raised here instead, whole.
      if (!it->async || !cpy::take_async_exc(ts)) return false;
      it->async = false;
    }
    it->taken = true;
    s->rec_->cancel.store(false, std::memory_order_release);
  }
  raise_here(*it);
  return true;
}

bool interrupt_taken_here() noexcept {
  RunScope* s = t_scope;
  if (s == nullptr || s->ended_) return false;
  PyThreadState* ts;
  if (!attached_to(*s->rec_, &ts)) return false;
  internal::MutexLock lock(s->rec_->run_mu);
  return s->rec_->in_run && s->rec_->run_seq == s->seq_ && s->rec_->interrupt != nullptr &&
         s->rec_->interrupt->taken;
}

void forget_orphan_modules() {
  PyObject* saved = PyErr_GetRaisedException();
  PyObject* modules = PySys_GetObject("modules");  // borrowed
  // Until nothing changes: dropping a.b orphans a.b.c.
  bool changed = modules != nullptr && PyDict_Check(modules);
  while (changed) {
    changed = false;
    PyObject* names = PyDict_Keys(modules);
    if (names == nullptr) break;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(names); ++k) {
      PyObject* name = PyList_GET_ITEM(names, k);
      if (!PyUnicode_Check(name)) continue;
      const Py_ssize_t dot = PyUnicode_FindChar(name, '.', 0, PyUnicode_GET_LENGTH(name), -1);
      if (dot <= 0) continue;
      PyObject* parent = PyUnicode_Substring(name, 0, dot);
      if (parent == nullptr) break;
      const int has_parent = PyDict_Contains(modules, parent);
      Py_DECREF(parent);
      if (has_parent == 0 && PyDict_DelItem(modules, name) == 0) {
        g_modules_forgotten.fetch_add(1, std::memory_order_relaxed);
        changed = true;
      }
    }
    Py_DECREF(names);
  }
  PyErr_Clear();
  PyErr_SetRaisedException(saved);
}

InterruptibleWait::InterruptibleWait(void (*wake)(void*), void* arg) {
  RunScope* s = t_scope;
  PyThreadState* ts;
  if (s == nullptr || s->ended_ || !attached_to(*s->rec_, &ts)) return;
  rec_ = s->rec_;
  internal::MutexLock lock(rec_->run_mu);
  rec_->wait_wake = wake;
  rec_->wait_wake_arg = arg;
  // An interrupt handed over as an async exception that this thread has not raised yet: the
  // wait must not park on it; it returns at once and takes it.
  if (rec_->interrupt != nullptr && rec_->interrupt->async && cpy::has_async_exc(ts)) {
    rec_->cancel.store(true, std::memory_order_release);
  }
  cancel_ = &rec_->cancel;
}

InterruptibleWait::~InterruptibleWait() {
  if (rec_ == nullptr) return;
  std::shared_ptr<RunInterrupt> again;
  {
    internal::MutexLock lock(rec_->run_mu);
    rec_->wait_wake = nullptr;
    rec_->wait_wake_arg = nullptr;
    // Posted while we waited, and the wait ended with its item instead: a pending call skipped
    // it for us, so it goes again, to be raised at the next bytecode boundary.
    if (rec_->in_run && rec_->interrupt != nullptr && !rec_->interrupt->taken) {
      again = rec_->interrupt;
      ++rec_->posters;
    }
  }
  if (again == nullptr) return;
  (void)queue_call(rec_, again);  // full: the run's own next wait or nested return takes it
  internal::MutexLock lock(rec_->run_mu);
  --rec_->posters;
}

InterruptStats interrupt_stats() noexcept {
  InterruptStats s;
  s.posted = g_posted.load(std::memory_order_relaxed);
  s.async_handoffs = g_async.load(std::memory_order_relaxed);
  s.rebuild_failed = g_rebuild_failed.load(std::memory_order_relaxed);
  s.refused = g_refused.load(std::memory_order_relaxed);
  s.at_exit = g_at_exit.load(std::memory_order_relaxed);
  s.modules_forgotten = g_modules_forgotten.load(std::memory_order_relaxed);
  return s;
}

void count_interrupted_at_exit() noexcept { g_at_exit.fetch_add(1, std::memory_order_relaxed); }

}  // namespace xinterp::python
