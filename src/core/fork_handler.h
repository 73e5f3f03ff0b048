// The core's pthread_atfork handlers.
//
// Every live Runtime is listed here. prepare takes the list lock and then, per runtime, the
// housekeeper's and the registry's locks, so that no core lock is held by a thread that the fork
// leaves behind. parent releases them. child releases them too (it is the forking thread, which
// took them) after Runtime::after_fork_child() has closed every owner but the forking thread's.
// The handlers are installed once, when the first Runtime is made.
#pragma once

namespace xinterp {
class Runtime;
}

namespace xinterp::internal {

void register_runtime(Runtime* runtime);
void unregister_runtime(Runtime* runtime);

}  // namespace xinterp::internal
