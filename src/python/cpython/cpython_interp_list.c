/* The one place xinterp reads CPython's internal runtime structures: taking sub-interpreters out
 * of the runtime's list of interpreters, where CPython would otherwise abort on them.
 *
 * 1. In a fork child, before CPython's own after-fork cleanup, every sub-interpreter goes.
 *    os.fork() calls fork(), then PyOS_AfterFork_Child(), whose
 *    _PyInterpreterState_DeleteExceptMain() clears each sub-interpreter with no thread state
 *    of its own; CPython 3.13.0 aborts there and 3.12.1 hangs (DESIGN.md, contract line 8). A
 *    pthread_atfork child handler runs before that cleanup. With the sub-interpreters unlinked,
 *    the child keeps only the main interpreter; their memory is simply abandoned in the child
 *    (the parent still owns them).
 * 2. At exit, an interpreter that a daemon thread is still inside (blocked in C: a sleep, a
 *    lock, a socket, where the SystemExit xinterp raises cannot reach it) cannot be finalized.
 *    CPython 3.12 aborts finalization when any sub-interpreter is left ("remaining
 *    subinterpreters"); 3.13 ends each one itself and aborts on the daemon's thread state ("not
 *    the last thread"). Unlinked, it is left alone and abandoned with the process, like the
 *    daemon thread.
 *
 * C, not C++: CPython's internal headers need Py_BUILD_CORE and do not compile as C++. Checked
 * against the installed internal headers of 3.12 and 3.13 (pycore_runtime.h: struct
 * pyinterpreters { mutex; head; main; ... }; pycore_interp.h: struct _is { ... next ... };
 * the list's lock is a PyThread_type_lock in 3.12 and a PyMutex in 3.13, taken as CPython's
 * HEAD_LOCK in pycore_pystate.h does, through exported functions only). */
#define Py_BUILD_CORE 1
#include <Python.h>

#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"

/* Async-signal-safe: plain pointer writes, no locks (the forking thread is the only thread in
 * the child, and the runtime's lock was held across the fork by nobody we could wait for). */
void xinterp_unlink_subinterpreters_in_fork_child(void) {
  PyInterpreterState* main_interp = _PyRuntime.interpreters.main;
  if (main_interp == NULL) return;
  _PyRuntime.interpreters.head = main_interp;
  main_interp->next = NULL;
}

static void lock_list(void) {
#if PY_VERSION_HEX >= 0x030D0000
  PyMutex_Lock(&_PyRuntime.interpreters.mutex);
#else
  PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK);
#endif
}

static void unlock_list(void) {
#if PY_VERSION_HEX >= 0x030D0000
  PyMutex_Unlock(&_PyRuntime.interpreters.mutex);
#else
  PyThread_release_lock(_PyRuntime.interpreters.mutex);
#endif
}

/* Takes interp out of the list, under the runtime's lock for it. Returns 1 if it was there. */
int xinterp_unlink_interpreter(PyInterpreterState* interp) {
  int found = 0;
  if (interp == NULL || interp == _PyRuntime.interpreters.main) return 0;
  lock_list();
  PyInterpreterState** link = &_PyRuntime.interpreters.head;
  while (*link != NULL) {
    if (*link == interp) {
      *link = interp->next;
      interp->next = NULL;
      found = 1;
      break;
    }
    link = &(*link)->next;
  }
  unlock_list();
  return found;
}

/* 3. Before xinterp ends one of its own interpreters, CPython's _interpreters module must not
 *    find it any more: on 3.13 its exec enters the interpreter (a thread state of its own, the
 *    interpreter's GIL) before it checks the interpreter is marked running, and one such
 *    visitor still inside when Py_EndInterpreter runs aborts it ("not the last thread"). The
 *    interpreter's id is changed to one no caller can ask for (lookups compare it under the
 *    list's lock, and refuse negative ids), then the visitors already under way are waited out.
 *    The change is reversible: id -> -id - 2 (xinterp_original_id). */
void xinterp_retire_interpreter_id(PyInterpreterState* interp) {
  lock_list();
  if (interp->id >= 0) interp->id = -interp->id - 2;
  unlock_list();
}

int64_t xinterp_original_id(int64_t id) { return id < -1 ? -(id + 2) : id; }

/* Thread states of interp other than `own` and its threading module's threads (which
 * Py_EndInterpreter joins itself). 3.12's _xxsubinterpreters checks before it enters: 0. */
int xinterp_count_visitors(PyInterpreterState* interp, PyThreadState* own) {
  int n = 0;
#if PY_VERSION_HEX >= 0x030D0000
  lock_list();
  for (PyThreadState* t = interp->threads.head; t != NULL; t = t->next) {
    if (t != own && t->_whence != _PyThreadState_WHENCE_THREADING) ++n;
  }
  unlock_list();
#else
  (void)interp;
  (void)own;
#endif
  return n;
}
