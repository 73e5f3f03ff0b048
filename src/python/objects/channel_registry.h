// Cross-interpreter channels (PEP 554, as in CPython 3.13's draft interpreters package): a FIFO
// whose send is a rendezvous — it returns once the object was received — built on the core's
// BlockingQueue and the same cross-interpreter values as queues.
//
// Lifecycle: open -> closing (the send end closed while items remain: no more sends, receives
// drain it) -> closed (both ends; every blocked send and recv wakes with "closed"). Channels
// live in the registry until closed; at process exit all close.
//
// Rendezvous: each sent item carries an acknowledgement. recv() marks it received; a send
// waiting for it returns then. A send that times out withdraws its item (a receiver that takes
// a withdrawn item skips it), so a timed-out send never delivers late.
//
// Threading: every function is thread-safe; blocking ones are called without a GIL.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "objects/queue_registry.h"

namespace xinterp::python {

struct ChannelAck {
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> received{false};  // written under mu; read without it to spin
  bool withdrawn = false;             // under mu: the sender gave up (timeout)
};

struct ChannelItem {
  XValue value;
  int64_t sender = -1;
  UnboundOp unbound = UnboundOp::kReplace;
  uint8_t unbound_state = 0;
  std::shared_ptr<ChannelAck> ack;  // null for send_nowait
};

enum class ChannelState : uint8_t { kOpen, kClosing, kClosed };

struct XChannel {
  XChannel(int64_t id, UnboundOp unbound) : id(id), unbound(unbound) {}
  const int64_t id;
  const UnboundOp unbound;
  BlockingQueue<ChannelItem> items;
  std::atomic<ChannelState> state{ChannelState::kOpen};
};

enum class ChannelResult { kOk, kTimeout, kEmpty, kClosed, kNotEmpty, kNotFound };

class ChannelRegistry {
 public:
  static ChannelRegistry& get();

  int64_t create(UnboundOp unbound);
  std::shared_ptr<XChannel> find(int64_t id);
  // Whether `id` was ever a channel (ids are never reused): a closed channel is "closed", not
  // "not found".
  bool existed(int64_t id);
  std::vector<std::shared_ptr<XChannel>> all();

  // Blocking calls: no GIL held. timeout nullopt = forever.
  // send: wait_for_receipt false = send_nowait (returns once queued).
  ChannelResult send(XChannel& ch, ChannelItem&& item, bool wait_for_receipt,
                     std::optional<std::chrono::nanoseconds> timeout);
  ChannelResult recv(XChannel& ch, ChannelItem* out, std::optional<std::chrono::nanoseconds> timeout);
  // close(send_end, recv_end, force): see PEP 554 / CPython 3.13's _interpchannels.close().
  ChannelResult close(int64_t id, bool send_end, bool recv_end, bool force);

  void sender_closed(int64_t sender);
  void shutdown();
  // Whether `id` is a channel of the parent process, abandoned in this fork child.
  bool inherited(int64_t id);

  // fork(), as for QueueRegistry: the lock is held across it; the child abandons every channel.
  void before_fork();
  void after_fork_parent();
  void after_fork_child();

 private:
  void finish(const std::shared_ptr<XChannel>& ch);  // -> closed, items dropped; idempotent
  // Closing and empty -> unregistered and finished.
  void finish_if_drained(const std::shared_ptr<XChannel>& ch);
  std::mutex mu_;
  int64_t next_id_ = 1;
  std::unordered_map<int64_t, std::shared_ptr<XChannel>> channels_;  // under mu_
  std::unordered_set<int64_t> inherited_;                            // under mu_
};

}  // namespace xinterp::python
