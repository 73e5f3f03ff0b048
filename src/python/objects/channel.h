// Cross-interpreter channels (PEP 554, as in CPython 3.13's draft interpreters package): a FIFO
// whose send is a rendezvous — it returns once the object was received — built on the core's
// BlockingQueue and the same items as queues (item.h).
//
// Lifecycle: open -> closing (the send end closed while items remain: no more sends, receives
// drain it) -> closed (both ends; every blocked send and recv wakes with "closed"). Channels
// live in the registry until closed; at process exit all close.
//
// Rendezvous: each sent item carries a Receipt. recv() marks it received; a send waiting for it
// returns then. A send that times out withdraws its item (a receiver that takes a withdrawn item
// skips it), so a timed-out send never delivers late. A close wakes every waiting sender.
//
// Threading: every function is thread-safe; blocking ones are called without a GIL.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "base/mutex.h"
#include "engine/engine_listener.h"
#include "objects/id_registry.h"
#include "objects/item.h"
#include "xinterp/async_waiters.h"

namespace xinterp::python {

// (asend(): a coroutine awaiting the receipt registers in `waiters`, woken when it is received
// or the channel closes; it never parks a thread.)
struct Receipt {
  internal::Mutex mu;
  internal::CondVar cv;
  std::atomic<bool> received{false};         // written under mu; read without it to spin
  bool withdrawn XI_GUARDED_BY(mu) = false;  // the sender gave up (timeout or close)
  bool closed XI_GUARDED_BY(mu) = false;     // the channel closed while the item waited
  AsyncWaiters waiters;                      // coroutines awaiting it (woken outside mu)
};

// A receipt's state for a coroutine that awaits it: kReceived, kClosed (withdrawn), or
// kPending. watch(): registers a waiter and wakes it at once if the receipt is settled.
enum class ReceiptState { kPending = 0, kReceived = 1, kClosed = 2 };
ReceiptState receipt_state(Receipt& r);
uint64_t receipt_watch(Receipt& r, std::shared_ptr<AsyncWaker> waker, uint64_t token);

// The channel states, with the values the Python layer sees (exported once, from here:
// bindings/channel_functions.cc adds them to the module as CHANNEL_*).
enum class ChannelState : uint8_t { kOpen = 0, kClosing = 1, kClosed = 2 };

struct XChannel {
  XChannel(int64_t id, UnboundOp unbound) : id(id), unbound(unbound) {}
  const int64_t id;
  const UnboundOp unbound;
  BlockingQueue<Item> items;
  std::atomic<ChannelState> state{ChannelState::kOpen};
};

// kNoMemory: post() could not allocate (its item is not queued); MemoryError.
enum class ChannelResult { kOk, kTimeout, kEmpty, kClosed, kNotEmpty, kNotFound, kNoMemory };

class ChannelRegistry final : public EngineListener {
 public:
  static ChannelRegistry& get();

  int64_t create(UnboundOp unbound);
  std::shared_ptr<XChannel> find(int64_t id) { return channels_.find(id); }
  // Whether `id` was ever a channel (ids are never reused): a closed channel is "closed", not
  // "not found".
  bool existed(int64_t id) { return channels_.existed(id); }
  std::vector<std::shared_ptr<XChannel>> all() { return channels_.all(); }
  // Whether `id` is a channel of the parent process, abandoned in this fork child.
  bool inherited(int64_t id) { return channels_.inherited(id); }

  // Blocking calls: no GIL held. timeout nullopt = forever.
  //
  // A send is three steps, so that the caller can wait in slices and react to signals between
  // them: post() queues the item (with a receipt in *receipt when wait_for_receipt; send_nowait
  // passes false and is done); await_receipt() waits up to `timeout` for a receiver to take it
  // (kOk), or for the channel to close (kClosed, the item withdrawn); withdraw() gives up on a
  // receipt (a receiver that takes the item later skips it) and returns kOk if it had been
  // received after all, so that nothing is both withdrawn and delivered.
  ChannelResult post(XChannel& ch, Item&& item, bool wait_for_receipt,
                     std::shared_ptr<Receipt>* receipt);
  // `cancel` (optional): set, the wait returns kTimeout at once (an interrupt, see
  // engine/run_interrupt.h; its waker calls wake_receipt() or ch.items.wake_all()).
  ChannelResult await_receipt(XChannel& ch, Receipt& receipt,
                              std::optional<std::chrono::nanoseconds> timeout,
                              const std::atomic<bool>* cancel = nullptr);
  static void wake_receipt(Receipt& receipt);
  static ChannelResult withdraw(Receipt& receipt);
  ChannelResult recv(XChannel& ch, Item* out, std::optional<std::chrono::nanoseconds> timeout,
                     const std::atomic<bool>* cancel = nullptr);
  // close(send_end, recv_end, force): see PEP 554 / CPython 3.13's _interpchannels.close().
  ChannelResult close(int64_t id, bool send_end, bool recv_end, bool force);

  // EngineListener (see QueueRegistry).
  void interpreter_closing(int64_t py_id) override;
  void shutdown() override;
  // (The registry's lock is held from before_fork() to after_fork_*(): across two calls, which
  // the analysis cannot follow.)
  void before_fork() override XI_NO_THREAD_SAFETY_ANALYSIS { channels_.before_fork(); }
  void after_fork_parent() override XI_NO_THREAD_SAFETY_ANALYSIS { channels_.after_fork_parent(); }
  void after_fork_child() override XI_NO_THREAD_SAFETY_ANALYSIS { channels_.after_fork_child(); }

 private:
  ChannelRegistry();
  // -> closed, items dropped, waiting senders woken; idempotent.
  static void finish(const std::shared_ptr<XChannel>& ch);
  // Closing and empty -> unregistered and finished.
  void finish_if_drained(const std::shared_ptr<XChannel>& ch);
  IdRegistry<XChannel> channels_;
};

}  // namespace xinterp::python
