// PendingCall: a function queued to run inside one owner (interpreter), and the node that carries
// it through the owner's queue.
//
// A PendingCall is intrusive: the node is the caller's own memory (typically a member of a release
// record), so posting it never allocates. make_pending_call() wraps any callable in a heap node
// for callers that do not have a record of their own.
//
// Each call runs exactly once, in one of two modes:
//   - RunMode::kInOwner: on a thread attached to the owner; engine code may run.
//   - RunMode::kRaw: the owner is closed (or was never found); the call must do engine-free
//     cleanup only (free C++ memory, never touch the dead interpreter's objects).
// The call function owns the node from the moment it is entered: it may delete it, reuse it or
// post it again. It returns false (or throws) to report failure; failures are counted in the
// owner's stats and reported to the engine, never propagated to whoever happened to run the call.
//
// Threading: a node may be posted by any thread and must not be posted again until its call has
// been entered. Memory ordering: everything the poster wrote before post() happens-before the
// call function runs.
#pragma once

#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace xinterp {

class Owner;

enum class RunMode : uint8_t {
  kInOwner,  // attached to the owner
  kRaw,      // owner gone: engine-free cleanup only
};

struct PendingCall {
  using Fn = bool (*)(PendingCall* self, RunMode mode);

  explicit PendingCall(Fn fn) noexcept : fn_(fn) {}

  Fn fn_;
  PendingCall* next_ = nullptr;       // queue link; written by the poster before publication
  PendingCall* fifo_next_ = nullptr;  // drain order, written by the drainer (next_ stays intact)
  Owner* deferred_owner_ = nullptr;   // set only while parked on the housekeeper's raw list
};

namespace internal {

template <class F>
struct HeapCall final : PendingCall {
  explicit HeapCall(F&& f) : PendingCall(&HeapCall::invoke), f_(std::forward<F>(f)) {}
  explicit HeapCall(const F& f) : PendingCall(&HeapCall::invoke), f_(f) {}

  static bool invoke(PendingCall* self, RunMode mode) {
    // Deleted on every path, including a throwing callable.
    struct Deleter {
      HeapCall* p;
      ~Deleter() { delete p; }
    } del{static_cast<HeapCall*>(self)};
    F& f = del.p->f_;
    if constexpr (std::is_invocable_v<F&, RunMode>) {
      if constexpr (std::is_same_v<std::invoke_result_t<F&, RunMode>, bool>) {
        return f(mode);
      } else {
        f(mode);
        return true;
      }
    } else {
      // A callable that cannot be told it runs raw is simply not run for a dead owner: only its
      // captured state is destroyed (engine-free cleanup).
      if (mode == RunMode::kRaw) return true;
      if constexpr (std::is_same_v<std::invoke_result_t<F&>, bool>) {
        return f();
      } else {
        f();
        return true;
      }
    }
  }

  F f_;
};

}  // namespace internal

// Wraps a callable in a heap node. The callable takes either (RunMode) or nothing; a
// nothing-taking callable is destroyed without being called when its owner is gone.
template <class F>
PendingCall* make_pending_call(F&& f) {
  using D = std::decay_t<F>;
  return new internal::HeapCall<D>(std::forward<F>(f));
}

}  // namespace xinterp
