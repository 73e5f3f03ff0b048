#include "objects/channel.h"

#include <deque>
#include <new>
#include <utility>

#include "base/wait_slice.h"
#include "engine/python_engine.h"

namespace xinterp::python {
namespace {

// Marks a taken item received; false if its sender had withdrawn it (the item is then skipped).
bool acknowledge(Item& item) {
  if (item.receipt == nullptr) return true;
  Receipt& r = *item.receipt;
  {
    internal::MutexLock lock(r.mu);
    if (r.withdrawn) return false;
    r.received.store(true, std::memory_order_release);
    r.cv.notify_all();
  }
  r.waiters.wake_all();
  return true;
}

}  // namespace

ReceiptState receipt_state(Receipt& r) {
  internal::MutexLock lock(r.mu);
  if (r.received.load(std::memory_order_acquire)) return ReceiptState::kReceived;
  return r.closed ? ReceiptState::kClosed : ReceiptState::kPending;
}

uint64_t receipt_watch(Receipt& r, std::shared_ptr<AsyncWaker> waker, uint64_t token) {
  const uint64_t ticket = r.waiters.add(std::move(waker), token);
  // Settled before we registered: its wake_all() may have missed us (it runs after the state
  // is written, and we look at the state after registering).
  if (receipt_state(r) != ReceiptState::kPending) r.waiters.wake_all();
  return ticket;
}

ChannelRegistry& ChannelRegistry::get() {
  static ChannelRegistry* registry = new ChannelRegistry();  // leaked: daemon threads at exit
  return *registry;
}

ChannelRegistry::ChannelRegistry() { PythonEngine::get().add_listener(this); }

int64_t ChannelRegistry::create(UnboundOp unbound) {
  return channels_.add([&](int64_t id) { return std::make_shared<XChannel>(id, unbound); });
}

ChannelResult ChannelRegistry::post(XChannel& ch, Item&& item, bool wait_for_receipt,
                                    std::shared_ptr<Receipt>* receipt) {
  if (ch.state.load() != ChannelState::kOpen) return ChannelResult::kClosed;
  try {  // both allocate; nothing is queued if either fails
    if (wait_for_receipt) {
      *receipt = std::make_shared<Receipt>();
      item.receipt = *receipt;
    }
    if (ch.items.put(std::move(item), std::nullopt) != QueueStatus::kOk) {
      return ChannelResult::kClosed;
    }
  } catch (const std::bad_alloc&) {
    receipt->reset();
    return ChannelResult::kNoMemory;
  }
  return ChannelResult::kOk;
}

void ChannelRegistry::wake_receipt(Receipt& r) {
  internal::MutexLock lock(r.mu);
  r.cv.notify_all();
}

ChannelResult ChannelRegistry::await_receipt(XChannel& ch, Receipt& r,
                                             std::optional<std::chrono::nanoseconds> timeout,
                                             const std::atomic<bool>* cancel) {
  if (spin_briefly([&] { return r.received.load(std::memory_order_acquire); })) {
    return ChannelResult::kOk;
  }
  const auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                                : std::chrono::steady_clock::time_point::max();
  internal::MutexLock lock(r.mu);
  while (!r.received.load(std::memory_order_acquire)) {
    if (r.closed || ch.state.load() == ChannelState::kClosed) {
      r.withdrawn = true;
      return ChannelResult::kClosed;
    }
    if (timeout && std::chrono::steady_clock::now() >= deadline) return ChannelResult::kTimeout;
    // Read under r.mu, which wake_receipt() takes: never missed.
    if (cancel != nullptr && cancel->load(std::memory_order_acquire)) {
      return ChannelResult::kTimeout;
    }
    // finish() wakes us; the slice covers an item dropped without a close (its sender's
    // interpreter closed with policy UNBOUND_REMOVE).
    auto slice = std::chrono::steady_clock::now() + internal::kWaitSlice;
    r.cv.wait_until(r.mu, slice < deadline ? slice : deadline);
  }
  return ChannelResult::kOk;
}

ChannelResult ChannelRegistry::withdraw(Receipt& r) {
  internal::MutexLock lock(r.mu);
  if (r.received.load(std::memory_order_acquire)) return ChannelResult::kOk;
  r.withdrawn = true;  // a receiver that takes it now skips it
  return ChannelResult::kTimeout;
}

ChannelResult ChannelRegistry::recv(XChannel& ch, Item* out,
                                    std::optional<std::chrono::nanoseconds> timeout,
                                    const std::atomic<bool>* cancel) {
  const auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                                : std::chrono::steady_clock::time_point::max();
  while (true) {
    std::optional<std::chrono::nanoseconds> left;
    if (timeout) {
      auto d = deadline - std::chrono::steady_clock::now();
      left = d > std::chrono::nanoseconds::zero() ? std::chrono::nanoseconds(d)
                                                  : std::chrono::nanoseconds::zero();
    }
    QueueStatus s = ch.items.get(out, left, cancel);
    if (s == QueueStatus::kClosed) return ChannelResult::kClosed;
    if (s == QueueStatus::kEmpty) {
      return ch.state.load() == ChannelState::kOpen ? ChannelResult::kEmpty
                                                    : ChannelResult::kClosed;
    }
    if (s == QueueStatus::kTimeout) return ChannelResult::kTimeout;
    const bool taken = acknowledge(*out);
    // Drained after its send end closed: closed now (the last item is still delivered).
    if (ch.state.load() == ChannelState::kClosing && ch.items.size() == 0) {
      std::shared_ptr<XChannel> self = find(ch.id);
      if (self != nullptr) finish_if_drained(self);
    }
    if (taken) return ChannelResult::kOk;
    *out = Item();  // withdrawn: skip it
  }
}

void ChannelRegistry::finish_if_drained(const std::shared_ptr<XChannel>& ch) {
  if (ch->state.load() != ChannelState::kClosing || ch->items.size() != 0) return;
  channels_.remove(ch->id);
  finish(ch);  // idempotent: another thread may be finishing it too
}

void ChannelRegistry::finish(const std::shared_ptr<XChannel>& ch) {
  if (ch->state.exchange(ChannelState::kClosed) == ChannelState::kClosed && ch->items.closed()) {
    return;  // already finished
  }
  ch->items.close();
  std::deque<Item> rest = ch->items.take_all();
  for (Item& item : rest) {
    if (item.receipt == nullptr) continue;
    {
      internal::MutexLock lock(item.receipt->mu);
      item.receipt->closed = true;
      item.receipt->cv.notify_all();
    }
    item.receipt->waiters.wake_all();
  }
  // `rest` is destroyed here: borrows go back to their owners.
}

ChannelResult ChannelRegistry::close(int64_t id, bool send_end, bool recv_end, bool force) {
  std::shared_ptr<XChannel> ch = find(id);
  if (ch == nullptr) return existed(id) ? ChannelResult::kClosed : ChannelResult::kNotFound;
  if (ch->state.load() == ChannelState::kClosed) return ChannelResult::kClosed;
  const bool empty = ch->items.size() == 0;
  if (!empty && !force) {
    if (recv_end || !send_end) return ChannelResult::kNotEmpty;
    ChannelState open = ChannelState::kOpen;
    ch->state.compare_exchange_strong(open, ChannelState::kClosing);  // drains, then closes
    // A receiver may have taken the last item since the size check: then nobody else would.
    finish_if_drained(ch);
    return ChannelResult::kOk;
  }
  channels_.remove(id);
  finish(ch);
  return ChannelResult::kOk;
}

void ChannelRegistry::interpreter_closing(int64_t py_id) {
  for (const std::shared_ptr<XChannel>& ch : all()) {
    settle_unbound(ch->items, py_id);
    // A closing channel that this emptied is closed now (its receivers must not wait forever).
    finish_if_drained(ch);
  }
}

void ChannelRegistry::shutdown() {
  for (const auto& ch : channels_.remove_all()) finish(ch);
}

}  // namespace xinterp::python
