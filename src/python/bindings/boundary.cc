#include "bindings/boundary.h"

#include <cmath>

#include "bindings/exceptions.h"

namespace xinterp::python {

PyObject* raise(PyObject* module, const Status& s) {
  switch (s.kind) {
    case ErrorKind::kOk:
      PyErr_SetString(PyExc_SystemError, "xinterp: raise() without an error");
      break;
    case ErrorKind::kNotFound:
      PyErr_SetString(exc_type(module, Exc::kInterpreterNotFound), s.message.c_str());
      break;
    case ErrorKind::kInterpreter:
    case ErrorKind::kExecutionFailed:  // callers turn it into ExecutionFailed first
      PyErr_SetString(exc_type(module, Exc::kInterpreterError), s.message.c_str());
      break;
    case ErrorKind::kNotShareable:
      PyErr_SetString(exc_type(module, Exc::kNotShareable), s.message.c_str());
      break;
    case ErrorKind::kType:
      PyErr_SetString(PyExc_TypeError, s.message.c_str());
      break;
    case ErrorKind::kExiting:
      PyErr_SetString(PyExc_SystemExit, s.message.c_str());
      break;
    case ErrorKind::kPythonSet:
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "xinterp: lost exception");
      break;
  }
  return nullptr;
}

PyObject* excinfo_tuple(const ExcInfo& e) {
  return Py_BuildValue("(s#s#s#s#s#s#)", e.type_name.data(), (Py_ssize_t)e.type_name.size(),
                       e.type_qualname.data(), (Py_ssize_t)e.type_qualname.size(),
                       e.type_module.data(), (Py_ssize_t)e.type_module.size(), e.msg.data(),
                       (Py_ssize_t)e.msg.size(), e.formatted.data(), (Py_ssize_t)e.formatted.size(),
                       e.errdisplay.data(), (Py_ssize_t)e.errdisplay.size());
}

bool parse_id(PyObject* arg, int64_t* id, const char* what) {
  if (!PyLong_Check(arg)) {
    PyErr_Format(PyExc_TypeError, "%s ID must be an int, got %.200s", what, Py_TYPE(arg)->tp_name);
    return false;
  }
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(arg, &overflow);
  if (v == -1 && PyErr_Occurred()) return false;
  if (overflow < 0) {
    PyErr_Format(PyExc_ValueError, "%s ID must be a non-negative int, got one below -2**63", what);
    return false;
  }
  if (overflow > 0) {
    PyErr_Format(PyExc_OverflowError, "%s ID too large (IDs are below 2**63)", what);
    return false;
  }
  if (v < 0) {
    PyErr_Format(PyExc_ValueError, "%s ID must be a non-negative int, got %lld", what, v);
    return false;
  }
  *id = v;
  return true;
}

bool parse_timeout(PyObject* arg, std::optional<std::chrono::nanoseconds>* out) {
  if (arg == nullptr || arg == Py_None) {
    *out = std::nullopt;
    return true;
  }
  if (!PyFloat_Check(arg) && !PyLong_Check(arg)) {
    PyErr_Format(PyExc_TypeError, "timeout must be a number of seconds or None, got %.200s",
                 Py_TYPE(arg)->tp_name);
    return false;
  }
  double seconds = PyFloat_AsDouble(arg);
  if (seconds == -1.0 && PyErr_Occurred()) return false;
  if (std::isnan(seconds) || seconds < 0) {
    PyErr_SetString(PyExc_ValueError, "timeout value must be non-negative");
    return false;
  }
  if (seconds > 1e9) seconds = 1e9;  // ~31 years: "forever" without overflow
  *out = std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9));
  return true;
}

bool parse_params(const char* fn, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                  const char* const* names, int n_params, int n_positional, int n_required,
                  PyObject** out) {
  for (int k = 0; k < n_params; ++k) out[k] = nullptr;
  if (nargs > n_positional) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments (%zd given)", fn,
                 n_positional, nargs);
    return false;
  }
  for (Py_ssize_t k = 0; k < nargs; ++k) out[k] = args[k];
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, k);
    int found = -1;
    for (int j = 0; j < n_params; ++j) {
      if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0) found = j;
    }
    if (found < 0) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fn, key);
      return false;
    }
    if (out[found] != nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn, names[found]);
      return false;
    }
    out[found] = args[nargs + k];
  }
  for (int k = 0; k < n_required; ++k) {
    if (out[k] == nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fn, names[k]);
      return false;
    }
  }
  return true;
}

bool parse_unbound(PyObject* arg, UnboundOp* out) {
  long v = PyLong_AsLong(arg);
  if (v == -1 && PyErr_Occurred()) return false;
  if (v < 1 || v > kUnboundOpCount) {
    PyErr_SetString(PyExc_ValueError,
                    "unbounditems must be UNBOUND, UNBOUND_ERROR or UNBOUND_REMOVE");
    return false;
  }
  *out = static_cast<UnboundOp>(v);
  return true;
}

int parse_bool(PyObject* arg, bool deflt) {
  if (arg == nullptr) return deflt ? 1 : 0;
  return PyObject_IsTrue(arg);
}

}  // namespace xinterp::python
