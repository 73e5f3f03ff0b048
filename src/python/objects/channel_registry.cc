#include "objects/channel_registry.h"

#include <deque>
#include <vector>

#include "objects/fork_abandon.h"
#include "data/buffer_borrow.h"
#include <thread>

namespace xinterp::python {
namespace {

// Acknowledges a taken item; false if its sender had withdrawn it (the item is then skipped).
bool acknowledge(ChannelItem& item) {
  if (item.ack == nullptr) return true;
  std::lock_guard<std::mutex> lock(item.ack->mu);
  if (item.ack->withdrawn) return false;
  item.ack->received.store(true, std::memory_order_release);
  item.ack->cv.notify_all();
  return true;
}

}  // namespace

ChannelRegistry& ChannelRegistry::get() {
  static ChannelRegistry* registry = new ChannelRegistry();  // leaked: daemon threads at exit
  return *registry;
}

int64_t ChannelRegistry::create(UnboundOp unbound) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t id = next_id_++;
  channels_.emplace(id, std::make_shared<XChannel>(id, unbound));
  return id;
}

std::shared_ptr<XChannel> ChannelRegistry::find(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = channels_.find(id);
  return it == channels_.end() ? nullptr : it->second;
}

bool ChannelRegistry::existed(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  return id > 0 && id < next_id_;
}

std::vector<std::shared_ptr<XChannel>> ChannelRegistry::all() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<XChannel>> out;
  for (const auto& [id, ch] : channels_) out.push_back(ch);
  return out;
}

ChannelResult ChannelRegistry::send(XChannel& ch, ChannelItem&& item, bool wait_for_receipt,
                                    std::optional<std::chrono::nanoseconds> timeout) {
  if (ch.state.load() != ChannelState::kOpen) return ChannelResult::kClosed;
  std::shared_ptr<ChannelAck> ack;
  if (wait_for_receipt) {
    ack = std::make_shared<ChannelAck>();
    item.ack = ack;
  }
  if (ch.items.put(std::move(item), std::nullopt) != QueueStatus::kOk) {
    return ChannelResult::kClosed;
  }
  if (!wait_for_receipt) return ChannelResult::kOk;
  // A short spin first: a receiver already waiting takes the item within microseconds, and a
  // futex sleep and wake would cost more than the whole hand-over.
  static const bool multicore = std::thread::hardware_concurrency() > 1;
  for (int i = 0; multicore && i < 4000 && !ack->received.load(std::memory_order_acquire); ++i) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  std::unique_lock<std::mutex> lock(ack->mu);
  const auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                                : std::chrono::steady_clock::time_point::max();
  while (!ack->received.load(std::memory_order_acquire)) {
    if (ch.state.load() == ChannelState::kClosed) {
      ack->withdrawn = true;
      return ChannelResult::kClosed;
    }
    // Wake now and then to notice a close (which does not know this ack).
    auto slice = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    if (slice > deadline) slice = deadline;
    ack->cv.wait_until(lock, slice);
    if (!ack->received.load(std::memory_order_acquire) && timeout &&
        std::chrono::steady_clock::now() >= deadline) {
      ack->withdrawn = true;  // a receiver that takes it now skips it
      return ChannelResult::kTimeout;
    }
  }
  return ChannelResult::kOk;
}

ChannelResult ChannelRegistry::recv(XChannel& ch, ChannelItem* out,
                                    std::optional<std::chrono::nanoseconds> timeout) {
  const auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                                : std::chrono::steady_clock::time_point::max();
  while (true) {
    std::optional<std::chrono::nanoseconds> left;
    if (timeout) {
      auto d = deadline - std::chrono::steady_clock::now();
      left = d > std::chrono::nanoseconds::zero() ? std::chrono::nanoseconds(d)
                                                  : std::chrono::nanoseconds::zero();
    }
    QueueStatus s = ch.items.get(out, left);
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
    *out = ChannelItem();  // withdrawn: skip it
  }
}

void ChannelRegistry::finish_if_drained(const std::shared_ptr<XChannel>& ch) {
  if (ch->state.load() == ChannelState::kClosing && ch->items.size() == 0) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      channels_.erase(ch->id);
    }
    finish(ch);
  }
}

void ChannelRegistry::finish(const std::shared_ptr<XChannel>& ch) {
  if (ch->state.exchange(ChannelState::kClosed) == ChannelState::kClosed &&
      ch->items.closed()) {
    return;  // already finished
  }
  ch->items.close();
  std::deque<ChannelItem> rest = ch->items.take_all();
  for (ChannelItem& item : rest) {
    if (item.ack != nullptr) {
      std::lock_guard<std::mutex> lock(item.ack->mu);
      item.ack->cv.notify_all();
    }
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    channels_.erase(id);
  }
  finish(ch);
  return ChannelResult::kOk;
}

void ChannelRegistry::sender_closed(int64_t sender) {
  for (const std::shared_ptr<XChannel>& ch : all()) {
    // As for queues: nothing is destroyed under the channel's locks.
    std::vector<XValue> dropped;
    std::vector<std::shared_ptr<BufferBorrow>> released;
    std::deque<ChannelItem> removed = ch->items.remove_if([&](ChannelItem& item) {
      if (item.sender != sender || item.unbound_state != 0) return false;
      item.value.copy_borrowed_bytes(&released);
      if (!item.value.holds_borrow()) return false;
      if (item.unbound == UnboundOp::kRemove) return true;
      item.unbound_state = item.unbound == UnboundOp::kError ? 2 : 1;
      dropped.push_back(std::move(item.value));
      item.value = XValue();
      return false;
    });
    // A closing channel that this emptied is closed now (its receivers must not wait forever).
    finish_if_drained(ch);
  }
}

void ChannelRegistry::shutdown() {
  std::vector<std::shared_ptr<XChannel>> chans;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, ch] : channels_) chans.push_back(ch);
    channels_.clear();
  }
  for (const auto& ch : chans) finish(ch);
}

bool ChannelRegistry::inherited(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  return inherited_.count(id) != 0;
}

void ChannelRegistry::before_fork() { mu_.lock(); }

void ChannelRegistry::after_fork_parent() { mu_.unlock(); }

void ChannelRegistry::after_fork_child() {
  abandon_in_fork_child(&channels_, &inherited_);
  mu_.unlock();
}

}  // namespace xinterp::python
