// libFuzzer target for cross-interpreter data (src/python/xidata.h): the one decoder of data
// that crosses from one interpreter to another, and the C++ embedding API's entry for strings
// from outside Python.
//
// Each input drives three checks, in two sub-interpreters A (sender) and B (receiver) of an
// embedded CPython:
//   1. Round trip. The input is read as a recipe for a Python value: None, bool, int of any
//      size, float of any bit pattern, str of any code points (lone surrogates included), bytes
//      (some of 64 KiB and more, which travel as a borrow of the sender's bytes), complex,
//      range, and tuples, frozensets and slices of these, nested; a bytearray (copied: a
//      fallback); or values that need the pickle fallback (list, dict, set). A
//      builds the value and encodes it; B decodes it and compares it with the same recipe
//      built in B. is_natively_shareable() must agree with encode() without fallback.
//   2. Decoder robustness. The input is read as an XValue built by hand (what encode() never
//      makes: any text as a big int, any bytes as UTF-8 with or without surrogates, deep
//      tuples). decode() in B returns an object or sets an exception; nothing else.
//   3. The embedding API. A std::string from the input is passed to Interpreter::call(); it
//      comes back equal if it is valid UTF-8, and is refused with an Error otherwise.
// Any mismatch aborts, which libFuzzer reports as a crash.
//
// Not fuzzed, and why: pickle and marshal payloads are only ever made by encode() in the same
// process (CPython documents both as unsafe for untrusted data, so random payloads would fuzz
// CPython, not xinterp). Lent buffers, queues and interpreter objects decode through the
// `_xinterp` extension module, which this standalone binary does not load; the Python tests
// cover them, under ASan+UBSan too.
#include <Python.h>
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "data/xidata.h"
#include "engine/python_engine.h"
#include "engine/status.h"
#include "xinterp/python.h"

namespace {

using xinterp::python::ErrorKind;
using xinterp::python::Fallback;
using xinterp::python::PythonEngine;
using xinterp::python::Status;
using xinterp::python::XValue;

constexpr int kMaxDepth = 6;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "xvalue_fuzz: %s\n", what);
  if (PyErr_Occurred()) PyErr_Print();
  std::abort();
}

