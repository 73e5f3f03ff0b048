// EngineListener: what the engine tells the layers above it (queues, channels) about
// interpreters closing, the process exiting and fork, without depending on them.
//
// Requirements:
//   - A listener is registered once (PythonEngine::add_listener) and lives for the rest of the
//     process (listeners are singletons, leaked on purpose like the engine).
//   - The fork hooks take and release only the listener's own leaf locks: they run inside the
//     engine's pthread_atfork handlers with the engine's lock held.
// Threading: interpreter_closing() and shutdown() are called without any engine lock held, from
// the thread that closes (it may hold no GIL); the fork hooks from the forking thread.
#pragma once

#include <cstdint>

namespace xinterp::python {

class EngineListener {
 public:
  // Interpreter `py_id` is closing (or, for one xinterp did not create, going away): values it
  // lent that are still held follow their policy before it ends.
  virtual void interpreter_closing(int64_t py_id) = 0;
  // The process is exiting: every blocked wait must return.
  virtual void shutdown() = 0;
  virtual void before_fork() = 0;
  virtual void after_fork_parent() = 0;
  virtual void after_fork_child() = 0;

 protected:
  ~EngineListener() = default;
};

}  // namespace xinterp::python
