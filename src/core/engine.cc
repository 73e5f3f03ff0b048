#include "xinterp/engine.h"

#include <sched.h>

namespace xinterp {

void Engine::yield_attached(Owner& /*owner*/) noexcept { sched_yield(); }

}  // namespace xinterp