// A new reference built from the recipe in p, or nullptr with an exception set. The same bytes
// build equal values in every interpreter.
PyObject* build(FuzzedDataProvider& p, int depth) {
  const int kind = p.ConsumeIntegralInRange<int>(0, 15);
  switch (kind) {
    case 0:
      Py_RETURN_NONE;
    case 1:
      return PyBool_FromLong(p.ConsumeBool());
    case 2:
      return PyLong_FromLongLong(p.ConsumeIntegral<long long>());
    case 3: {  // any size: hex digits from the input
      const std::string raw = p.ConsumeRandomLengthString(80);
      std::string text = p.ConsumeBool() ? "-0x0" : "0x0";
      static const char kHex[] = "0123456789abcdef";
      for (unsigned char c : raw) text += kHex[c & 15];
      return PyLong_FromString(text.c_str(), nullptr, 0);
    }
    case 4: {  // any bit pattern: NaNs with payloads, infinities, -0.0, subnormals
      const uint64_t bits = p.ConsumeIntegral<uint64_t>();
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return PyFloat_FromDouble(d);
    }
    case 5: {  // any code points, lone surrogates included
      std::vector<Py_UCS4> cps(p.ConsumeIntegralInRange<size_t>(0, 24));
      for (Py_UCS4& cp : cps) {
        cp = p.ConsumeBool() ? p.ConsumeIntegralInRange<Py_UCS4>(0, 0x7f)
                             : p.ConsumeIntegralInRange<Py_UCS4>(0, 0x10ffff);
      }
      return PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, cps.data(),
                                       static_cast<Py_ssize_t>(cps.size()));
    }
    case 6: {  // bytes; sometimes large enough to travel as a borrow of the sender's object
      std::string b = p.ConsumeRandomLengthString(64);
      if (!b.empty() && p.ConsumeBool()) {
        const size_t want =
            xinterp::python::kBytesBorrowMin + p.ConsumeIntegralInRange<size_t>(0, 4096);
        std::string big;
        big.reserve(want);
        while (big.size() < want) big += b;
        b = std::move(big);
      }
      return PyBytes_FromStringAndSize(b.data(), static_cast<Py_ssize_t>(b.size()));
    }
    case 7:     // tuple (natively shareable if its items are)
    case 8:     // list (pickle)
    case 9:     // set of its hashable items (pickle)
    case 12:    // frozenset of its hashable items (natively shareable if its items are)
    case 13:    // slice of the first three items (natively shareable if they are)
    case 10: {  // dict str -> item (pickle)
      const size_t n = depth >= kMaxDepth ? 0 : p.ConsumeIntegralInRange<size_t>(0, 4);
      PyObject* items = PyList_New(0);
      if (items == nullptr) return nullptr;
      for (size_t k = 0; k < n; ++k) {
        PyObject* item = build(p, depth + 1);
        if (item == nullptr || PyList_Append(items, item) < 0) {
          Py_XDECREF(item);
          Py_DECREF(items);
          return nullptr;
        }
        Py_DECREF(item);
      }
      PyObject* out = nullptr;
      if (kind == 7) {
        out = PyList_AsTuple(items);
      } else if (kind == 8) {
        Py_INCREF(items);
        out = items;
      } else if (kind == 13) {
        PyObject* three[3] = {Py_None, Py_None, Py_None};
        for (Py_ssize_t k = 0; k < 3 && k < PyList_GET_SIZE(items); ++k) {
          three[k] = PyList_GET_ITEM(items, k);
        }
        out = PySlice_New(three[0], three[1], three[2]);
      } else if (kind == 9 || kind == 12) {
        out = kind == 9 ? PySet_New(nullptr) : PyFrozenSet_New(nullptr);
        for (Py_ssize_t k = 0; out != nullptr && k < PyList_GET_SIZE(items); ++k) {
          PyObject* item = PyList_GET_ITEM(items, k);
          if (PyObject_Hash(item) == -1) {
            PyErr_Clear();  // unhashable (a list inside): left out, the same in every build
            continue;
          }
          if (PySet_Add(out, item) < 0) Py_CLEAR(out);
        }
      } else {
        out = PyDict_New();
        for (Py_ssize_t k = 0; out != nullptr && k < PyList_GET_SIZE(items); ++k) {
          PyObject* key = PyUnicode_FromFormat("k%zd", k);
          if (key == nullptr || PyDict_SetItem(out, key, PyList_GET_ITEM(items, k)) < 0) {
            Py_CLEAR(out);
          }
          Py_XDECREF(key);
        }
      }
      Py_DECREF(items);
      return out;
    }
    case 14: {  // range: bounds of any size (step never 0)
      PyObject* start = PyLong_FromLongLong(p.ConsumeIntegral<long long>());
      PyObject* stop = PyLong_FromLongLong(p.ConsumeIntegral<long long>());
      long long step_v = p.ConsumeIntegral<long long>();
      PyObject* step = PyLong_FromLongLong(step_v == 0 ? 1 : step_v);
      PyObject* r = start && stop && step
                        ? PyObject_CallFunctionObjArgs(reinterpret_cast<PyObject*>(&PyRange_Type),
                                                       start, stop, step, nullptr)
                        : nullptr;
      Py_XDECREF(start);
      Py_XDECREF(stop);
      Py_XDECREF(step);
      return r;
    }
    case 15: {  // bytearray (copied: a fallback, not natively shareable)
      const std::string b = p.ConsumeRandomLengthString(64);
      return PyByteArray_FromStringAndSize(b.data(), static_cast<Py_ssize_t>(b.size()));
    }
    default:  // complex (natively shareable)
      return PyComplex_FromDoubles(p.ConsumeFloatingPoint<double>(),
                                   p.ConsumeFloatingPoint<double>());
  }
}

