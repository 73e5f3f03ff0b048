#include "cpython/cpython_private.h"

#include <opcode.h>  // LOAD_GLOBAL, EXTENDED_ARG: this version's opcode numbers

#if PY_VERSION_HEX < 0x030C0000
#error "xinterp needs CPython 3.12 or newer (per-interpreter GIL)"
#endif

// Private symbols, declared here rather than by including CPython's internal headers (they need
// Py_BUILD_CORE and do not compile as C++). Each declaration matches the installed internal header
// of its version: python3.12/internal/pycore_ceval.h and python3.13/internal/pycore_ceval.h.
extern "C" {
#if PY_VERSION_HEX < 0x030D0000
// 3.12: int _PyEval_AddPendingCall(PyInterpreterState*, int (*)(void*), void*, int mainthreadonly)
PyAPI_FUNC(int) _PyEval_AddPendingCall(PyInterpreterState* interp, int (*func)(void*), void* arg,
                                       int mainthreadonly);
#else
// 3.13: _Py_add_pending_call_result (an int: 0 success, -1 full)
//       _PyEval_AddPendingCall(PyInterpreterState*, _Py_pending_call_func, void*, int flags)
PyAPI_FUNC(int)
    _PyEval_AddPendingCall(PyInterpreterState* interp, int (*func)(void*), void* arg, int flags);
// python3.13/internal/pycore_interp.h
PyAPI_FUNC(long) _PyInterpreterState_GetWhence(PyInterpreterState* interp);
#endif
}

// python3.12/internal/pycore_pystate.h and python3.13/internal/pycore_pystate.h (the same in
// both): exported for CPython's _interpreters (_xxsubinterpreters) module.
extern "C" {
PyAPI_FUNC(int) _PyInterpreterState_SetRunningMain(PyInterpreterState* interp);
PyAPI_FUNC(void) _PyInterpreterState_SetNotRunningMain(PyInterpreterState* interp);
// python3.12/internal/pycore_interp.h and python3.13/internal/pycore_interp.h.
PyAPI_FUNC(int) _PyInterpreterState_IDIncref(PyInterpreterState* interp);
}

// cpython_interp_list.c (C: CPython's internal headers do not compile as C++).
extern "C" void xinterp_unlink_subinterpreters_in_fork_child(void);
extern "C" int xinterp_unlink_interpreter(PyInterpreterState* interp);
extern "C" void xinterp_retire_interpreter_id(PyInterpreterState* interp);
extern "C" int64_t xinterp_original_id(int64_t id);
extern "C" int xinterp_count_visitors(PyInterpreterState* interp, PyThreadState* own);

