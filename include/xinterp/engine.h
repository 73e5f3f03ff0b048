// Engine: what the core needs from an interpreter implementation (CPython first; a Lua state or a
// JS isolate would do as well). The core never includes Python.h; all it knows of an owner's
// engine object is Owner::engine_data().
//
// Operations:
//   - wake(owner): ask the owner to call owner.drain(DrainBy::kOwner) at its next safe point.
//     Must not block and must not run the calls itself. The core calls it at most once per
//     empty -> non-empty transition of the owner's queue, so an engine that maps wakes onto a
//     bounded queue of its own (CPython's pending calls) needs at most one slot per owner.
//   - attach(owner) / detach(owner): make the calling thread (the housekeeper, or a closer) run
//     inside the owner, and leave it again. attach may block waiting for the owner (its GIL) but
//     is never called while the calling thread is attached to any other owner. false = cannot
//     attach now (the owner is going away); the core then retries later or leaves the calls to
//     the closer.
//   - current_owner(): the id of the owner the calling thread is attached to, or kNoOwner.
//     Must be cheap and async-signal-safe.
//   - is_idle(owner): optional hint that no thread runs in the owner, so waiting for it to drain
//     by itself is pointless; the housekeeper then drains at once instead of after the deadline.
//   - yield_attached(owner): called by a closer that is attached to the owner and must wait for
//     another thread of that owner to finish draining; let that thread run (release and re-take
//     the owner's lock).
//   - owner_label(owner) / current_label(): the engine's own name for an owner (CPython: its
//     interpreter id) and for the owner the calling thread is attached to, or -1; only for
//     messages (the debug affinity check names both). Async-signal-safe, no allocation.
//   - report_failure(owner, what): a call failed (it returned false or threw `what`). Called on
//     the thread that ran the call, outside every core lock. Never raise into the owner's code.
//
// Threading: every method may be called from any thread, concurrently. wake() may be called with
// arbitrary core-internal state in flight but never under a core lock.
#pragma once

#include <cstdint>

namespace xinterp {

class Owner;
using OwnerId = uint64_t;
inline constexpr OwnerId kNoOwner = 0;

class Engine {
 public:
  virtual ~Engine() = default;

  virtual void wake(Owner& owner) noexcept = 0;
  virtual bool attach(Owner& owner) noexcept = 0;
  virtual void detach(Owner& owner) noexcept = 0;
  virtual OwnerId current_owner() const noexcept = 0;

  virtual bool is_idle(Owner& /*owner*/) noexcept { return false; }
  virtual void yield_attached(Owner& owner) noexcept;
  virtual void report_failure(Owner& /*owner*/, const char* /*what*/) noexcept {}
  virtual int64_t owner_label(const Owner& /*owner*/) const noexcept { return -1; }
  virtual int64_t current_label() const noexcept { return -1; }
};

}  // namespace xinterp
