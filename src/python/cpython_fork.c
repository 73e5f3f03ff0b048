/* The one place xinterp reads CPython's internal runtime structures: in a fork child, before
 * CPython's own after-fork cleanup, take every sub-interpreter out of the runtime's list.
 *
 * Why: os.fork() calls fork(), then PyOS_AfterFork_Child(), whose
 * _PyInterpreterState_DeleteExceptMain() clears each sub-interpreter with no thread state of
 * its own; CPython 3.13.0 aborts there and 3.12.1 hangs (see DESIGN.md, contract line 8). A
 * pthread_atfork child handler runs before that cleanup. With the sub-interpreters unlinked, the
 * child keeps only the main interpreter; their memory is simply abandoned in the child (the
 * parent still owns them).
 *
 * C, not C++: CPython's internal headers need Py_BUILD_CORE and do not compile as C++. Checked
 * against the installed internal headers of 3.12 and 3.13 (pycore_runtime.h: struct
 * pyinterpreters { ... head ... main ... }; pycore_interp.h: struct _is { ... next ... }). */
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
