#include "data/main_module_transport.h"

#include <marshal.h>

#include <atomic>
#include <string>

#include "cpython/cpython_private.h"
#include "data/xidata.h"

namespace xinterp::python {
namespace {

std::atomic<uint64_t> g_fake_main_loads{0}, g_main_script_runs{0};

// The helpers that are simpler in Python, compiled once per interpreter into a namespace kept in
// its PyInterpreterState dict (so they and their caches end with the interpreter).
constexpr const char* kHelpersKey = "xinterp.main_module_transport";
constexpr const char* kHelpersSource = R"PY(
import sys
import threading

fake_mains = {}  # main script path -> its module run as '<fake __main__>' (one run each)
_fake_mains_lock = threading.RLock()  # one run even when threads ask at once


def _fake_main(path):
    """The fake __main__ run from path (cached), and whether the script ran now. Called with
    _fake_mains_lock held."""
    mod = fake_mains.get(path)
    if mod is not None:
        return mod, False
    import runpy
    import types
    try:
        ns = runpy.run_path(path, run_name='<fake __main__>')
    except BaseException as exc:
        raise RuntimeError(
            f"running the main script {path!r} as '<fake __main__>' failed: "
            f"{type(exc).__name__}: {exc}") from exc
    mod = types.ModuleType('__main__')
    mod.__dict__.update(ns)
    fake_mains[path] = mod
    return mod, True


def load(data, main_file):
    """(the object, how): how is 0 if it loaded against this interpreter's own __main__, 1 if
    against the fake __main__, 2 if the main script had to run for it (counted by the caller)."""
    import pickle
    try:
        return pickle.loads(data), 0
    except AttributeError as exc:
        if "'__main__'" not in str(exc):
            raise
        if not main_file:
            raise AttributeError(
                f'{exc} (and the sender has no main script to run as a fake __main__)') from None
        missing = exc
    # The swap of sys.modules['__main__'] is held under the lock: two threads swapping at once
    # would each restore what they saw, and the later one would leave the fake in place.
    with _fake_mains_lock:
        fake, ran = _fake_main(main_file)
        modules = sys.modules
        real = modules.get('__main__')
        modules['__main__'] = fake
        try:
            return pickle.loads(data), 2 if ran else 1
        except AttributeError as exc:
            raise AttributeError(
                f"{missing}; nor is it defined by the main script {main_file!r} "
                f"(run as '<fake __main__>')") from exc
        finally:
            if real is None:
                modules.pop('__main__', None)
            else:
                modules['__main__'] = real


def make_call_template():
    """Code for f(*a, **k) reading f, a and k from co_consts[0..2] instead of names, so that a
    copy with the callable and arguments as constants runs over __main__ without binding any
    name there."""
    import dis
    code = compile('f(*a, **k)', '<xinterp call>', 'eval')
    assert code.co_names == ('f', 'a', 'k'), code.co_names
    raw = bytearray(code.co_code)
    load_name, load_const = dis.opmap['LOAD_NAME'], dis.opmap['LOAD_CONST']
    for ins in dis.get_instructions(code):
        assert ins.opname not in ('LOAD_CONST', 'RETURN_CONST'), ins
        if ins.opcode == load_name:
            raw[ins.offset] = load_const  # same oparg: name k becomes constant k
    return code.replace(co_code=bytes(raw), co_names=(), co_consts=(None, None, None))


call_template = make_call_template()
)PY";

// The current interpreter's helper namespace (borrowed), or nullptr with an exception set.
PyObject* helpers() {
  PyObject* interp_dict = PyInterpreterState_GetDict(PyInterpreterState_Get());  // borrowed
  if (interp_dict == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "xinterp: no per-interpreter dict");
    return nullptr;
  }
  PyObject* ns = PyDict_GetItemString(interp_dict, kHelpersKey);  // borrowed
  if (ns != nullptr) return ns;
  ns = PyDict_New();
  if (ns == nullptr) return nullptr;
  PyObject* builtins = PyImport_ImportModule("builtins");
  int r = builtins != nullptr ? PyDict_SetItemString(ns, "__builtins__", builtins) : -1;
  Py_XDECREF(builtins);
  if (r == 0) {
    PyObject* name = PyUnicode_FromString(kHelpersKey);
    r = name != nullptr ? PyDict_SetItemString(ns, "__name__", name) : -1;
    Py_XDECREF(name);
  }
  PyObject* ran = r == 0 ? PyRun_String(kHelpersSource, Py_file_input, ns, ns) : nullptr;
  // Running the source may switch threads: another thread may have stored its namespace
  // meanwhile. The first one stored wins, so that the interpreter has one cache of fake
  // __main__ modules (and one lock), and its main script runs once.
  PyObject* key = ran != nullptr ? PyUnicode_FromString(kHelpersKey) : nullptr;
  PyObject* kept = key != nullptr ? PyDict_SetDefault(interp_dict, key, ns) : nullptr;  // borrowed
  Py_XDECREF(key);
  Py_XDECREF(ran);
  Py_DECREF(ns);  // the interpreter dict keeps the one it holds
  return kept;
}