// Whether a (decoded) and b (built) are the same value: same type, equal, floats by bits
// (NaNs: any NaN matches any NaN, pickle may not keep payloads), containers item by item.
bool same(PyObject* a, PyObject* b) {
  if (Py_TYPE(a) != Py_TYPE(b)) return false;
  if (PyFloat_CheckExact(a)) {
    const double x = PyFloat_AS_DOUBLE(a), y = PyFloat_AS_DOUBLE(b);
    if (std::isnan(x) || std::isnan(y)) return std::isnan(x) && std::isnan(y);
    return std::memcmp(&x, &y, sizeof x) == 0;
  }
  if (PyTuple_CheckExact(a) || PyList_CheckExact(a)) {
    PyObject* fa = PySequence_Fast(a, "");
    PyObject* fb = PySequence_Fast(b, "");
    bool ok = fa && fb && PySequence_Fast_GET_SIZE(fa) == PySequence_Fast_GET_SIZE(fb);
    for (Py_ssize_t k = 0; ok && k < PySequence_Fast_GET_SIZE(fa); ++k) {
      ok = same(PySequence_Fast_GET_ITEM(fa, k), PySequence_Fast_GET_ITEM(fb, k));
    }
    Py_XDECREF(fa);
    Py_XDECREF(fb);
    return ok;
  }
  if (PyDict_CheckExact(a)) {
    if (PyDict_Size(a) != PyDict_Size(b)) return false;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(a, &pos, &key, &value)) {
      PyObject* other = PyDict_GetItemWithError(b, key);
      if (other == nullptr || !same(value, other)) return false;
    }
    return true;
  }
  if (PyComplex_CheckExact(a)) {
    const Py_complex x = PyComplex_AsCComplex(a), y = PyComplex_AsCComplex(b);
    auto eq = [](double u, double v) { return (std::isnan(u) && std::isnan(v)) || u == v; };
    return eq(x.real, y.real) && eq(x.imag, y.imag);
  }
  if (PySlice_Check(a)) {  // by fields (they may hold NaNs)
    auto* x = reinterpret_cast<PySliceObject*>(a);
    auto* y = reinterpret_cast<PySliceObject*>(b);
    return same(x->start, y->start) && same(x->stop, y->stop) && same(x->step, y->step);
  }
  if (PyAnySet_Check(a)) {  // by elements (iteration order may differ; NaNs are never equal)
    if (PySet_GET_SIZE(a) != PySet_GET_SIZE(b)) return false;
    PyObject* la = PySequence_List(a);
    PyObject* lb = PySequence_List(b);
    bool ok = la && lb;
    for (Py_ssize_t i = 0; ok && i < PyList_GET_SIZE(la); ++i) {
      bool found = false;
      for (Py_ssize_t j = 0; !found && j < PyList_GET_SIZE(lb); ++j) {
        found = same(PyList_GET_ITEM(la, i), PyList_GET_ITEM(lb, j));
      }
      ok = found;
    }
    Py_XDECREF(la);
    Py_XDECREF(lb);
    return ok;
  }
  const int r = PyObject_RichCompareBool(a, b, Py_EQ);
  if (r < 0) PyErr_Clear();
  return r == 1;
}

// Runs fn attached to interpreter id; aborts if the engine refuses.
void in(int64_t id, const std::function<void()>& fn) {
  Status s = PythonEngine::get().run(id, [&]() -> Status {
    fn();
    return Status();
  });
  if (!s.ok()) fail(s.message.c_str());
}

struct World {
  xinterp::python::Host host;
  xinterp::python::Interpreter a = xinterp::python::Interpreter::create();
  xinterp::python::Interpreter b = xinterp::python::Interpreter::create();
};
World* world = nullptr;

