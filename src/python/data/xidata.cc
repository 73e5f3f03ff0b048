#include "data/xidata.h"

#include <marshal.h>

#include <atomic>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cpython/cpython_private.h"
#include "data/buffer_borrow.h"
#include "data/main_module_transport.h"
#include "data/shared_buffer.h"

namespace xinterp::python {
namespace {

constexpr int kMaxDepth = 200;
// Values in a natively shared tuple, counting a sub-tuple referenced n times n times (it is
// copied n times): a tuple of 100 objects can reference 2**100 of them.
constexpr size_t kMaxItems = size_t{1} << 22;
// A str or bytes at least this long (code points, bytes) is copied once per encode() however
// often the value references it (SenderContext::repeat); shorter ones cost less to copy again
// than to look up.
constexpr Py_ssize_t kShareOnceMin = 1024;

// Whether obj holds items that encode_native copies one by one: an exact tuple, frozenset or
// slice (a range holds three ints, counted as one value).
bool is_container(PyObject* obj) {
  return PyTuple_CheckExact(obj) || PyFrozenSet_CheckExact(obj) || PySlice_Check(obj);
}

// The items of a container (is_container), borrowed: the container holds them and never changes
// (a frozenset and a slice are immutable). -1 with a Python exception set if iterating failed.
int items_of(PyObject* obj, std::vector<PyObject*>* out) {
  out->clear();
  if (PyTuple_CheckExact(obj)) {
    const Py_ssize_t n = PyTuple_GET_SIZE(obj);
    out->reserve(static_cast<size_t>(n));
    for (Py_ssize_t k = 0; k < n; ++k) out->push_back(PyTuple_GET_ITEM(obj, k));
    return 0;
  }
  if (PySlice_Check(obj)) {
    auto* s = reinterpret_cast<PySliceObject*>(obj);
    *out = {s->start, s->stop, s->step};
    return 0;
  }
  out->reserve(static_cast<size_t>(PySet_GET_SIZE(obj)));
  PyObject* it = PyObject_GetIter(obj);
  if (it == nullptr) return -1;
  while (PyObject* item = PyIter_Next(it)) {
    out->push_back(item);
    Py_DECREF(item);  // the frozenset keeps it alive
  }
  Py_DECREF(it);
  return PyErr_Occurred() ? -1 : 0;
}

// The number of values the container `obj` holds as encode_native would copy them, saturating
// just above `limit`. Memoized per container object, so time and memory follow the objects, not
// the copies. Levels beyond kMaxDepth count as one value (encode_native refuses them anyway).
size_t expanded_size(PyObject* obj, int depth, size_t limit,
                     std::unordered_map<PyObject*, size_t>* memo) {
  if (depth > kMaxDepth) return 1;
  if (auto it = memo->find(obj); it != memo->end()) return it->second;
  size_t n = 1;
  if (PyTuple_CheckExact(obj)) {  // the common case, without a copy of the item list
    const Py_ssize_t len = PyTuple_GET_SIZE(obj);
    for (Py_ssize_t k = 0; k < len && n <= limit; ++k) {
      PyObject* item = PyTuple_GET_ITEM(obj, k);
      n += is_container(item) ? expanded_size(item, depth + 1, limit, memo) : 1;
    }
  } else {
    std::vector<PyObject*> items;
    if (items_of(obj, &items) < 0) {
      PyErr_Clear();  // encode_native meets the same failure and reports it
    }
    for (size_t k = 0; k < items.size() && n <= limit; ++k) {
      n += is_container(items[k]) ? expanded_size(items[k], depth + 1, limit, memo) : 1;
    }
  }
  if (n > limit) n = limit + 1;
  memo->emplace(obj, n);
  return n;
}

// Whether obj is a container too big to copy natively (it then goes by pickle, which keeps
// shared references shared).
bool too_many_items(PyObject* obj) {
  if (PyTuple_CheckExact(obj)) {
    const Py_ssize_t len = PyTuple_GET_SIZE(obj);
    bool nested = false;
    for (Py_ssize_t k = 0; k < len && !nested; ++k) {
      nested = is_container(PyTuple_GET_ITEM(obj, k));
    }
    if (!nested) return static_cast<size_t>(len) + 1 > kMaxItems;
  } else if (!is_container(obj)) {
    return false;
  }
  std::unordered_map<PyObject*, size_t> memo;
  return expanded_size(obj, 0, kMaxItems, &memo) > kMaxItems;
}

// A new reference, dropped when it goes out of scope: a C++ allocation failure (thrown, then
// caught by or_memory_error) leaks no object.
class Ref {
 public:
  explicit Ref(PyObject* obj) noexcept : obj_(obj) {}
  ~Ref() { Py_XDECREF(obj_); }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  PyObject* get() const noexcept { return obj_; }