PyObject* helper(const char* name) {  // a new reference
  PyObject* ns = helpers();
  if (ns == nullptr) return nullptr;
  PyObject* fn = PyDict_GetItemString(ns, name);  // borrowed
  if (fn == nullptr) {
    PyErr_Format(PyExc_SystemError, "xinterp: helper %s missing", name);
    return nullptr;
  }
  return Py_NewRef(fn);
}

PyObject* main_globals() {                          // borrowed
  PyObject* main = PyImport_AddModule("__main__");  // borrowed
  return main != nullptr ? PyModule_GetDict(main) : nullptr;
}

}  // namespace

int function_is_stateless(PyObject* fn, std::string* why) {
  // CPython 3.14's _PyFunction_VerifyStateless, in the order it checks.
  auto* func = reinterpret_cast<PyFunctionObject*>(fn);
  auto* code = reinterpret_cast<PyCodeObject*>(func->func_code);
  if (!PyDict_Check(func->func_globals) || !PyDict_Check(func->func_builtins)) {
    *why = "its globals or builtins are not a dict";
    return 0;
  }
  if (func->func_defaults != nullptr && PyTuple_GET_SIZE(func->func_defaults) > 0) {
    *why = "it has default values";
    return 0;
  }
  if (func->func_kwdefaults != nullptr && PyDict_GET_SIZE(func->func_kwdefaults) > 0) {
    *why = "it has keyword default values";
    return 0;
  }
  if ((func->func_closure != nullptr && PyTuple_GET_SIZE(func->func_closure) > 0) ||
      code->co_nfreevars > 0) {
    *why = "it is a closure";
    return 0;
  }
  PyObject* names = cpy::global_names_read(reinterpret_cast<PyObject*>(code));
  if (names == nullptr) return -1;
  int stateless = 1;
  for (Py_ssize_t k = 0; stateless == 1 && k < PyList_GET_SIZE(names); ++k) {
    PyObject* name = PyList_GET_ITEM(names, k);
    const int in_globals = PyDict_Contains(func->func_globals, name);
    const int in_builtins = in_globals == 0 ? PyDict_Contains(func->func_builtins, name) : 0;
    if (in_globals < 0 || in_builtins < 0) {
      stateless = -1;
    } else if (in_globals == 1 || in_builtins == 0) {
      const char* s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : nullptr;
      *why = std::string("it uses the global '") + (s != nullptr ? s : "?") + "'";
      PyErr_Clear();
      stateless = 0;
    }
  }
  Py_DECREF(names);
  return stateless;
}

Status encode_stateless_function(PyObject* fn, XValue* out) {
  PyObject* bytes = PyMarshal_WriteObjectToString(PyFunction_GetCode(fn), Py_MARSHAL_VERSION);
  if (bytes == nullptr) return Status::error(ErrorKind::kPythonSet, "");
  out->kind = XValue::Kind::kFunction;
  out->data.assign(PyBytes_AS_STRING(bytes), static_cast<size_t>(PyBytes_GET_SIZE(bytes)));
  Py_DECREF(bytes);
  return Status();
}

PyObject* decode_stateless_function(const XValue& value) {
  PyObject* code =
      PyMarshal_ReadObjectFromString(value.data.data(), static_cast<Py_ssize_t>(value.data.size()));
  if (code == nullptr) return nullptr;
  PyObject* globals = main_globals();
  PyObject* fn = globals != nullptr ? PyFunction_New(code, globals) : nullptr;
  Py_DECREF(code);
  return fn;
}

std::string current_main_file() {
  std::string out;
  PyObject* modules = PyImport_GetModuleDict();  // borrowed
  PyObject* main = modules != nullptr ? PyDict_GetItemString(modules, "__main__") : nullptr;
  if (main == nullptr) return out;
  PyObject* file = PyObject_GetAttrString(main, "__file__");
  // surrogatepass keeps a path that is not valid UTF-8 (surrogateescape'd bytes) intact.
  PyObject* utf8 = file != nullptr && PyUnicode_Check(file)
                       ? PyUnicode_AsEncodedString(file, "utf-8", "surrogatepass")
                       : nullptr;
  if (utf8 != nullptr) {
    out.assign(PyBytes_AS_STRING(utf8), static_cast<size_t>(PyBytes_GET_SIZE(utf8)));
    Py_DECREF(utf8);
  }
  Py_XDECREF(file);
  PyErr_Clear();
  return out;
}

