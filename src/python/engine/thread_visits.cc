#include "engine/thread_visits.h"

#include "engine/python_engine.h"

namespace xinterp::python {

ThreadVisits::~ThreadVisits() {
  for (const auto& weak : kept_in_) {
    if (std::shared_ptr<InterpRecord> rec = weak.lock())
      PythonEngine::get().thread_ended(*rec, key_);
  }
}

}  // namespace xinterp::python