 private:
  PyObject* obj_;
};

std::atomic<uint64_t> g_pickled{0}, g_function_code{0}, g_buffer_copied{0}, g_bytes_copied_out{0},
    g_bytearray_copied{0};

std::atomic<ObjectBinder> g_queue_binder{nullptr};
std::atomic<ClassesLookup> g_classes_lookup{nullptr};

const SharedClasses* current_classes() {
  ClassesLookup lookup = g_classes_lookup.load(std::memory_order_acquire);
  return lookup != nullptr ? lookup() : nullptr;
}

// The sender's context, completed on first need (a lent buffer, an xinterp object).
class SenderContext {
 public:
  // `fallback`: whether copies that are fallbacks (a bytearray) may be made.
  SenderContext(const Sender* given, bool fallback) : fallback_(fallback) {
    if (given != nullptr) {
      record_ = given->record;
      classes_ = given->classes;
    }
  }
  bool fallback() const noexcept { return fallback_; }
  // bytearrays copied into this value: counted (fallback_bytearray_copied) once it is encoded.
  uint64_t bytearrays = 0;
  const SharedClasses* classes() {
    if (classes_ == nullptr && !looked_up_) {
      classes_ = current_classes();
      looked_up_ = true;
    }
    return classes_;
  }
  // The sender's record, or null (BufferBorrow::take then looks it up).
  std::shared_ptr<InterpRecord> record() const { return record_ != nullptr ? *record_ : nullptr; }

  // For a str or bytes object seen before in this value: makes `out` share the first copy
  // (moved into XValue::shared on the first repeat) or the first borrow, and returns true.
  // Otherwise remembers `out` as obj's first copy and returns false. The XValue pointers stay
  // valid: a tuple's items are sized before any of them is encoded, and never resized.
  bool repeat(PyObject* obj, XValue* out) {
    auto [it, inserted] = seen_.try_emplace(obj, out);
    if (inserted) return false;
    XValue* first = it->second;
    out->kind = first->kind;
    out->surrogates = first->surrogates;
    if (first->kind == XValue::Kind::kBytesBorrow) {
      out->buffer = first->buffer;
      return true;
    }
    if (first->shared == nullptr) {
      first->shared = std::make_shared<const std::string>(std::move(first->data));
      first->data = std::string();
    }
    out->shared = first->shared;
    return true;
  }

