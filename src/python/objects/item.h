// Item: one value in a queue or a channel, with what an item needs to outlive its sender: who
// sent it and what to do with it if that interpreter closes first (PEP 734's unbounditems).
//
// Self-contained values (everything but lent buffers) do not depend on their sender and stay as
// they are; an item holding a lent buffer follows its policy when the sender closes: replaced by
// UNBOUND, turned into an error raised when it is taken, or removed (settle_unbound()).
//
// Threading: an Item is plain data, moved between threads; settle_unbound() is thread-safe.
#pragma once

#include <cstdint>
#include <memory>

#include "data/xidata.h"
#include "xinterp/blocking_queue.h"

namespace xinterp::python {

// The unbound policies, with the values the Python layer sees (exported once, from here:
// bindings/module.cc adds them to the module as UNBOUND_FLAG_*).
enum class UnboundOp : uint8_t { kReplace = 1, kError = 2, kRemove = 3 };
inline constexpr int kUnboundOpCount = 3;

// What became of an item whose sender closed.
enum class UnboundState : uint8_t {
  kBound = 0,     // intact
  kReplaced = 1,  // taken as UNBOUND
  kError = 2,     // taking it raises ItemInterpreterDestroyed
};

// A channel's rendezvous: the sender waits until the receiver marks its item received.
struct Receipt;

struct Item {
  XValue value;
  int64_t sender = -1;  // interpreter id
  UnboundOp unbound = UnboundOp::kReplace;
  UnboundState state = UnboundState::kBound;
  std::shared_ptr<Receipt> receipt;  // channels' send() only; null for queues and send_nowait()
};

// Applies the unbound policy to the items of `sender` still in `items` (its sender is closing).
// Nothing is destroyed under the queue's locks: a dropped value can release the last reference
// to a queue (even this one) or a lent buffer, so what the policy drops dies after them.
void settle_unbound(BlockingQueue<Item>& items, int64_t sender);

}  // namespace xinterp::python
