// Cross-interpreter queues: process-wide BlockingQueues of items, found by a never-reused id,
// shared by every interpreter (PEP 734 Queue).
//
// A queue lives while something refers to it: a Python Queue object in any interpreter (bind /
// release) or a QueueRef inside a value in transit (a Queue put in another queue, or passed to
// call()). When the last goes, the queue is destroyed and the items still in it are dropped
// (their lent buffers released in their owners). When a sender closes, its items follow their
// unbound policy (item.h).
//
// Chains: dropping a queue's items can drop the last reference to another queue (a Queue put in
// a queue), whose items can hold another, and so on: a chain as long as the user made it. The
// thread that released the first destroys them one after another (a worklist), never by
// recursing, so no chain overflows the C stack.
//
// Cycles: a queue that holds itself (q.put(q)), or queues holding each other, keep each other
// alive after every Queue object is gone; they are not collected (nothing here can tell such a
// cycle from a queue a value in transit is about to hand over). runtime_stats() shows them:
// "queues" counts the live queues, "queues_held_only_by_values" those no Queue object refers to
// (a queue inside a value still queued or in transit: a cycle if it stays so). Take the items
// out (get()) to break a cycle.
//
// Threading: every function is thread-safe; blocking ones are called without a GIL.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "data/xidata.h"
#include "engine/engine_listener.h"
#include "objects/id_registry.h"
#include "objects/item.h"
#include "xinterp/blocking_queue.h"

namespace xinterp::python {

// A reference to a queue held by a value in transit.
struct QueueRef final : ObjectRef {
  explicit QueueRef(int64_t id) : id(id) {}  // after a successful QueueRegistry::bind(id)
  ~QueueRef() override;
  QueueRef(const QueueRef&) = delete;
  QueueRef& operator=(const QueueRef&) = delete;
  const int64_t id;
};

struct XQueue {
  // maxsize <= 0: unbounded, and kept as given (CPython 3.14 reports create_queue(-10).maxsize
  // as -10).
  XQueue(int64_t id, int64_t maxsize, UnboundOp unbound, bool syncobj)
      : id(id),
        maxsize(maxsize),
        items(maxsize > 0 ? static_cast<size_t>(maxsize) : 0),
        unbound(unbound),
        syncobj(syncobj) {}
  const int64_t id;
  const int64_t maxsize;  // as given to create(); the bound of `items` is max(maxsize, 0)
  BlockingQueue<Item> items;
  const UnboundOp unbound;  // the default for put()
  const bool syncobj;       // the default for put(): shareable objects only, no pickle
  int64_t refs = 1;         // written under the registry's lock (IdRegistry::with_locked)
  int64_t value_refs = 0;   // of refs, those held by values (QueueRef); under the same lock
  std::shared_ptr<XQueue> next_dying;  // QueueRegistry::release()'s worklist (a stack)
};

// Live queues, for runtime_stats().
struct QueueCounts {
  uint64_t live = 0;
  uint64_t held_only_by_values = 0;  // every reference is a value's: no Queue object
};

class QueueRegistry final : public EngineListener {
 public:
  static QueueRegistry& get();

  // maxsize <= 0: unbounded. With one reference.
  int64_t create(int64_t maxsize, UnboundOp unbound, bool syncobj);
  std::shared_ptr<XQueue> find(int64_t id) { return queues_.find(id); }
  // One more reference (from a value in transit: `by_value`); false if no such queue.
  bool bind(int64_t id, bool by_value = false);
  // One less (given by bind() with the same `by_value`); the last destroys the queue, and any
  // queue only its items held, iteratively (see Chains above).
  void release(int64_t id, bool by_value = false);
  QueueCounts counts();
  std::vector<std::shared_ptr<XQueue>> all() { return queues_.all(); }
  // Items sent by interpreter `sender` still in some queue (a scan: for stats, not hot paths).
  int64_t queued_by(int64_t sender);
  // Whether `id` is a queue of the parent process, abandoned in this fork child.
  bool inherited(int64_t id) { return queues_.inherited(id); }

  // EngineListener: a closing sender's items follow their unbound policy; at exit every queue
  // closes, so blocked put/get return with an error; the registry's lock is held across fork
  // and the child abandons every queue (id_registry.h).
  void interpreter_closing(int64_t py_id) override;
  void shutdown() override;
  // (The registry's lock is held from before_fork() to after_fork_*(): across two calls, which
  // the analysis cannot follow.)
  void before_fork() override XI_NO_THREAD_SAFETY_ANALYSIS { queues_.before_fork(); }
  void after_fork_parent() override XI_NO_THREAD_SAFETY_ANALYSIS { queues_.after_fork_parent(); }
  void after_fork_child() override XI_NO_THREAD_SAFETY_ANALYSIS { queues_.after_fork_child(); }

 private:
  QueueRegistry();
  IdRegistry<XQueue> queues_;
};

}  // namespace xinterp::python
