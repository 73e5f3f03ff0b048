// Test hooks, compiled only into test builds (CMake option XINTERP_TEST_HOOKS, which the test
// command turns on): they reach below the public API to check the engine's guarantees
// directly. A build without them registers nothing, so production never ships them.
#include <Python.h>

#include "bindings/module_state.h"

#ifdef XINTERP_TEST_HOOKS

#include <atomic>
#include <string>

#include "bindings/boundary.h"
#include "cpython/cpython_private.h"
#include "data/shared_buffer.h"
#include "engine/python_engine.h"

namespace xinterp::python {
namespace {

// _post_test_calls(id, kind, n): posts n core pending calls to interpreter `id`. Each checks that
// it runs attached to that interpreter (counted in _test_counters()["wrong_interpreter"]).
// kind "ok" succeeds; kind "fail" raises RuntimeError inside the owner (reported through its
// sys.unraisablehook and counted as failed).

std::atomic<uint64_t> g_test_in_owner{0}, g_test_raw{0}, g_test_wrong{0};

PyObject* mod_post_test_calls(PyObject* module, PyObject* args) {
  long long id;
  const char* kind;
  long long n;
  if (!PyArg_ParseTuple(args, "LsL", &id, &kind, &n)) return nullptr;
  const std::string k = kind;
  if (k != "ok" && k != "fail") {
    PyErr_SetString(PyExc_ValueError, "kind must be 'ok' or 'fail'");
    return nullptr;
  }
  auto rec = PythonEngine::get().find(static_cast<int64_t>(id));
  if (rec == nullptr) {
    return raise(module, Status::error(ErrorKind::kNotFound, "unrecognized interpreter ID"));
  }
  PyInterpreterState* expected = rec->interp;
  const bool fail = k == "fail";
  for (long long i = 0; i < n; ++i) {
    rec->owner->post([expected, fail](RunMode mode) -> bool {
      if (mode == RunMode::kRaw) {
        g_test_raw.fetch_add(1);
        return true;
      }
      PyThreadState* ts = cpy::current_tstate();
      if (ts == nullptr || PyThreadState_GetInterpreter(ts) != expected) {
        g_test_wrong.fetch_add(1);
        return false;
      }
      g_test_in_owner.fetch_add(1);
      if (fail) {
        PyErr_SetString(PyExc_RuntimeError, "xinterp test call failed on purpose");
        return false;
      }
      return true;
    });
  }
  Py_RETURN_NONE;
}

PyObject* mod_test_counters(PyObject*, PyObject*) {
  return Py_BuildValue("{sKsKsK}", "in_owner", (unsigned long long)g_test_in_owner.load(), "raw",
                       (unsigned long long)g_test_raw.load(), "wrong_interpreter",
                       (unsigned long long)g_test_wrong.load());
}

// _check_view_affinity(view): runs the owner-affinity check of the borrow behind a memoryview
// lent by another interpreter, from the calling thread. In a debug-checks build, called outside
// the owner, it aborts the process naming both interpreters; otherwise it does nothing.
PyObject* mod_check_view_affinity(PyObject* module, PyObject* view) {
  auto* type = reinterpret_cast<PyTypeObject*>(state_of(module)->shared_buffer_type);
  const std::shared_ptr<BufferBorrow>* borrow = borrow_of_view(view, type);
  if (borrow == nullptr) {
    PyErr_SetString(PyExc_TypeError, "expected a memoryview lent by another interpreter");
    return nullptr;
  }
  (*borrow)->check_in_owner();
  Py_RETURN_NONE;
}

PyMethodDef kMethods[] = {
    {"_check_view_affinity", mod_check_view_affinity, METH_O, "test hook"},
    {"_post_test_calls", mod_post_test_calls, METH_VARARGS, "test hook"},
    {"_test_counters", mod_test_counters, METH_NOARGS, "test hook"},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int add_test_hooks(PyObject* module) {
  if (PyModule_AddIntConstant(module, "_TEST_HOOKS", 1) < 0) return -1;
  return PyModule_AddFunctions(module, kMethods);
}

}  // namespace xinterp::python

#else  // !XINTERP_TEST_HOOKS

namespace xinterp::python {
int add_test_hooks(PyObject* module) { return PyModule_AddIntConstant(module, "_TEST_HOOKS", 0); }
}  // namespace xinterp::python

#endif
