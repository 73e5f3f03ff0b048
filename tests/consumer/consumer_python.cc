// Uses the installed CPython engine (xinterp::python): embeds CPython, runs Python in a
// sub-interpreter and checks the result. Exits 0 on success, 1 with a message otherwise.
#include <cstdio>
#include <exception>
#include <string>

#include "xinterp/python.h"

namespace xp = xinterp::python;

int main() {
  try {
    xp::Host host;
    xp::Interpreter interp = xp::Interpreter::create();
    interp.exec("def answer():\n    return sum(i * i for i in range(10))\n");
    const xp::Value answer = interp.call("answer");
    if (!std::holds_alternative<int64_t>(answer) || std::get<int64_t>(answer) != 285) {
      std::fprintf(stderr, "consumer_python: FAILED: answer() did not return 285\n");
      return 1;
    }
    const xp::Value version = interp.call("platform.python_version");
    std::printf("consumer_python: ok (CPython %s, interpreter %lld)\n",
                std::get<std::string>(version).c_str(), static_cast<long long>(interp.id()));
    interp.close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer_python: FAILED: %s\n", e.what());
    return 1;
  }
  return 0;
}