 private:
  std::unordered_map<PyObject*, XValue*> seen_;  // big str and bytes objects: their first copy
  const std::shared_ptr<InterpRecord>* record_ = nullptr;
  const SharedClasses* classes_ = nullptr;
  bool looked_up_ = false;
  bool fallback_ = false;
};

// The object's `id` if it is an instance of `cls` (one of the registered classes), else -1.
int64_t object_id_if(PyObject* obj, PyObject* cls) {
  if (cls == nullptr || !PyObject_TypeCheck(obj, reinterpret_cast<PyTypeObject*>(cls))) return -1;
  PyObject* v = PyObject_GetAttrString(obj, "id");
  int64_t id = -1;
  if (v != nullptr && PyLong_Check(v)) id = PyLong_AsLongLong(v);
  Py_XDECREF(v);
  PyErr_Clear();
  return id;
}

// Fills `out` for natively shareable values; false (no exception set) otherwise, or -1 on a
// Python error.
int encode_native(PyObject* obj, XValue* out, int depth, bool probe, SenderContext& sender) {
  if (depth > kMaxDepth) return 0;
  if (obj == Py_None) {
    out->kind = XValue::Kind::kNone;
    return 1;
  }
  if (PyBool_Check(obj)) {
    out->kind = XValue::Kind::kBool;
    out->b = obj == Py_True;
    return 1;
  }
  if (PyLong_CheckExact(obj)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow == 0) {
      out->kind = XValue::Kind::kInt;
      out->i = v;
      return 1;
    }
    if (probe) return 1;  // any size travels
    // In hex: decimal conversion is refused beyond sys.get_int_max_str_digits() (4300 digits
    // by default), power-of-two bases never are, so an int of any size travels.
    Ref text(PyNumber_ToBase(obj, 16));
    if (text.get() == nullptr) return -1;
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(text.get(), &n);
    if (s == nullptr) return -1;
    out->kind = XValue::Kind::kBigInt;
    out->data.assign(s, static_cast<size_t>(n));
    return 1;
  }
  if (PyFloat_CheckExact(obj)) {
    out->kind = XValue::Kind::kFloat;
    out->f = PyFloat_AS_DOUBLE(obj);
    return 1;
  }
  if (PyUnicode_CheckExact(obj)) {
    if (probe) return 1;  // every str travels (lone surrogates too): no need to copy it
    if (PyUnicode_GET_LENGTH(obj) >= kShareOnceMin && sender.repeat(obj, out)) return 1;
    out->kind = XValue::Kind::kStr;
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(obj, &n);
    if (s != nullptr) {
      out->data.assign(s, static_cast<size_t>(n));
      return 1;
    }
    PyErr_Clear();  // lone surrogates: carry them through
    Ref raw(PyUnicode_AsEncodedString(obj, "utf-8", "surrogatepass"));
    if (raw.get() == nullptr) return -1;
    out->data.assign(PyBytes_AS_STRING(raw.get()),
                     static_cast<size_t>(PyBytes_GET_SIZE(raw.get())));
    out->surrogates = true;
    return 1;
  }
  if (PyBytes_CheckExact(obj)) {
    if (probe) return 1;
    if (PyBytes_GET_SIZE(obj) >= kShareOnceMin && sender.repeat(obj, out)) return 1;
    if (static_cast<size_t>(PyBytes_GET_SIZE(obj)) >= kBytesBorrowMin) {
      Status status;
      out->buffer = BufferBorrow::take(obj, sender.record(), &status);
      if (out->buffer != nullptr) {
        out->kind = XValue::Kind::kBytesBorrow;
        return 1;
      }
      if (status.kind == ErrorKind::kPythonSet) return -1;
    }
    out->kind = XValue::Kind::kBytes;
    out->data.assign(PyBytes_AS_STRING(obj), static_cast<size_t>(PyBytes_GET_SIZE(obj)));
    return 1;
  }
  if (PyTuple_CheckExact(obj)) {
    const Py_ssize_t n = PyTuple_GET_SIZE(obj);
    if (probe) {  // checked item by item into one scratch value: nothing is kept
      for (Py_ssize_t k = 0; k < n; ++k) {
        int r = encode_native(PyTuple_GET_ITEM(obj, k), out, depth + 1, probe, sender);
        if (r != 1) return r;
      }
      out->kind = XValue::Kind::kTuple;
      return 1;
    }
    out->kind = XValue::Kind::kTuple;
    out->items.resize(static_cast<size_t>(n));
    for (Py_ssize_t k = 0; k < n; ++k) {
      int r = encode_native(PyTuple_GET_ITEM(obj, k), &out->items[static_cast<size_t>(k)],
                            depth + 1, probe, sender);
      if (r != 1) return r;
    }
    return 1;
  }
  if (PyFrozenSet_CheckExact(obj) || PySlice_Check(obj)) {
    // Items checked and copied like a tuple's (same depth and size bounds).
    std::vector<PyObject*> items;
    if (items_of(obj, &items) < 0) return -1;
    if (!probe) out->items.resize(items.size());
    for (size_t k = 0; k < items.size(); ++k) {
      int r = encode_native(items[k], probe ? out : &out->items[k], depth + 1, probe, sender);
      if (r != 1) return r;
    }
    out->kind = PySlice_Check(obj) ? XValue::Kind::kSlice : XValue::Kind::kFrozenSet;
    return 1;
  }
  if (PyRange_Check(obj)) {  // range cannot be subclassed; its bounds are exact ints
    if (probe) return 1;
    out->items.resize(3);
    static const char* const kFields[] = {"start", "stop", "step"};
    for (size_t k = 0; k < 3; ++k) {
      Ref v(PyObject_GetAttrString(obj, kFields[k]));
      if (v.get() == nullptr) return -1;
      int r = encode_native(v.get(), &out->items[k], depth + 1, probe, sender);
      if (r != 1) return r;
    }
    out->kind = XValue::Kind::kRange;
    return 1;
  }
  if (PyComplex_CheckExact(obj)) {
    out->kind = XValue::Kind::kComplex;
    const Py_complex c = PyComplex_AsCComplex(obj);
    out->f = c.real;
    out->imag = c.imag;
    return 1;
  }
  if (PyByteArray_CheckExact(obj)) {
    // Not natively shareable (3.14): where a fallback is allowed, an independent copy that
    // arrives as a bytearray; the sender may then change or resize its own freely.
    if (probe || !sender.fallback()) return 0;
    out->kind = XValue::Kind::kByteArray;
    out->data.assign(PyByteArray_AS_STRING(obj), static_cast<size_t>(PyByteArray_GET_SIZE(obj)));
    ++sender.bytearrays;
    return 1;
  }
  if (PyMemoryView_Check(obj)) {  // the only buffer lent implicitly (memoryview: no subclasses)
    if (probe) return 1;
    Status status;
    // A view of this interpreter's own lent memory, sent on: lent again from its root
    // (Re-lending in buffer_borrow.h).
    const SharedClasses* classes = PyMemoryView_Check(obj) ? sender.classes() : nullptr;
    const std::shared_ptr<BufferBorrow>* base =
        classes != nullptr && classes->shared_buffer != nullptr
            ? borrow_of_view(obj, classes->shared_buffer)
            : nullptr;
    if (base != nullptr &&
        (*base)->owner_py_id() != cpy::interpreter_id(PyInterpreterState_Get())) {
      base = nullptr;
    }
    out->buffer = base != nullptr ? BufferBorrow::relend(obj, *base, &status)
                                  : BufferBorrow::take(obj, sender.record(), &status);
    if (out->buffer == nullptr) {
      if (status.kind == ErrorKind::kPythonSet) return -1;
      // Not C-contiguous: sent as a copy, arriving as bytes.
      Ref copy(PyBytes_FromObject(obj));
      if (copy.get() == nullptr) return -1;
      out->kind = XValue::Kind::kBytes;
      out->data.assign(PyBytes_AS_STRING(copy.get()),
                       static_cast<size_t>(PyBytes_GET_SIZE(copy.get())));
      g_buffer_copied.fetch_add(1, std::memory_order_relaxed);
      return 1;
    }
    out->kind = XValue::Kind::kBuffer;
    return 1;
  }
  const SharedClasses* classes = sender.classes();
  if (classes == nullptr) return 0;  // no xinterp objects in this interpreter
  if (int64_t id = object_id_if(obj, classes->interpreter); id >= 0) {
    out->kind = XValue::Kind::kInterpreter;
    out->i = id;
    return 1;
  }
  for (const auto& [cls, kind] : {std::pair{classes->recv_channel, XValue::Kind::kRecvChannel},
                                  std::pair{classes->send_channel, XValue::Kind::kSendChannel}}) {
    if (int64_t id = object_id_if(obj, cls); id >= 0) {
      out->kind = kind;
      out->i = id;
      return 1;
    }
  }
  if (int64_t id = object_id_if(obj, classes->queue); id >= 0) {
    if (probe) return 1;
    ObjectBinder bind = g_queue_binder.load(std::memory_order_acquire);
    std::shared_ptr<ObjectRef> ref = bind != nullptr ? bind(id) : nullptr;
    if (ref == nullptr) return 0;  // destroyed meanwhile
    out->kind = XValue::Kind::kQueue;
    out->i = id;
    out->ref = std::move(ref);
    return 1;
  }
  return 0;
}

PyObject* call_module_function(const char* module, const char* name, PyObject* arg,
                               PyObject* arg2 = nullptr) {
  // sys.modules first: a full import statement costs about a microsecond even when cached.
  PyObject* key = PyUnicode_FromString(module);
  if (key == nullptr) return nullptr;
  PyObject* mod = PyImport_GetModule(key);
  Py_DECREF(key);
  if (mod == nullptr) {
    if (PyErr_Occurred()) return nullptr;
    mod = PyImport_ImportModule(module);
    if (mod == nullptr) return nullptr;
  }
  PyObject* fn = PyObject_GetAttrString(mod, name);
  Py_DECREF(mod);
  if (fn == nullptr) return nullptr;
  PyObject* result = arg2 == nullptr ? PyObject_CallOneArg(fn, arg)
                                     : PyObject_CallFunctionObjArgs(fn, arg, arg2, nullptr);
  Py_DECREF(fn);
  return result;
}

Status not_shareable(PyObject* obj, const char* why) {
  PyObject* type_name = PyType_GetName(Py_TYPE(obj));
  std::string name = "object";
  if (type_name != nullptr) {
    if (const char* s = PyUnicode_AsUTF8(type_name)) name = s;
    Py_DECREF(type_name);
  }
  PyErr_Clear();
  return Status::error(ErrorKind::kNotShareable,
                       "'" + name + "' object is not shareable between interpreters: " + why);
}

}  // namespace

