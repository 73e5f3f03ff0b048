// Cross-interpreter data: a Python value in transit between two interpreters, held as plain C++
// data so that no object of the sending interpreter is ever touched by the receiving one.
//
// Natively shareable (is_natively_shareable(); PEP 734's is_shareable() answers as CPython
// 3.14's registry for every type 3.14 knows, which takes any tuple by its type; exact types
// only, subclasses fall back):
//   - self-contained, copied into interpreter-neutral storage, depending on no interpreter once
//     encoded: None, bool, int, float, str, bytes, and tuples of these (checked deeply); int of
//     any size (carried in hex, which sys.set_int_max_str_digits() does not limit); beyond
//     3.14: complex, range (its bounds, ints of any size), and frozensets and slices of these
//     (items checked like a tuple's). Containers (tuple, frozenset, slice) nest at most 200 deep
//     and hold at most 2**22 values in all, a sub-container referenced n times counting n times
//     as it is copied n times (bigger ones are not natively shareable and fall back, like a
//     list: pickle keeps shared references shared, and refuses very deep ones with its
//     RecursionError, reported as NotShareableError); also xinterp Queue, Interpreter and
//     channel-end objects (by id; a Queue in transit keeps its queue alive). Decision: a tuple
//     is shareable only if its items are (3.14 answers True for any tuple, then refuses to
//     share (object(),) where no fallback is allowed).
//   - lent without a copy: a memoryview, C-contiguous, and nothing else (3.14). The receiver
//     gets a memoryview over the same memory; the sender's buffer is held until that view and
//     every copy of the value are gone, then released inside the sender (see buffer_borrow.h).
//     A memoryview that is not C-contiguous is copied instead and arrives as bytes (counted:
//     buffer_copied). Any other exporter (array.array, mmap, NumPy arrays, ...) is lent only
//     on purpose, through a memoryview: xinterp.lend(obj) checks that obj exports a
//     C-contiguous buffer and returns memoryview(obj); otherwise it takes the fallback below.
//
// A bytearray is not shareable (3.14): where a fallback is allowed it goes by an independent
// copy (kByteArray, counted: bytearray_copied), also inside a tuple, frozenset or slice, and
// arrives as a bytearray; the sender may change or resize its own at once. Without a fallback
// (Fallback::kNone) it is refused.
//
// Large bytes (>= kBytesBorrowMin) are self-contained too, but are not copied when put: bytes
// never change, so the value keeps the sender's bytes object (a borrow, released in the sender)
// and the receiver makes its bytes from it: one copy instead of two. If the sender closes first,
// the value is copied out then (copy_borrowed_bytes()), so it still survives the sender.
// Fallbacks, used where PEP 734 / CPython 3.14 uses them (call() arguments and results,
// queue items), never for is_shareable() or prepare_main(); see main_module_transport.h:
//   - a stateless function (3.14's definition) travels as its marshalled code and is rebuilt
//     over the receiver's __main__ globals;
//   - anything else goes through pickle (pickle.dumps in the sender, pickle.loads in the
//     receiver); a pickle that names __main__ carries the sender's main script (items[0], a
//     kStr), which the receiver runs as a hidden '<fake __main__>' when its own __main__ lacks
//     the name.
//
// Copies: a str or bytes object that a tuple references many times is copied once and decoded
// into one object (XValue::shared, kBytesBorrow's borrow), so ("x" * 2**20,) * 4096 costs 1 MiB,
// not 4 GiB, and the receiver gets the same sharing the sender had. is_natively_shareable()
// never copies anything.
//
// Depth: XValues nest only as deep as natively shared containers may (kMaxDepth, 200) plus the one
// level of a pickle's main-script path, so their destructor, decode(), holds_borrow() and
// copy_borrowed_bytes() recurse a bounded depth; deeper data goes by pickle, whose payload is
// flat (and pickle refuses very deep data with RecursionError, reported as NotShareableError).
//
// Memory: encode(), decode() and is_natively_shareable() report an allocation failure as
// MemoryError (kPythonSet), never as a C++ exception; whatever a failed encode() took (lent
// buffers, queue references) is given back before it returns.
//
// Requirements: encode() runs attached to the sender, decode() attached to the receiver.
// Threading: an XValue is plain data; hand it between threads freely.
#pragma once

#include <Python.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/interp_record.h"
#include "engine/status.h"

