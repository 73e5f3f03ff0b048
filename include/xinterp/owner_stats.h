// OwnerStats: the counters every owner keeps, as a plain snapshot.
//
// Every request to run a call in an owner is counted once in `posted` and, once it ran, once in
// exactly one of run_inline, run_by_owner, run_by_housekeeper or run_raw. A snapshot reads the run
// counters before `posted`, so a snapshot never shows more runs than posts, and once the owner is
// quiescent  posted == run_inline + run_by_owner + run_by_housekeeper + run_raw + lost.
// `lost` is non-zero only in a fork child: calls that another thread of the parent was posting or
// running at the moment of the fork, which no thread of the child can finish.
#pragma once

#include <cstdint>

namespace xinterp {

struct OwnerStats {
  uint64_t posted = 0;              // every call requested, inline ones included
  uint64_t run_inline = 0;          // ran on the requesting thread, already attached to the owner
  uint64_t run_by_owner = 0;        // ran by the owner draining its queue (woken, or closing)
  uint64_t run_by_housekeeper = 0;  // ran by the housekeeper attached to an idle or deaf owner
  uint64_t run_raw = 0;             // owner gone: engine-free cleanup path
  uint64_t failed = 0;              // calls that returned false or threw (also counted as run)
  uint64_t wakes = 0;               // engine wake() calls: one per empty -> non-empty transition
  uint64_t peak_backlog = 0;        // largest number of calls taken in one drain
  uint64_t lost = 0;                // cut by a fork (see above); never otherwise

  uint64_t run_total() const { return run_inline + run_by_owner + run_by_housekeeper + run_raw; }
  uint64_t backlog() const { return posted - run_total() - lost; }
};

}  // namespace xinterp
