#include "objects/queue.h"

#include <deque>

#include "engine/python_engine.h"

namespace xinterp::python {

QueueRef::~QueueRef() { QueueRegistry::get().release(id, /*by_value=*/true); }

namespace {

// The queues this thread is destroying (Chains in queue.h): the outermost release() drains
// them; a release() inside it (an item's QueueRef dropping the last reference to another
// queue) only pushes onto this stack. Linked through XQueue::next_dying: pushing allocates
// nothing, so it can run in a destructor.
thread_local bool t_draining = false;
thread_local std::shared_ptr<XQueue> t_dying;

}  // namespace

QueueRegistry& QueueRegistry::get() {
  static QueueRegistry* registry = new QueueRegistry();  // leaked: daemon threads at exit
  return *registry;
}

QueueRegistry::QueueRegistry() {
  PythonEngine::get().add_listener(this);
  // A Queue object inside a value in transit keeps its queue alive (xidata.h).
  set_queue_binder([](int64_t id) -> std::shared_ptr<ObjectRef> {
    if (!get().bind(id, /*by_value=*/true)) return nullptr;
    return std::make_shared<QueueRef>(id);
  });
}

int64_t QueueRegistry::create(int64_t maxsize, UnboundOp unbound, bool syncobj) {
  return queues_.add(
      [&](int64_t id) { return std::make_shared<XQueue>(id, maxsize, unbound, syncobj); });
}

bool QueueRegistry::bind(int64_t id, bool by_value) {
  return queues_.with_locked(id, [by_value](XQueue& q) {
    ++q.refs;
    if (by_value) ++q.value_refs;
  });
}

void QueueRegistry::release(int64_t id, bool by_value) {
  std::shared_ptr<XQueue> dead = queues_.remove_if(id, [by_value](XQueue& q) {
    if (by_value) --q.value_refs;
    return --q.refs <= 0;
  });
  if (dead == nullptr) return;
  dead->items.close();
  if (t_draining) {  // inside another queue's destruction: that loop takes this one too
    dead->next_dying = std::move(t_dying);
    t_dying = std::move(dead);
    return;
  }
  t_draining = true;
  while (dead != nullptr) {
    // Destroyed here, outside every lock: borrows go back to their owners, and queues that only
    // these items held are pushed onto t_dying.
    dead->items.take_all();
    dead = std::move(t_dying);
    if (dead != nullptr) t_dying = std::move(dead->next_dying);
  }
  t_draining = false;
}

QueueCounts QueueRegistry::counts() {
  QueueCounts c;
  queues_.for_each_locked([&c](XQueue& q) {
    ++c.live;
    if (q.refs == q.value_refs) ++c.held_only_by_values;
  });
  return c;
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