namespace xinterp::python::cpy {

PyThreadState* current_tstate() noexcept {
#if PY_VERSION_HEX < 0x030D0000
  return _PyThreadState_UncheckedGet();
#else
  return PyThreadState_GetUnchecked();
#endif
}

bool add_pending_call(PyInterpreterState* interp, PendingFunc func, void* arg) noexcept {
  // 3.12's last argument is "mainthreadonly" and 3.13's is a flags word whose bit 0 means the
  // same; 0 in both lets any thread of the interpreter run the call.
  return _PyEval_AddPendingCall(interp, func, arg, 0) == 0;
}

// PyThreadState::async_exc is a field of the public (non-limited) struct in 3.12 and 3.13
// (Include/cpython/pystate.h); CPython reads and clears it under the GIL at the eval breaker,
// and tolerates finding it cleared while its eval-breaker bit is still set.
bool has_async_exc(PyThreadState* ts) noexcept { return ts != nullptr && ts->async_exc != nullptr; }

bool take_async_exc(PyThreadState* ts) noexcept {
  if (ts == nullptr || ts->async_exc == nullptr) return false;
  PyObject* exc = ts->async_exc;
  ts->async_exc = nullptr;
  Py_DECREF(exc);
  return true;
}

bool runtime_finalizing() noexcept {
#if PY_VERSION_HEX < 0x030D0000
  return _Py_IsFinalizing() != 0;
#else
  return Py_IsFinalizing() != 0;
#endif
}

void write_unraisable(const char* context) noexcept {
#if PY_VERSION_HEX < 0x030D0000
  // Prints "Exception ignored <context>".
  _PyErr_WriteUnraisableMsg(context, nullptr);
#else
  PyErr_FormatUnraisable("Exception ignored %s", context);
#endif
}

long whence(PyInterpreterState* interp) noexcept {
#if PY_VERSION_HEX < 0x030D0000
  (void)interp;
  return -1;
#else
  return _PyInterpreterState_GetWhence(interp);
#endif
}

bool at_interpreter_exit(void (*func)(void*), void* data) noexcept {
#if PY_VERSION_HEX < 0x030D0000
  return _Py_AtExit(PyInterpreterState_Get(), func, data) == 0;
#else
  return PyUnstable_AtExit(PyInterpreterState_Get(), func, data) == 0;
#endif
}

bool mark_running_main() noexcept {
  if (_PyInterpreterState_SetRunningMain(PyInterpreterState_Get()) == 0) return true;
  PyErr_Clear();
  return false;
}

bool hold_id_ref() noexcept {
  if (_PyInterpreterState_IDIncref(PyInterpreterState_Get()) == 0) return true;
  PyErr_Clear();
  return false;
}

void clear_running_main() noexcept {
  _PyInterpreterState_SetNotRunningMain(PyInterpreterState_Get());
}

void unlink_subinterpreters_in_fork_child() noexcept {
  xinterp_unlink_subinterpreters_in_fork_child();
}

bool unlink_interpreter(PyInterpreterState* interp) noexcept {
  return xinterp_unlink_interpreter(interp) != 0;
}

}  // namespace xinterp::python::cpy

namespace xinterp::python::cpy {

void retire_interpreter_id(PyInterpreterState* interp) noexcept {
  xinterp_retire_interpreter_id(interp);
}

int64_t interpreter_id(PyInterpreterState* interp) noexcept {
  return xinterp_original_id(PyInterpreterState_GetID(interp));
}

bool memoryview_released(PyObject* view) noexcept {
  // The flag lives in the (non-limited, same on 3.12 and 3.13) PyMemoryViewObject.
  return (reinterpret_cast<PyMemoryViewObject*>(view)->flags & _Py_MEMORYVIEW_RELEASED) != 0;
}

int count_visitors(PyInterpreterState* interp, PyThreadState* own) noexcept {
  return xinterp_count_visitors(interp, own);
}

PyObject* global_names_read(PyObject* code) noexcept {
  if (!PyCode_Check(code)) {
    PyErr_SetString(PyExc_TypeError, "expected a code object");
    return nullptr;
  }
  // co_code is the unspecialized bytecode, its inline caches zeroed (CACHE, opcode 0): 2-byte
  // units, EXTENDED_ARG prefixes widening the next oparg; LOAD_GLOBAL's oparg >> 1 indexes
  // co_names on 3.12 and 3.13.
  PyObject* raw = PyCode_GetCode(reinterpret_cast<PyCodeObject*>(code));
  if (raw == nullptr) return nullptr;
  PyObject* names = PyList_New(0);
  PyObject* co_names = reinterpret_cast<PyCodeObject*>(code)->co_names;
  const auto* b = reinterpret_cast<const unsigned char*>(PyBytes_AS_STRING(raw));
  const Py_ssize_t n = PyBytes_GET_SIZE(raw);
  unsigned long ext = 0;
  for (Py_ssize_t i = 0; names != nullptr && i + 1 < n; i += 2) {
    const unsigned long arg = ext | b[i + 1];
    if (b[i] == EXTENDED_ARG) {
      ext = arg << 8;
      continue;
    }
    ext = 0;
    if (b[i] != LOAD_GLOBAL) continue;
    const auto index = static_cast<Py_ssize_t>(arg >> 1);
    if (index >= PyTuple_GET_SIZE(co_names) ||
        PyList_Append(names, PyTuple_GET_ITEM(co_names, index)) < 0) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "xinterp: bad LOAD_GLOBAL");
      Py_CLEAR(names);
    }
  }
  Py_DECREF(raw);
  return names;
}

}  // namespace xinterp::python::cpy
