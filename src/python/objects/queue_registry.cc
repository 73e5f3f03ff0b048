#include "objects/queue_registry.h"

#include <deque>
#include <vector>

#include "objects/fork_abandon.h"
#include "engine/python_engine.h"
#include "data/buffer_borrow.h"

namespace xinterp::python {

QueueRef::~QueueRef() { QueueRegistry::get().release(id); }

QueueRegistry& QueueRegistry::get() {
  static QueueRegistry* registry = new QueueRegistry();  // leaked: daemon threads at exit
  return *registry;
}

int64_t QueueRegistry::create(size_t maxsize, UnboundOp unbound, bool syncobj) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t id = next_id_++;
  auto q = std::make_shared<XQueue>(id, maxsize, unbound, syncobj);
  q->refs = 1;
  queues_.emplace(id, std::move(q));
  return id;
}

std::shared_ptr<XQueue> QueueRegistry::find(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = queues_.find(id);
  return it == queues_.end() ? nullptr : it->second;
}

bool QueueRegistry::bind(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = queues_.find(id);
  if (it == queues_.end()) return false;
  ++it->second->refs;
  return true;
}

void QueueRegistry::release(int64_t id) {
  std::shared_ptr<XQueue> dead;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = queues_.find(id);
    if (it == queues_.end()) return;
    if (--it->second->refs > 0) return;
    dead = std::move(it->second);
    queues_.erase(it);
  }
  dead->items.close();
  std::deque<QueueItem> rest = dead->items.take_all();
  // `rest` is destroyed here, outside every lock: borrows go back to their owners.
}

std::vector<std::shared_ptr<XQueue>> QueueRegistry::all() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<XQueue>> out;
  for (const auto& [id, q] : queues_) out.push_back(q);
  return out;
}

void QueueRegistry::sender_closed(int64_t sender) {
  for (const std::shared_ptr<XQueue>& q : all()) {
    // Nothing may be destroyed under the queue's locks: a dropped value can release the last
    // reference to a queue (even this one) or a borrow. Old values go here and die after.
    std::vector<XValue> dropped;
    std::vector<std::shared_ptr<BufferBorrow>> released;
    std::deque<QueueItem> removed = q->items.remove_if([&](QueueItem& item) {
      if (item.sender != sender || item.unbound_state != 0) return false;
      item.value.copy_borrowed_bytes(&released);  // self-contained values survive their sender
      if (!item.value.holds_borrow()) return false;
      if (item.unbound == UnboundOp::kRemove) return true;
      item.unbound_state = item.unbound == UnboundOp::kError ? 2 : 1;
      dropped.push_back(std::move(item.value));  // the borrow goes back, after the lock
      item.value = XValue();
      return false;
    });
    // `removed`, `dropped` and `released` are destroyed here, outside the locks.
  }
}

int64_t QueueRegistry::queued_by(int64_t sender) {
  int64_t n = 0;
  for (const std::shared_ptr<XQueue>& q : all()) {
    q->items.visit([&](const QueueItem& item) { n += item.sender == sender ? 1 : 0; });
  }
  return n;
}

void QueueRegistry::shutdown() {
  for (const std::shared_ptr<XQueue>& q : all()) q->items.close();
}

bool QueueRegistry::inherited(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  return inherited_.count(id) != 0;
}

void QueueRegistry::before_fork() { mu_.lock(); }

void QueueRegistry::after_fork_parent() { mu_.unlock(); }

void QueueRegistry::after_fork_child() {
  abandon_in_fork_child(&queues_, &inherited_);
  mu_.unlock();
}

}  // namespace xinterp::python
