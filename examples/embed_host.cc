// A C++ program hosting four isolated Python interpreters, one per thread, each running CPU-bound
// Python code in parallel (each has its own GIL). Prints what every thread computed and checks
// it; exits non-zero on any mismatch.
//
//   ./embed_host            4 interpreters, 4 threads
//   ./embed_host N          N of each
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "xinterp/python.h"

namespace xp = xinterp::python;

namespace {

constexpr const char* kSetup = R"py(
def collatz_steps(limit):
    total = 0
    for n in range(1, limit):
        while n != 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            total += 1
    return total

def fail():
    return 1 / 0
)py";

int64_t collatz_steps(int64_t limit) {
  int64_t total = 0;
  for (int64_t start = 1; start < limit; ++start) {
    for (int64_t n = start; n != 1; ++total) n = n % 2 == 0 ? n / 2 : 3 * n + 1;
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  const int workers = argc > 1 ? std::atoi(argv[1]) : 4;
  xp::Host host;
  std::vector<std::string> errors(static_cast<size_t>(workers));
  std::vector<int64_t> results(static_cast<size_t>(workers), -1);
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([w, &errors, &results] {
      try {
        xp::Interpreter interp = xp::Interpreter::create();
        interp.exec(kSetup);
        xp::Value v = interp.call("collatz_steps", {int64_t{20000 + w}});
        results[static_cast<size_t>(w)] = std::get<int64_t>(v);
        // Errors come back as C++ exceptions with the Python traceback.
        try {
          interp.call("fail");
          errors[static_cast<size_t>(w)] = "fail() did not throw";
        } catch (const xp::Error& e) {
          if (e.type_name() != "ZeroDivisionError" ||
              e.traceback().find("in fail") == std::string::npos) {
            errors[static_cast<size_t>(w)] = std::string("unexpected error: ") + e.what();
          }
        }
        // A call by module path, with a str result.
        xp::Value s = interp.call("os.path.join", {std::string("a"), std::string("b")});
        if (std::get<std::string>(s) != "a/b") errors[static_cast<size_t>(w)] = "os.path.join";
        interp.close();
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(w)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  int bad = 0;
  for (int w = 0; w < workers; ++w) {
    const int64_t expected = collatz_steps(20000 + w);
    const bool ok =
        errors[static_cast<size_t>(w)].empty() && results[static_cast<size_t>(w)] == expected;
    std::printf("interpreter %d: collatz_steps(%d) = %lld (expected %lld) %s %s\n", w, 20000 + w,
                static_cast<long long>(results[static_cast<size_t>(w)]),
                static_cast<long long>(expected), ok ? "ok" : "FAILED",
                errors[static_cast<size_t>(w)].c_str());
    bad += ok ? 0 : 1;
  }
  std::printf("%s: %d of %d interpreters correct\n", bad ? "FAILED" : "ok", workers - bad, workers);
  return bad ? 1 : 0;
}
