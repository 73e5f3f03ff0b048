#include "objects/queue.h"

#include <deque>

#include "engine/python_engine.h"

namespace xinterp::python {

QueueRef::~QueueRef() { QueueRegistry::get().release(id); }

QueueRegistry& QueueRegistry::get() {
  static QueueRegistry* registry = new QueueRegistry();  // leaked: daemon threads at exit
  return *registry;
}

QueueRegistry::QueueRegistry() {
  PythonEngine::get().add_listener(this);
  // A Queue object inside a value in transit keeps its queue alive (xidata.h).
  set_queue_binder([](int64_t id) -> std::shared_ptr<ObjectRef> {
    if (!get().bind(id)) return nullptr;
    return std::make_shared<QueueRef>(id);
  });
}

int64_t QueueRegistry::create(size_t maxsize, UnboundOp unbound, bool syncobj) {
  return queues_.add(
      [&](int64_t id) { return std::make_shared<XQueue>(id, maxsize, unbound, syncobj); });
}

bool QueueRegistry::bind(int64_t id) {
  return queues_.with_locked(id, [](XQueue& q) { ++q.refs; });
}

void QueueRegistry::release(int64_t id) {
  std::shared_ptr<XQueue> dead = queues_.remove_if(id, [](XQueue& q) { return --q.refs <= 0; });
  if (dead == nullptr) return;
  dead->items.close();
  std::deque<Item> rest = dead->items.take_all();
  // `rest` is destroyed here, outside every lock: borrows go back to their owners.
}

void QueueRegistry::interpreter_closing(int64_t py_id) {
  for (const std::shared_ptr<XQueue>& q : all()) settle_unbound(q->items, py_id);
}

int64_t QueueRegistry::queued_by(int64_t sender) {
  int64_t n = 0;
  for (const std::shared_ptr<XQueue>& q : all()) {
    q->items.visit([&](const Item& item) { n += item.sender == sender ? 1 : 0; });
  }
  return n;
}

void QueueRegistry::shutdown() {
  for (const std::shared_ptr<XQueue>& q : all()) q->items.close();
}

}  // namespace xinterp::python
