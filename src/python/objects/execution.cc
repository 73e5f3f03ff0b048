#include "objects/execution.h"

#include <marshal.h>

#include <cstring>

#include "data/main_module_transport.h"
#include "engine/python_engine.h"
#include "engine/run_interrupt.h"

namespace xinterp::python {
namespace {

std::string to_std_string(PyObject* obj) {
  if (obj == nullptr) return {};
  PyObject* text = PyUnicode_Check(obj) ? Py_NewRef(obj) : PyObject_Str(obj);
  std::string out;
  if (text != nullptr) {
    Py_ssize_t n = 0;
    if (const char* s = PyUnicode_AsUTF8AndSize(text, &n)) out.assign(s, static_cast<size_t>(n));
    Py_DECREF(text);
  }
  PyErr_Clear();
  return out;
}

std::string attr_string(PyObject* obj, const char* name) {
  PyObject* v = PyObject_GetAttrString(obj, name);
  std::string out = to_std_string(v);
  Py_XDECREF(v);
  PyErr_Clear();
  return out;
}

// ''.join(traceback.<fn>(exc))
std::string format_with_traceback(const char* fn, PyObject* exc) {
  PyObject* mod = PyImport_ImportModule("traceback");
  PyObject* lines = mod ? PyObject_CallMethod(mod, fn, "O", exc) : nullptr;
  Py_XDECREF(mod);
  PyObject* empty = lines ? PyUnicode_FromString("") : nullptr;
  PyObject* joined = empty ? PyUnicode_Join(empty, lines) : nullptr;
  Py_XDECREF(empty);
  Py_XDECREF(lines);
  std::string out = joined ? to_std_string(joined) : std::string();
  Py_XDECREF(joined);
  PyErr_Clear();
  return out;
}

PyObject* main_dict() {
  PyObject* main = PyImport_AddModule("__main__");  // borrowed
  return main ? PyModule_GetDict(main) : nullptr;
}

Status failed_here() { return Status::failed(capture_exception()); }

}  // namespace

ExcInfo capture_exception() {
  ExcInfo info;
  PyObject* exc = PyErr_GetRaisedException();
  if (exc == nullptr) {
    info.type_name = info.type_qualname = "SystemError";
    info.type_module = "builtins";
    info.msg = "error return without exception set";
    info.formatted = "SystemError: " + info.msg;
    return info;
  }
  PyObject* type = reinterpret_cast<PyObject*>(Py_TYPE(exc));
  info.type_name = attr_string(type, "__name__");
  info.type_qualname = attr_string(type, "__qualname__");
  info.type_module = attr_string(type, "__module__");
  info.msg = to_std_string(exc);
  info.formatted = format_with_traceback("format_exception_only", exc);
  while (!info.formatted.empty() && info.formatted.back() == '\n') info.formatted.pop_back();
  if (info.formatted.empty()) {
    info.formatted = info.msg.empty() ? info.type_name : info.type_name + ": " + info.msg;
  }
  info.errdisplay = format_with_traceback("format_exception", exc);
  // As CPython's excinfo: no trailing newline (ExecutionFailed's text ends with it otherwise
  // followed by a blank line).
  while (!info.errdisplay.empty() && info.errdisplay.back() == '\n') info.errdisplay.pop_back();
  Py_DECREF(exc);
  PyErr_Clear();
  return info;
}

Status prepare_exec(PyObject* code, XValue* out) {
  if (PyUnicode_Check(code)) {
    // As CPython's exec(): lone surrogates raise UnicodeEncodeError, NUL a ValueError, here in
    // the caller (the source would otherwise be cut at the NUL). str subclasses are accepted.
    Py_ssize_t n = 0;
    const char* text = PyUnicode_AsUTF8AndSize(code, &n);
    if (text == nullptr) return Status::error(ErrorKind::kPythonSet, "");
    if (std::strlen(text) != static_cast<size_t>(n)) {
      PyErr_SetString(PyExc_ValueError, "source code string cannot contain null bytes");
      return Status::error(ErrorKind::kPythonSet, "");
    }
    *out = XValue();
    out->kind = XValue::Kind::kStr;
    out->data.assign(text, static_cast<size_t>(n));
    return Status();
  }
  PyObject* code_obj = nullptr;
  if (PyFunction_Check(code)) {
    PyObject* closure = PyFunction_GetClosure(code);
    if (closure != nullptr && closure != Py_None) {
      PyErr_SetString(PyExc_ValueError, "exec() cannot run a function with a closure");
      return Status::error(ErrorKind::kPythonSet, "");
    }
    code_obj = PyFunction_GetCode(code);
  } else if (PyCode_Check(code)) {
    code_obj = code;
  } else {
    PyErr_Format(PyExc_TypeError, "exec() expects a str, a function or a code object, got %.200s",
                 Py_TYPE(code)->tp_name);
    return Status::error(ErrorKind::kPythonSet, "");
  }
  // Code with free variables needs a closure that cannot be sent: CPython's exec() refuses it
  // too (evaluating it without one would read cells that do not exist).
  PyObject* freevars = PyObject_GetAttrString(code_obj, "co_freevars");
  if (freevars == nullptr) return Status::error(ErrorKind::kPythonSet, "");
  const Py_ssize_t n_freevars = PyTuple_Check(freevars) ? PyTuple_GET_SIZE(freevars) : 0;
  Py_DECREF(freevars);
  if (n_freevars != 0) {
    PyErr_SetString(PyExc_ValueError, "exec() cannot run code with free variables (a closure)");
    return Status::error(ErrorKind::kPythonSet, "");
  }
  PyObject* argcount = PyObject_GetAttrString(code_obj, "co_argcount");
  PyObject* kwonly = PyObject_GetAttrString(code_obj, "co_kwonlyargcount");
  PyObject* flags = PyObject_GetAttrString(code_obj, "co_flags");
  const long n_args = argcount ? PyLong_AsLong(argcount) : -1;
  const long n_kwonly = kwonly ? PyLong_AsLong(kwonly) : -1;
  const long co_flags = flags ? PyLong_AsLong(flags) : -1;
  Py_XDECREF(argcount);
  Py_XDECREF(kwonly);
  Py_XDECREF(flags);
  if (PyErr_Occurred()) return Status::error(ErrorKind::kPythonSet, "");
  constexpr long kVarArgs = 0x4, kVarKeywords = 0x8;  // CO_VARARGS, CO_VARKEYWORDS
  if (n_args != 0 || n_kwonly != 0 || (co_flags & (kVarArgs | kVarKeywords)) != 0) {
    PyErr_SetString(PyExc_ValueError, "exec() can only run a function that takes no arguments");
    return Status::error(ErrorKind::kPythonSet, "");
  }
  // Its body would not run: evaluating it only makes a generator or coroutine object.
  constexpr long kLazy = 0x20 | 0x80 | 0x100 | 0x200;  // CO_GENERATOR, CO_COROUTINE,
                                                       // CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR
  if ((co_flags & kLazy) != 0) {
    PyErr_SetString(PyExc_ValueError,
                    "exec() cannot run a generator or coroutine function (its body would not run)");
    return Status::error(ErrorKind::kPythonSet, "");
  }
  PyObject* bytes = PyMarshal_WriteObjectToString(code_obj, Py_MARSHAL_VERSION);
  if (bytes == nullptr) return Status::error(ErrorKind::kPythonSet, "");
  *out = XValue();
  out->kind = XValue::Kind::kFunction;  // code only: items stay empty
  out->data.assign(PyBytes_AS_STRING(bytes), static_cast<size_t>(PyBytes_GET_SIZE(bytes)));
  Py_DECREF(bytes);
  return Status();
}

Status exec_in(int64_t py_id, const XValue& code) {
  return PythonEngine::get().run(py_id, [&]() -> Status {
    PyObject* globals = main_dict();
    if (globals == nullptr) return failed_here();
    PyObject* result = nullptr;
    if (code.kind == XValue::Kind::kStr) {
      result = PyRun_StringFlags(code.data.c_str(), Py_file_input, globals, globals, nullptr);
    } else {
      PyObject* code_obj = PyMarshal_ReadObjectFromString(
          code.data.data(), static_cast<Py_ssize_t>(code.data.size()));
      if (code_obj == nullptr) return failed_here();
      result = PyEval_EvalCode(code_obj, globals, globals);
      Py_DECREF(code_obj);
    }
    if (result == nullptr) return failed_here();
    Py_DECREF(result);
    return Status();
  });
}

Status exec_source_in(int64_t py_id, const std::string& source) {
  XValue code;
  code.kind = XValue::Kind::kStr;
  code.data = source;
  return exec_in(py_id, code);
}

Status prepare_call(PyObject* callable, PyObject* args, PyObject* kwargs,
                    std::vector<XValue>* out) {
  if (!PyCallable_Check(callable)) {
    PyErr_Format(PyExc_TypeError, "expected a callable, got %.200s", Py_TYPE(callable)->tp_name);
    return Status::error(ErrorKind::kPythonSet, "");
  }
  // [0] callable, [1] kwargs (None when empty), [2...] the positional arguments, each with its
  // own fallback so that one unpicklable-by-reference function among them still travels.
  const Py_ssize_t n_args = args ? PyTuple_GET_SIZE(args) : 0;
  out->clear();
  out->resize(static_cast<size_t>(2 + n_args));
  Status s = encode(callable, Fallback::kFull, &(*out)[0]);
  if (s.ok() && kwargs != nullptr && PyDict_GET_SIZE(kwargs) > 0) {
    s = encode(kwargs, Fallback::kFull, &(*out)[1]);
  }
  for (Py_ssize_t k = 0; s.ok() && k < n_args; ++k) {
    s = encode(PyTuple_GET_ITEM(args, k), Fallback::kFull, &(*out)[static_cast<size_t>(2 + k)]);
  }
  return s;
}

namespace {

// A value of the call that the target cannot rebuild (pickle.loads failed there): as 3.14,
// NotShareableError in the caller ("func not shareable", "args not shareable"), with the cause.
Status not_rebuilt(const char* what) {
  // Interrupted while rebuilding (an import runs bytecode): the interrupt's exception, as if
  // the call had begun.
  if (interrupt_taken_here()) return failed_here();
  ExcInfo cause = capture_exception();
  return Status::error(ErrorKind::kNotShareable,
                       std::string(what) + " not shareable: " + cause.formatted);
}

// Whether fn may read its caller's frame, so that call() must give it one of __main__: not a
// Python function or method (it runs a frame of its own), a class, or a C function other than
// the builtins that read the frame (eval, exec, globals, locals, vars, dir); a
// functools.partial or other callable object might wrap one of those.
bool needs_main_frame(PyObject* fn) {
  if (PyMethod_Check(fn)) fn = PyMethod_GET_FUNCTION(fn);
  if (PyFunction_Check(fn) || PyType_Check(fn)) return false;
  if (!PyCFunction_Check(fn)) return true;
  PyObject* self = PyCFunction_GET_SELF(fn);
  if (self == nullptr || !PyModule_Check(self)) return false;
  const char* module = PyModule_GetName(self);
  if (module == nullptr) {
    PyErr_Clear();
    return false;
  }
  if (std::strcmp(module, "builtins") != 0) return false;
  const char* name = reinterpret_cast<PyCFunctionObject*>(fn)->m_ml->ml_name;
  for (const char* reader : {"eval", "exec", "globals", "locals", "vars", "dir"}) {
    if (std::strcmp(name, reader) == 0) return true;
  }
  return false;
}

}  // namespace

Status call_in(int64_t py_id, const std::vector<XValue>& call, XValue* result) {
  Status result_error;
  Status s = PythonEngine::get().run(py_id, [&]() -> Status {
    PyObject* fn = decode(call[0]);
    if (fn == nullptr) return not_rebuilt("func");
    PyObject* args = PyTuple_New(static_cast<Py_ssize_t>(call.size() - 2));
    if (args == nullptr) {
      Py_DECREF(fn);
      return failed_here();
    }
    PyObject* kwargs = nullptr;
    if (call[1].kind != XValue::Kind::kNone) {
      kwargs = decode(call[1]);
      if (kwargs == nullptr) {
        Py_DECREF(fn);
        Py_DECREF(args);
        return not_rebuilt("kwargs");
      }
    }
    for (size_t k = 2; k < call.size(); ++k) {
      PyObject* item = decode(call[k]);
      if (item == nullptr) {
        Py_DECREF(fn);
        Py_DECREF(args);
        Py_XDECREF(kwargs);
        return not_rebuilt("args");
      }
      PyTuple_SET_ITEM(args, static_cast<Py_ssize_t>(k - 2), item);
    }
    // A builtin reading its caller's frame (eval, dir, ...) gets one of __main__, as 3.14
    // resolves it there.
    PyObject* ret = needs_main_frame(fn) ? call_from_main_frame(fn, args, kwargs)
                                         : PyObject_Call(fn, args, kwargs);
    Py_DECREF(fn);
    Py_DECREF(args);
    Py_XDECREF(kwargs);
    if (ret == nullptr) return failed_here();
    Status enc = encode(ret, Fallback::kFull, result);
    Py_DECREF(ret);
    if (enc.kind == ErrorKind::kPythonSet) return failed_here();
    if (!enc.ok()) result_error = enc;  // reported in the caller as NotShareableError
    return Status();
  });
  if (s.ok() && !result_error.ok()) {
    result_error.message = "the call's result cannot be returned: " + result_error.message;
    return result_error;
  }
  return s;
}

Status prepare_namespace(PyObject* ns, std::vector<std::pair<std::string, XValue>>* out) {
  if (!PyDict_Check(ns)) {
    PyErr_SetString(PyExc_TypeError, "expected a dict of names to values");
    return Status::error(ErrorKind::kPythonSet, "");
  }
  if (PyDict_GET_SIZE(ns) == 0) {
    PyErr_SetString(PyExc_ValueError, "prepare_main() needs at least one name to bind");
    return Status::error(ErrorKind::kPythonSet, "");
  }
  PyObject* key;
  PyObject* value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(ns, &pos, &key, &value)) {
    if (!PyUnicode_Check(key)) {
      PyErr_SetString(PyExc_TypeError, "names must be str");
      return Status::error(ErrorKind::kPythonSet, "");
    }
    Py_ssize_t size;
    const char* name = PyUnicode_AsUTF8AndSize(key, &size);
    if (name == nullptr) return Status::error(ErrorKind::kPythonSet, "");
    // The name travels as UTF-8; one with a NUL would be cut short there (and bind another name).
    if (std::strlen(name) != static_cast<size_t>(size)) {
      PyErr_Format(PyExc_ValueError, "names must not contain NUL characters, got %R", key);
      return Status::error(ErrorKind::kPythonSet, "");
    }
    out->emplace_back(std::string(name, static_cast<size_t>(size)), XValue());
    // Natively shareable values only: 3.14 pickles nothing here.
    Status s = encode(value, Fallback::kNone, &out->back().second);
    if (!s.ok()) return s;
  }
  return Status();
}

Status set_main_attrs_in(int64_t py_id, const std::vector<std::pair<std::string, XValue>>& ns) {
  return PythonEngine::get().run(py_id, [&]() -> Status {
    PyObject* globals = main_dict();
    if (globals == nullptr) return failed_here();
    // Every value is made before any is bound: a failure binds nothing.
    PyObject* values = PyList_New(0);
    if (values == nullptr) return failed_here();
    for (const auto& entry : ns) {
      PyObject* obj = decode(entry.second);
      const int r = obj != nullptr ? PyList_Append(values, obj) : -1;
      Py_XDECREF(obj);
      if (r < 0) {
        Py_DECREF(values);
        return failed_here();
      }
    }
    for (size_t k = 0; k < ns.size(); ++k) {
      PyObject* obj = PyList_GET_ITEM(values, static_cast<Py_ssize_t>(k));
      if (PyDict_SetItemString(globals, ns[k].first.c_str(), obj) < 0) {
        Py_DECREF(values);
        return failed_here();
      }
    }
    Py_DECREF(values);
    return Status();
  });
}

}  // namespace xinterp::python