namespace xinterp::python {

class BufferBorrow;

// A reference that keeps an xinterp object travelling by id alive while a value holds it (a
// queue). The layer that owns such objects (objects/queue) defines it and registers a binder.
struct ObjectRef {
  virtual ~ObjectRef() = default;
};
// Takes a reference to object `id`; nullptr if it is gone.
using ObjectBinder = std::shared_ptr<ObjectRef> (*)(int64_t id);
void set_queue_binder(ObjectBinder binder) noexcept;

// xinterp's Python classes whose instances travel by id, in one interpreter, as its xinterp
// package registered them at import (_xinterp._register_class), and the receiver-side type of
// lent buffers. A null class means that interpreter has no such objects (it has not imported
// the module that defines it).
struct SharedClasses {
  PyObject* interpreter = nullptr;
  PyObject* queue = nullptr;
  PyObject* recv_channel = nullptr;
  PyObject* send_channel = nullptr;
  PyTypeObject* shared_buffer = nullptr;
};
// The calling interpreter's SharedClasses (nullptr if it has not imported xinterp). The bindings
// register it at module init; it costs a module lookup, so hot paths pass theirs instead.
using ClassesLookup = const SharedClasses* (*)();
void set_classes_lookup(ClassesLookup lookup) noexcept;

// What encode() knows of the sending interpreter: its record (lent buffers are registered
// there) and its classes. Either may be null; encode() then looks it up. Pointers, so that a
// put costs no reference-count traffic (the module state owns both).
struct Sender {
  const std::shared_ptr<InterpRecord>* record = nullptr;
  const SharedClasses* classes = nullptr;
};

struct XValue {
  enum class Kind : uint8_t {
    kNone,
    kBool,
    kInt,
    kBigInt,
    kFloat,
    kStr,
    kBytes,
    kTuple,
    kPickled,
    kFunction,
    kBuffer,
    kQueue,
    kInterpreter,
    kBytesBorrow,  // a large bytes object of the sender, read in place (see above)
    kRecvChannel,
    kSendChannel,  // channel ends, by channel id (i)
    kComplex,      // f + imag j
    kFrozenSet,    // items
    kRange,        // items: start, stop, step (ints)
    kSlice,        // items: start, stop, step
    kByteArray,    // a copy (data), not natively shareable: a fallback (see above)
  };
  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  double imag = 0.0;        // kComplex
  bool surrogates = false;  // kStr: `data` holds lone surrogates (encoded with surrogatepass)
  std::string data;         // str as UTF-8, bytes, big int in hex, pickle, marshalled code
  // kStr / kBytes: the payload instead of `data` (then empty) when one str or bytes object
  // appears more than once in a value (a tuple repeating it): copied once, shared by every
  // occurrence, and decoded into one object again (payload()).
  std::shared_ptr<const std::string> shared;
  std::vector<XValue> items;             // tuple items; kPickled: {main script} or none
  std::shared_ptr<BufferBorrow> buffer;  // kBuffer
  std::shared_ptr<ObjectRef> ref;        // kQueue: keeps the queue alive (i is its id)

  // kStr / kBytes: the bytes, wherever they are kept.
  const std::string& payload() const noexcept { return shared != nullptr ? *shared : data; }

  // Whether this value (or a tuple item) holds a lent buffer (kBuffer), i.e. depends on its
  // sender in a way that copying cannot undo.
  bool holds_borrow() const noexcept;
  // Turns every kBytesBorrow (recursively) into a kBytes copy, so that the value no longer
  // depends on its sender. Call while the sender still exists (its bytes are read). The borrows
  // given up are moved to `released`, for the caller to drop outside any lock.
  void copy_borrowed_bytes(std::vector<std::shared_ptr<BufferBorrow>>* released);
};

enum class Fallback : uint8_t { kNone, kFull };

inline constexpr size_t kBytesBorrowMin = 64 * 1024;

// Encodes obj, attached to its sender. On failure returns kNotShareable (no Python exception
// left set) or kPythonSet.
Status encode(PyObject* obj, Fallback fallback, XValue* out, const Sender* sender = nullptr);
// A new reference, or nullptr with a Python exception set. Attached to the receiver, whose
// classes are `classes` (looked up if null).
PyObject* decode(const XValue& value, const SharedClasses* classes = nullptr);
// Whether encode() would take obj natively (no fallback), checked all the way down.
bool is_natively_shareable(PyObject* obj);
// PEP 734 is_shareable(), as CPython 3.14 answers it: by type for the types 3.14 knows (any
// exact tuple is shareable, whatever it holds), otherwise is_natively_shareable().
bool is_shareable(PyObject* obj);

// Every fallback taken, process-wide (xinterp.runtime_stats()).
struct FallbackStats {
  uint64_t pickled = 0;           // values sent through pickle
  uint64_t function_code = 0;     // functions sent as their marshalled code
  uint64_t buffer_copied = 0;     // buffers not C-contiguous: copied instead of lent
  uint64_t bytes_copied_out = 0;  // large bytes copied out because their sender closed
  uint64_t bytearray_copied = 0;  // bytearrays sent as a copy (not shareable, so a fallback)
};
FallbackStats fallback_stats() noexcept;

}  // namespace xinterp::python