bool XValue::holds_borrow() const noexcept {
  if (kind == Kind::kBuffer) return true;
  for (const XValue& item : items) {
    if (item.holds_borrow()) return true;
  }
  return false;
}

namespace {

// copy_borrowed_bytes(), with the copies made so far: a borrow that the value holds several
// times (one bytes object repeated) is copied once, and the copies share it.
void copy_out(XValue& v, std::vector<std::shared_ptr<BufferBorrow>>* released,
              std::unordered_map<const BufferBorrow*, std::shared_ptr<const std::string>>* copies) {
  if (v.kind == XValue::Kind::kBytesBorrow) {
    std::shared_ptr<const std::string>& copy = (*copies)[v.buffer.get()];
    if (copy == nullptr) {
      copy = std::make_shared<const std::string>(static_cast<const char*>(v.buffer->buf()),
                                                 static_cast<size_t>(v.buffer->len()));
      g_bytes_copied_out.fetch_add(1, std::memory_order_relaxed);
    }
    v.shared = copy;
    v.kind = XValue::Kind::kBytes;
    released->push_back(std::move(v.buffer));  // goes back to the sender once dropped
  }
  for (XValue& item : v.items) copy_out(item, released, copies);
}

}  // namespace

void XValue::copy_borrowed_bytes(std::vector<std::shared_ptr<BufferBorrow>>* released) {
  std::unordered_map<const BufferBorrow*, std::shared_ptr<const std::string>> copies;
  copy_out(*this, released, &copies);
}

