// Cross-interpreter queues: process-wide BlockingQueues of cross-interpreter values, found by a
// never-reused id, shared by every interpreter (PEP 734 Queue).
//
// A queue lives while something refers to it: a Python Queue object in any interpreter (bind /
// release) or a QueueRef inside a value in transit (a Queue put in another queue, or passed to
// call()). When the last goes, the queue is destroyed and the items still in it are dropped
// (their buffer borrows released in their owners).
//
// Items remember their sender. Self-contained values (everything but borrowed buffers) do not
// depend on it; when a sender closes, its items that hold its buffers follow their unbound
// policy: replaced by UNBOUND, turned into an error raised by get(), or removed.
//
// Threading: every function is thread-safe; blocking ones are called without a GIL.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "data/xidata.h"
#include "xinterp/blocking_queue.h"

namespace xinterp::python {

// A reference to a queue held by a value in transit.
struct QueueRef {
  explicit QueueRef(int64_t id) : id(id) {}  // after a successful QueueRegistry::bind(id)
  ~QueueRef();
  QueueRef(const QueueRef&) = delete;
  QueueRef& operator=(const QueueRef&) = delete;
  const int64_t id;
};

enum class UnboundOp : uint8_t { kReplace = 1, kError = 2, kRemove = 3 };

struct QueueItem {
  XValue value;
  int64_t sender = -1;       // interpreter id
  UnboundOp unbound = UnboundOp::kReplace;
  uint8_t unbound_state = 0;  // 0: intact; 1: replaced by UNBOUND; 2: get() raises
};

struct XQueue {
  XQueue(int64_t id, size_t maxsize, UnboundOp unbound, bool syncobj)
      : id(id), items(maxsize), unbound(unbound), syncobj(syncobj) {}
  const int64_t id;
  BlockingQueue<QueueItem> items;
  const UnboundOp unbound;  // the default for put()
  const bool syncobj;       // the default for put(): shareable objects only, no pickle
  int64_t refs = 0;         // under the registry's mutex
};

class QueueRegistry {
 public:
  static QueueRegistry& get();

  int64_t create(size_t maxsize, UnboundOp unbound, bool syncobj);  // with one reference
  std::shared_ptr<XQueue> find(int64_t id);
  bool bind(int64_t id);     // one more reference; false if no such queue
  void release(int64_t id);  // one less; the last destroys the queue
  std::vector<std::shared_ptr<XQueue>> all();

  // The sender closed: its items that hold its buffers follow their unbound policy.
  void sender_closed(int64_t sender);
  // Process exit: every queue closes, so blocked put/get return with an error.
  void shutdown();
  // Items sent by interpreter `sender` still in some queue (a scan: for stats, not hot paths).
  int64_t queued_by(int64_t sender);
  // Whether `id` is a queue of the parent process, abandoned in this fork child.
  bool inherited(int64_t id);

  // fork(), from PythonEngine's pthread_atfork handlers: the registry's lock is held across it;
  // the child abandons every queue (fork_abandon.h).
  void before_fork();
  void after_fork_parent();
  void after_fork_child();

 private:
  std::mutex mu_;
  int64_t next_id_ = 1;
  std::unordered_map<int64_t, std::shared_ptr<XQueue>> queues_;  // under mu_
  std::unordered_set<int64_t> inherited_;                        // under mu_
};

}  // namespace xinterp::python
