#include "fork_handler.h"

#include <pthread.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "base/fail.h"
#include "base/mutex.h"
#include "xinterp/runtime.h"

namespace xinterp::internal {

namespace {

// Leaked on purpose: a daemon thread may fork or post during static destruction.
Mutex& runtimes_mu() {
  static Mutex* mu = new Mutex;
  return *mu;
}
std::vector<Runtime*>& runtimes() {
  static auto* list = new std::vector<Runtime*>;
  return *list;
}

// Lock in prepare, unlock in parent/child: beyond what the analysis can follow.
void prepare() XI_NO_THREAD_SAFETY_ANALYSIS {
  runtimes_mu().lock();
  for (Runtime* rt : runtimes()) rt->prepare_fork();
}

void parent() XI_NO_THREAD_SAFETY_ANALYSIS {
  auto& list = runtimes();
  for (auto it = list.rbegin(); it != list.rend(); ++it) (*it)->after_fork_parent();
  runtimes_mu().unlock();
}

void child() XI_NO_THREAD_SAFETY_ANALYSIS {
  for (Runtime* rt : runtimes()) rt->after_fork_child();
  runtimes_mu().unlock();
}

}  // namespace

void register_runtime(Runtime* runtime) {
  static std::once_flag once;
  std::call_once(once, [] {
    int rc = pthread_atfork(&prepare, &parent, &child);
    XI_CHECK(rc == 0, "pthread_atfork failed (error %d)", rc);
  });
  MutexLock lock(runtimes_mu());
  runtimes().push_back(runtime);
}

void unregister_runtime(Runtime* runtime) {
  MutexLock lock(runtimes_mu());
  auto& list = runtimes();
  list.erase(std::remove(list.begin(), list.end(), runtime), list.end());
}

}  // namespace xinterp::internal