FallbackStats fallback_stats() noexcept {
  FallbackStats f;
  f.pickled = g_pickled.load(std::memory_order_relaxed);
  f.function_code = g_function_code.load(std::memory_order_relaxed);
  f.buffer_copied = g_buffer_copied.load(std::memory_order_relaxed);
  f.bytes_copied_out = g_bytes_copied_out.load(std::memory_order_relaxed);
  f.bytearray_copied = g_bytearray_copied.load(std::memory_order_relaxed);
  return f;
}

void set_queue_binder(ObjectBinder binder) noexcept {
  g_queue_binder.store(binder, std::memory_order_release);
}

void set_classes_lookup(ClassesLookup lookup) noexcept {
  g_classes_lookup.store(lookup, std::memory_order_release);
}

namespace {

// Runs fn(), turning a C++ allocation failure into MemoryError (the error value `failed`).
template <class Fn, class R>
R or_memory_error(Fn fn, R failed) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
  } catch (const std::length_error&) {  // a std::string or vector asked for more than max_size
  }
  PyErr_NoMemory();
  return failed;
}

}  // namespace

bool is_shareable(PyObject* obj) {
  // CPython 3.14 answers by type alone for the types it knows: any exact tuple is shareable,
  // whatever it holds (sending one that holds a list then falls back, or raises
  // NotShareableError where nothing falls back). Followed, so that ported code gets the same
  // answers. The types beyond 3.14 (frozenset, slice) are answered by their contents.
  return PyTuple_CheckExact(obj) || is_natively_shareable(obj);
}

