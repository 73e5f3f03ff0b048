// xinterp/python.h: running isolated CPython interpreters from C++.
//
// Main types:
//   - Host: the embedded CPython runtime of a C++ program. Construct one (on the main thread)
//     before anything else; its destructor closes every interpreter and finalizes CPython.
//     A program that is itself a Python extension does not use Host.
//   - Interpreter: one isolated interpreter with its own GIL, created with Interpreter::create().
//     exec() runs source in its __main__; call() calls a function by name ("name" in __main__,
//     or "package.module.function") with simple values and returns its result. Both may be used
//     from any C++ thread: attaching a thread state and taking the interpreter's GIL happen
//     inside. The destructor closes the interpreter (errors ignored); close() reports them.
//   - Value: None, bool, int64, double or string (a Python str). Other results are an Error.
//   - Error: what went wrong; for code that raised, type_name() and traceback() carry the
//     Python exception's type and its formatted traceback.
//
// Requirements:
//   - One Host per process, alive while any Interpreter is used.
//   - Calls into one Interpreter do not overlap: one runs at a time (PEP 734); a second raises
//     Error (kind kInterpreter, "interpreter already running"). Different interpreters run in
//     parallel on different threads.
// Threading: every method may be called from any thread, holding no Python GIL.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace xinterp::python {

using Value = std::variant<std::monostate, bool, int64_t, double, std::string>;

class Error : public std::runtime_error {
 public:
  enum class Kind { kInterpreter, kNotFound, kNotShareable, kExecutionFailed, kPython };
  Error(Kind kind, const std::string& what, std::string type_name = {}, std::string traceback = {})
      : std::runtime_error(what),
        kind_(kind),
        type_name_(std::move(type_name)),
        traceback_(std::move(traceback)) {}

  Kind kind() const noexcept { return kind_; }
  const std::string& type_name() const noexcept { return type_name_; }  // e.g. "ZeroDivisionError"
  const std::string& traceback() const noexcept { return traceback_; }  // Python's own display

 private:
  Kind kind_;
  std::string type_name_;
  std::string traceback_;
};

class Host {
 public:
  Host();
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;
};

class Interpreter {
 public:
  static Interpreter create();
  ~Interpreter();
  Interpreter(Interpreter&& other) noexcept : id_(other.id_) { other.id_ = -1; }
  Interpreter& operator=(Interpreter&& other) noexcept;
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  int64_t id() const noexcept { return id_; }
  void exec(std::string_view source) const;
  Value call(std::string_view function, const std::vector<Value>& args = {}) const;
  void close();

 private:
  explicit Interpreter(int64_t id) noexcept : id_(id) {}
  int64_t id_ = -1;
};

}  // namespace xinterp::python
