// The C++ embedding API (include/xinterp/python.h) over PythonEngine.
#include <Python.h>

#include "data/xidata.h"
#include "engine/python_engine.h"
#include "objects/execution.h"
#include "xinterp/python.h"

namespace xinterp::python {
namespace {

[[noreturn]] void throw_status(const Status& s) {
  switch (s.kind) {
    case ErrorKind::kNotFound:
      throw Error(Error::Kind::kNotFound, s.message);
    case ErrorKind::kNotShareable:
      throw Error(Error::Kind::kNotShareable, s.message);
    case ErrorKind::kExecutionFailed:
      throw Error(Error::Kind::kExecutionFailed, s.exc.formatted, s.exc.type_name,
                  s.exc.errdisplay);
    case ErrorKind::kInterpreter:
      throw Error(Error::Kind::kInterpreter, s.message);
    default:
      throw Error(Error::Kind::kPython, s.message.empty() ? "Python error" : s.message);
  }
}

XValue to_xvalue(const Value& v) {
  XValue x;
  if (std::holds_alternative<bool>(v)) {
    x.kind = XValue::Kind::kBool;
    x.b = std::get<bool>(v);
  } else if (std::holds_alternative<int64_t>(v)) {
    x.kind = XValue::Kind::kInt;
    x.i = std::get<int64_t>(v);
  } else if (std::holds_alternative<double>(v)) {
    x.kind = XValue::Kind::kFloat;
    x.f = std::get<double>(v);
  } else if (std::holds_alternative<std::string>(v)) {
    x.kind = XValue::Kind::kStr;
    x.data = std::get<std::string>(v);
  }
  return x;
}

// Resolves "name" in __main__ or "pkg.module.attr" by import. New reference or nullptr.
PyObject* resolve(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos) {
    PyObject* main = PyImport_AddModule("__main__");
    PyObject* fn = main ? PyObject_GetAttrString(main, name.c_str()) : nullptr;
    return fn;
  }
  PyObject* mod = PyImport_ImportModule(name.substr(0, dot).c_str());
  if (mod == nullptr) return nullptr;
  PyObject* fn = PyObject_GetAttrString(mod, name.c_str() + dot + 1);
  Py_DECREF(mod);
  return fn;
}

}  // namespace

Host::Host() {
  if (!Py_IsInitialized()) {
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
      throw Error(Error::Kind::kPython, std::string("Python initialization failed: ") +
                                            (st.err_msg ? st.err_msg : "unknown"));
    }
  }
  Status s;
  PythonEngine::get().register_current(&s);  // the main interpreter becomes a core owner
  if (!s.ok()) throw_status(s);
  PyEval_SaveThread();  // the main GIL is free for other threads from here on
}

Host::~Host() {
  PyGILState_Ensure();  // the main thread's own thread state, saved by the constructor
  PythonEngine::get().shutdown();
  Py_FinalizeEx();
}

Interpreter Interpreter::create() {
  int64_t id = -1;
  Status s = PythonEngine::get().create(&id);
  if (!s.ok()) throw_status(s);
  return Interpreter(id);
}

Interpreter& Interpreter::operator=(Interpreter&& other) noexcept {
  if (this != &other) {
    if (id_ >= 0) (void)PythonEngine::get().close(id_);
    id_ = other.id_;
    other.id_ = -1;
  }
  return *this;
}

Interpreter::~Interpreter() {
  if (id_ >= 0) (void)PythonEngine::get().close(id_);
}

void Interpreter::close() {
  if (id_ < 0) throw Error(Error::Kind::kNotFound, "interpreter already closed");
  Status s = PythonEngine::get().close(id_);
  id_ = -1;
  if (!s.ok()) throw_status(s);
}

void Interpreter::exec(std::string_view source) const {
  Status s = exec_source_in(id_, std::string(source));
  if (!s.ok()) throw_status(s);
}

Value Interpreter::call(std::string_view function, const std::vector<Value>& args) const {
  const std::string name(function);
  XValue result;
  Status s = PythonEngine::get().run(id_, [&]() -> Status {
    PyObject* fn = resolve(name);
    if (fn == nullptr) return Status::failed(capture_exception());
    PyObject* tuple = PyTuple_New(static_cast<Py_ssize_t>(args.size()));
    for (size_t k = 0; tuple != nullptr && k < args.size(); ++k) {
      PyObject* item = decode(to_xvalue(args[k]));
      if (item == nullptr) {
        Py_CLEAR(tuple);
        break;
      }
      PyTuple_SET_ITEM(tuple, static_cast<Py_ssize_t>(k), item);
    }
    PyObject* ret = tuple ? PyObject_Call(fn, tuple, nullptr) : nullptr;
    Py_DECREF(fn);
    Py_XDECREF(tuple);
    if (ret == nullptr) return Status::failed(capture_exception());
    Status enc = encode(ret, Fallback::kNone, &result);
    Py_DECREF(ret);
    if (enc.kind == ErrorKind::kPythonSet) return Status::failed(capture_exception());
    return enc;
  });
  if (!s.ok()) throw_status(s);
  switch (result.kind) {
    case XValue::Kind::kNone:
      return std::monostate{};
    case XValue::Kind::kBool:
      return result.b;
    case XValue::Kind::kInt:
      return result.i;
    case XValue::Kind::kFloat:
      return result.f;
    case XValue::Kind::kStr:
      return result.data;
    default:
      throw Error(Error::Kind::kNotShareable,
                  "the result of " + name + " is not None, bool, a 64-bit int, float or str");
  }
}

}  // namespace xinterp::python