void round_trip(const uint8_t* data, size_t size) {
  XValue value;
  in(world->a.id(), [&] {
    FuzzedDataProvider p(data, size);
    PyObject* obj = build(p, 0);
    if (obj == nullptr) fail("the recipe did not build in A");
    const bool shareable = xinterp::python::is_natively_shareable(obj);
    XValue probe;
    Status native = xinterp::python::encode(obj, Fallback::kNone, &probe);
    if (native.kind == ErrorKind::kPythonSet) fail("encode without fallback raised");
    if (native.ok() != shareable) fail("is_natively_shareable() disagrees with encode()");
    probe = XValue();
    Status full = xinterp::python::encode(obj, Fallback::kFull, &value);
    Py_DECREF(obj);
    if (full.kind == ErrorKind::kPythonSet) fail("encode with fallback raised");
    if (!full.ok()) fail("a value every recipe makes is picklable, yet encode refused it");
  });
  in(world->b.id(), [&] {
    FuzzedDataProvider p(data, size);
    PyObject* expected = build(p, 0);
    if (expected == nullptr) fail("the recipe did not build in B");
    PyObject* got = xinterp::python::decode(value);
    if (got == nullptr) fail("decode failed");
    if (!same(got, expected)) {
      PyObject_Print(got, stderr, 0);
      std::fputs("\n  !=\n", stderr);
      PyObject_Print(expected, stderr, 0);
      std::fputs("\n", stderr);
      fail("round trip changed the value");
    }
    Py_DECREF(got);
    Py_DECREF(expected);
  });
  // Dropping the value releases any borrow of A's bytes, in A.
  value = XValue();
}

XValue raw_value(FuzzedDataProvider& p, int depth) {
  XValue v;
  switch (p.ConsumeIntegralInRange<int>(0, 11)) {
    case 0:
      v.kind = XValue::Kind::kBigInt;
      v.data = p.ConsumeRandomLengthString(64);
      break;
    case 1:
      v.kind = XValue::Kind::kStr;
      v.surrogates = p.ConsumeBool();
      v.data = p.ConsumeRandomLengthString(64);
      break;
    case 2:
      v.kind = XValue::Kind::kBytes;
      v.data = p.ConsumeRandomLengthString(64);
      break;
    case 3:
      v.kind = XValue::Kind::kFloat;
      v.f = p.ConsumeFloatingPoint<double>();
      break;
    case 4:
      v.kind = XValue::Kind::kInt;
      v.i = p.ConsumeIntegral<int64_t>();
      break;
    case 5:
      v.kind = XValue::Kind::kBool;
      v.b = p.ConsumeBool();
      break;
    case 6:
      v.kind = XValue::Kind::kComplex;
      v.f = p.ConsumeFloatingPoint<double>();
      v.imag = p.ConsumeFloatingPoint<double>();
      break;
    case 7:
      v.kind = XValue::Kind::kByteArray;
      v.data = p.ConsumeRandomLengthString(64);
      break;
    case 8:
    case 9:
    case 10:  // any items, any count: a range of non-ints, unhashable set items, 2-item slices
      v.kind = p.PickValueInArray(
          {XValue::Kind::kFrozenSet, XValue::Kind::kRange, XValue::Kind::kSlice});
      if (depth < 32) {
        v.items.resize(p.ConsumeIntegralInRange<size_t>(0, 4));
        for (XValue& item : v.items) item = raw_value(p, depth + 1);
      }
      break;
    default:
      v.kind = XValue::Kind::kTuple;
      if (depth < 32) {
        v.items.resize(p.ConsumeIntegralInRange<size_t>(0, 3));
        for (XValue& item : v.items) item = raw_value(p, depth + 1);
      }
  }
  return v;
}

void decode_robustness(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  const XValue v = raw_value(p, 0);
  in(world->b.id(), [&] {
    PyObject* got = xinterp::python::decode(v);
    if (got == nullptr) {
      if (!PyErr_Occurred()) fail("decode failed without an exception");
      PyErr_Clear();
      return;
    }
    Py_DECREF(got);
  });
}

bool valid_utf8(const std::string& s) {
  bool valid = false;
  in(world->b.id(), [&] {
    PyObject* u = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr);
    valid = u != nullptr;
    Py_XDECREF(u);
    PyErr_Clear();
  });
  return valid;
}

void embed_strings(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  const bool valid = valid_utf8(s);
  try {
    xinterp::python::Value back = world->b.call("echo", {s});
    if (!valid) fail("call() accepted a string that is not UTF-8");
    if (!std::holds_alternative<std::string>(back) || std::get<std::string>(back) != s) {
      fail("call() changed a string");
    }
  } catch (const xinterp::python::Error& e) {
    if (valid) fail(e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  world = new World();  // lives until the process exits
  world->b.exec("def echo(x):\n    return x\n");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  round_trip(data, size);
  decode_robustness(data, size);
  embed_strings(data, size);
  return 0;
}
