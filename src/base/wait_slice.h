// The one wait slice: how long a blocked wait goes without looking at what nobody notifies it of
// (a signal to handle, a state that changed without a wake-up). Every sliced wait in xinterp
// uses this constant; waits that can be woken are woken, never polled.
#pragma once

#include <chrono>

namespace xinterp::internal {

inline constexpr std::chrono::nanoseconds kWaitSlice = std::chrono::milliseconds(100);

}  // namespace xinterp::internal
