#include "objects/item.h"

#include <deque>
#include <utility>
#include <vector>

#include "data/buffer_borrow.h"

namespace xinterp::python {

void settle_unbound(BlockingQueue<Item>& items, int64_t sender) {
  std::vector<XValue> dropped;
  std::vector<std::shared_ptr<BufferBorrow>> released;
  std::deque<Item> removed = items.remove_if([&](Item& item) {
    if (item.sender != sender || item.state != UnboundState::kBound) return false;
    item.value.copy_borrowed_bytes(&released);  // self-contained values survive their sender
    if (!item.value.holds_borrow()) return false;
    if (item.unbound == UnboundOp::kRemove) return true;
    item.state = item.unbound == UnboundOp::kError ? UnboundState::kError : UnboundState::kReplaced;
    dropped.push_back(std::move(item.value));  // the borrow goes back, after the lock
    item.value = XValue();
    return false;
  });
  // `removed`, `dropped` and `released` are destroyed here, outside the locks.
}

}  // namespace xinterp::python