PyObject* unpickle(const std::string& data, const std::string& main_file) {
  PyObject* load = helper("load");
  if (load == nullptr) return nullptr;
  PyObject* bytes = PyBytes_FromStringAndSize(data.data(), static_cast<Py_ssize_t>(data.size()));
  PyObject* path =
      main_file.empty()
          ? Py_NewRef(Py_None)
          : PyUnicode_DecodeUTF8(main_file.data(), static_cast<Py_ssize_t>(main_file.size()),
                                 "surrogatepass");
  PyObject* pair = bytes != nullptr && path != nullptr
                       ? PyObject_CallFunctionObjArgs(load, bytes, path, nullptr)
                       : nullptr;
  Py_XDECREF(bytes);
  Py_XDECREF(path);
  Py_DECREF(load);
  if (pair == nullptr) return nullptr;
  PyObject* obj = nullptr;
  long how = 0;
  if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
    how = PyLong_AsLong(PyTuple_GET_ITEM(pair, 1));
    if (how >= 0) obj = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
  } else {
    PyErr_SetString(PyExc_SystemError, "xinterp: load() returned no (object, how) pair");
  }
  Py_DECREF(pair);
  if (how >= 1) g_fake_main_loads.fetch_add(1, std::memory_order_relaxed);
  if (how == 2) g_main_script_runs.fetch_add(1, std::memory_order_relaxed);
  return obj;
}

MainTransportStats main_transport_stats() noexcept {
  return {g_fake_main_loads.load(std::memory_order_relaxed),
          g_main_script_runs.load(std::memory_order_relaxed)};
}

PyObject* call_from_main_frame(PyObject* fn, PyObject* args, PyObject* kwargs) {
  PyObject* globals = main_globals();
  PyObject* templ = globals != nullptr ? helper("call_template") : nullptr;
  if (templ == nullptr) return nullptr;
  // The arguments as a list: a code object interns the str constants of tuple constants
  // (CALL_FUNCTION_EX makes the tuple again).
  PyObject* arg_list = PySequence_List(args);
  PyObject* kw = kwargs != nullptr ? Py_NewRef(kwargs) : PyDict_New();
  PyObject* consts =
      arg_list != nullptr && kw != nullptr ? PyTuple_Pack(3, fn, arg_list, kw) : nullptr;
  Py_XDECREF(arg_list);
  Py_XDECREF(kw);
  PyObject* code = nullptr;
  if (consts != nullptr) {
    PyObject* replace = PyObject_GetAttrString(templ, "replace");
    PyObject* no_args = replace != nullptr ? PyTuple_New(0) : nullptr;
    PyObject* kwds = no_args != nullptr ? Py_BuildValue("{sO}", "co_consts", consts) : nullptr;
    code = kwds != nullptr ? PyObject_Call(replace, no_args, kwds) : nullptr;
    Py_XDECREF(kwds);
    Py_XDECREF(no_args);
    Py_XDECREF(replace);
    Py_DECREF(consts);
  }
  Py_DECREF(templ);
  if (code == nullptr) return nullptr;
  PyObject* result = PyEval_EvalCode(code, globals, globals);
  if (result == nullptr) {
    // Leave our frame out of the traceback: 3.14 calls with no frame at all.
    PyObject* exc = PyErr_GetRaisedException();
    PyObject* tb = exc != nullptr ? PyException_GetTraceback(exc) : nullptr;
    if (tb != nullptr) {
      PyObject* frame = PyObject_GetAttrString(tb, "tb_frame");
      PyObject* frame_code = frame != nullptr ? PyObject_GetAttrString(frame, "f_code") : nullptr;
      if (frame_code == code) {
        PyObject* next = PyObject_GetAttrString(tb, "tb_next");
        if (next != nullptr) PyException_SetTraceback(exc, next);
        Py_XDECREF(next);
      }
      Py_XDECREF(frame_code);
      Py_XDECREF(frame);
      Py_DECREF(tb);
      PyErr_Clear();
    }
    PyErr_SetRaisedException(exc);
  }
  Py_DECREF(code);
  return result;
}

}  // namespace xinterp::python