bool is_natively_shareable(PyObject* obj) {
  const int r = or_memory_error(
      [&] {
        if (too_many_items(obj)) return 0;
        XValue scratch;
        SenderContext sender(nullptr, /*fallback=*/false);
        return encode_native(obj, &scratch, 0, /*probe=*/true, sender);
      },
      -1);
  if (r < 0) PyErr_Clear();  // a yes/no question: an object that fails to tell is not shareable
  return r == 1;
}

Status encode(PyObject* obj, Fallback fallback, XValue* out, const Sender* given) {
  *out = XValue();
  const int r = or_memory_error(
      [&] {
        SenderContext sender(given, fallback != Fallback::kNone);
        const int res =
            too_many_items(obj) ? 0 : encode_native(obj, out, 0, /*probe=*/false, sender);
        if (res == 1 && sender.bytearrays > 0) {
          g_bytearray_copied.fetch_add(sender.bytearrays, std::memory_order_relaxed);
        }
        return res;
      },
      -1);
  if (r == 1) return Status();
  // On failure the partial value goes now, giving back what it took (borrows, queue refs).
  *out = XValue();
  if (r < 0) return Status::error(ErrorKind::kPythonSet, "");
  if (fallback == Fallback::kNone) {
    return not_shareable(obj, ("only None, bool, int, float, complex, str, bytes, memoryview, "
                               "range, tuples, frozensets and slices of them (nested at most " +
                               std::to_string(kMaxDepth) + " deep, " + std::to_string(kMaxItems) +
                               " values in all), queues and interpreters are; "
                               "xinterp.lend(obj) lends any other C-contiguous buffer")
                                  .c_str());
  }
  // As CPython 3.14: a stateless function by its code, anything else by pickle (see
  // main_module_transport.h).
  std::string not_stateless;
  if (PyFunction_Check(obj)) {
    const int stateless = function_is_stateless(obj, &not_stateless);
    if (stateless < 0) return Status::error(ErrorKind::kPythonSet, "");
    if (stateless == 1) {
      Status s = or_memory_error([&] { return encode_stateless_function(obj, out); },
                                 Status::error(ErrorKind::kPythonSet, ""));
      if (s.ok()) g_function_code.fetch_add(1, std::memory_order_relaxed);
      if (!s.ok()) *out = XValue();
      return s;
    }
  }
  PyObject* protocol = PyLong_FromLong(-1);
  PyObject* pickled = protocol ? call_module_function("pickle", "dumps", obj, protocol) : nullptr;
  Py_XDECREF(protocol);
  if (pickled == nullptr) {
    // Keep the reason: "cannot pickle '_thread.lock' object" and the like.
    PyObject* exc = PyErr_GetRaisedException();
    std::string why = not_stateless.empty()
                          ? "it cannot be pickled"
                          : "it is not stateless (" + not_stateless + ") and cannot be pickled";
    if (exc != nullptr) {
      if (PyObject* text = PyObject_Str(exc)) {
        if (const char* s = PyUnicode_AsUTF8(text)) why += std::string(" (") + s + ")";
        Py_DECREF(text);
      }
      Py_DECREF(exc);
    }
    return not_shareable(obj, why.c_str());
  }
  // A pickle that names __main__ carries the sender's main script, which the receiver runs as a
  // fake __main__ if its own lacks the name (main_module_transport.h).
  const std::string_view payload(PyBytes_AS_STRING(pickled),
                                 static_cast<size_t>(PyBytes_GET_SIZE(pickled)));
  const bool copied = or_memory_error(
      [&] {
        out->data.assign(payload.data(), payload.size());
        if (payload.find("__main__") != std::string_view::npos) {
          std::string main_file = current_main_file();
          if (!main_file.empty()) {
            out->items.resize(1);
            out->items[0].kind = XValue::Kind::kStr;
            out->items[0].data = std::move(main_file);
          }
        }
        return true;
      },
      false);
  Py_DECREF(pickled);
  if (!copied) return Status::error(ErrorKind::kPythonSet, "");
  g_pickled.fetch_add(1, std::memory_order_relaxed);
  out->kind = XValue::Kind::kPickled;
  return Status();
}

