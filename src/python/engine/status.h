// Status: how src/python reports an error without a Python exception crossing interpreters.
// Engine functions run code in several interpreters; an exception object belongs to one of them,
// so errors travel as plain C++ data and become a Python exception (module.cc) or a C++
// exception (embed.cc) only in the interpreter or thread that reports them.
#pragma once

#include <string>
#include <utility>

namespace xinterp::python {

enum class ErrorKind {
  kOk,
  kNotFound,         // InterpreterNotFoundError
  kInterpreter,      // InterpreterError
  kNotShareable,     // NotShareableError
  kExecutionFailed,  // ExecutionFailed; `exc` describes the uncaught exception
  kType,             // TypeError (bad argument)
  kPythonSet,        // a Python exception is already set in the caller's interpreter
  kExiting,          // SystemExit: the run was ended by the exit interrupt (shutdown())
};

// A summary of an uncaught exception, captured inside the interpreter that raised it
// (PEP 734's excinfo).
struct ExcInfo {
  std::string type_name;      // type(exc).__name__
  std::string type_qualname;  // type(exc).__qualname__
  std::string type_module;    // type(exc).__module__
  std::string msg;            // str(exc)
  std::string formatted;      // "TypeName: msg" (traceback.format_exception_only)
  std::string errdisplay;     // the full traceback, as Python would print it
};

struct Status {
  ErrorKind kind = ErrorKind::kOk;
  std::string message;
  ExcInfo exc;

  bool ok() const noexcept { return kind == ErrorKind::kOk; }
  static Status error(ErrorKind kind, std::string message) {
    Status s;
    s.kind = kind;
    s.message = std::move(message);
    return s;
  }
  static Status failed(ExcInfo exc) {
    Status s;
    s.kind = ErrorKind::kExecutionFailed;
    s.message = exc.formatted;
    s.exc = std::move(exc);
    return s;
  }
};

}  // namespace xinterp::python