namespace {

// The objects decoded from shared payloads (XValue::shared, a kBytesBorrow's borrow), by
// payload: a payload met again decodes into the same object. Borrowed references, kept alive
// by the result under construction.
using DecodeMemo = std::unordered_map<const void*, PyObject*>;

PyObject* decode_value(const XValue& value, const SharedClasses* classes, DecodeMemo* memo);

// value.items decoded into a new tuple (a tuple's value, or a container's parts).
PyObject* decode_items(const XValue& value, const SharedClasses* classes, DecodeMemo* memo) {
  PyObject* t = PyTuple_New(static_cast<Py_ssize_t>(value.items.size()));
  if (t == nullptr) return nullptr;
  for (size_t k = 0; k < value.items.size(); ++k) {
    PyObject* item = decode_value(value.items[k], classes, memo);
    if (item == nullptr) {
      Py_DECREF(t);
      return nullptr;
    }
    PyTuple_SET_ITEM(t, static_cast<Py_ssize_t>(k), item);
  }
  return t;
}

// A payload's object: the memoized one, or make() remembered. Throws nothing (decode_value
// builds tuples holding new references, which an exception would leak).
template <class Make>
PyObject* decode_shared(const void* key, DecodeMemo* memo, Make make) {
  if (auto it = memo->find(key); it != memo->end()) return Py_NewRef(it->second);
  PyObject* obj = make();
  if (obj == nullptr) return nullptr;
  try {
    memo->emplace(key, obj);
  } catch (const std::bad_alloc&) {
    Py_DECREF(obj);
    return PyErr_NoMemory();
  }
  return obj;
}

PyObject* decode_value(const XValue& value, const SharedClasses* classes, DecodeMemo* memo) {
  switch (value.kind) {
    case XValue::Kind::kNone:
      Py_RETURN_NONE;
    case XValue::Kind::kBool:
      return PyBool_FromLong(value.b);
    case XValue::Kind::kInt:
      return PyLong_FromLongLong(value.i);
    case XValue::Kind::kBigInt:
      return PyLong_FromString(value.data.c_str(), nullptr, 0);  // "0x..." or "-0x..."
    case XValue::Kind::kFloat:
      return PyFloat_FromDouble(value.f);
    case XValue::Kind::kStr:
    case XValue::Kind::kBytes: {
      auto make = [&value] {
        const std::string& p = value.payload();
        const auto n = static_cast<Py_ssize_t>(p.size());
        return value.kind == XValue::Kind::kStr
                   ? PyUnicode_DecodeUTF8(p.data(), n, value.surrogates ? "surrogatepass" : nullptr)
                   : PyBytes_FromStringAndSize(p.data(), n);
      };
      return value.shared == nullptr ? make() : decode_shared(value.shared.get(), memo, make);
    }
    case XValue::Kind::kTuple:
      return decode_items(value, classes, memo);
    case XValue::Kind::kComplex:
      return PyComplex_FromDoubles(value.f, value.imag);
    case XValue::Kind::kByteArray:
      return PyByteArray_FromStringAndSize(value.data.data(),
                                           static_cast<Py_ssize_t>(value.data.size()));
    case XValue::Kind::kFrozenSet:
    case XValue::Kind::kSlice:
    case XValue::Kind::kRange: {
      const bool bounds = value.kind != XValue::Kind::kFrozenSet;
      if (bounds && value.items.size() != 3) break;  // corrupt
      PyObject* t = decode_items(value, classes, memo);
      if (t == nullptr) return nullptr;
      PyObject* obj = nullptr;
      if (value.kind == XValue::Kind::kFrozenSet) {
        obj = PyFrozenSet_New(t);
      } else if (value.kind == XValue::Kind::kSlice) {
        obj = PySlice_New(PyTuple_GET_ITEM(t, 0), PyTuple_GET_ITEM(t, 1), PyTuple_GET_ITEM(t, 2));
      } else {
        obj = PyObject_Call(reinterpret_cast<PyObject*>(&PyRange_Type), t, nullptr);
      }
      Py_DECREF(t);
      return obj;
    }
    case XValue::Kind::kPickled: {
      static const std::string kNoMainFile;
      return unpickle(value.data, value.items.empty() ? kNoMainFile : value.items[0].data);
    }
    case XValue::Kind::kFunction:
      return decode_stateless_function(value);
    case XValue::Kind::kBuffer: {
      if (classes == nullptr) classes = current_classes();
      if (classes == nullptr || classes->shared_buffer == nullptr) {
        // The receiver has not imported xinterp: importing it creates the type.
        PyObject* mod = PyImport_ImportModule("xinterp._xinterp");
        if (mod == nullptr) return nullptr;
        Py_DECREF(mod);
        classes = current_classes();
        if (classes == nullptr || classes->shared_buffer == nullptr) {
          PyErr_SetString(PyExc_SystemError, "xinterp: no _SharedBuffer type in this interpreter");
          return nullptr;
        }
      }
      return make_view(value.buffer, classes->shared_buffer);
    }
    case XValue::Kind::kBytesBorrow:
      return decode_shared(value.buffer.get(), memo, [&value] {
        return PyBytes_FromStringAndSize(static_cast<const char*>(value.buffer->buf()),
                                         value.buffer->len());
      });
    case XValue::Kind::kQueue:
    case XValue::Kind::kInterpreter:
    case XValue::Kind::kRecvChannel:
    case XValue::Kind::kSendChannel: {
      if (classes == nullptr) classes = current_classes();
      PyObject* SharedClasses::*slot = &SharedClasses::interpreter;
      const char* module = "xinterp";
      const char* name = "Interpreter";
      if (value.kind == XValue::Kind::kQueue) {
        slot = &SharedClasses::queue;
        module = "xinterp.queues";
        name = "Queue";
      } else if (value.kind != XValue::Kind::kInterpreter) {
        const bool recv = value.kind == XValue::Kind::kRecvChannel;
        slot = recv ? &SharedClasses::recv_channel : &SharedClasses::send_channel;
        module = "xinterp.channels";
        name = recv ? "RecvChannel" : "SendChannel";
      }
      PyObject* cls = classes != nullptr ? Py_XNewRef(classes->*slot) : nullptr;
      if (cls == nullptr) {
        // Not imported in the receiver yet: importing the module defines (and registers) it.
        PyObject* mod = PyImport_ImportModule(module);
        if (mod == nullptr) return nullptr;
        cls = PyObject_GetAttrString(mod, name);
        Py_DECREF(mod);
        if (cls == nullptr) return nullptr;
      }
      PyObject* obj = PyObject_CallFunction(cls, "L", static_cast<long long>(value.i));
      Py_DECREF(cls);
      return obj;
    }
  }
  PyErr_SetString(PyExc_SystemError, "xinterp: corrupt cross-interpreter value");
  return nullptr;
}

}  // namespace

PyObject* decode(const XValue& value, const SharedClasses* classes) {
  // A backstop: decode_value allocates only in decode_shared, which throws nothing.
  return or_memory_error(
      [&] {
        DecodeMemo memo;
        return decode_value(value, classes, &memo);
      },
      static_cast<PyObject*>(nullptr));
}

}  // namespace xinterp::python
