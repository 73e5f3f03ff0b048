// loop_waker_create() -> capsule; loop_waker_fileno(c); loop_waker_drain(c) -> (tokens, lost);
// loop_waker_close(c). See objects/loop_waker.h.
#include "bindings/loop_waker_capsule.h"

#include <utility>
#include <vector>

namespace xinterp::python {
namespace {

constexpr const char* kCapsuleName = "xinterp._loop_waker";

void capsule_destructor(PyObject* capsule) {
  delete static_cast<std::shared_ptr<LoopWaker>*>(PyCapsule_GetPointer(capsule, kCapsuleName));
}

PyObject* mod_create(PyObject*, PyObject*) {
  auto waker = std::make_shared<LoopWaker>();
  if (waker->fd() < 0) {
    errno = waker->error();
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  auto* p = new std::shared_ptr<LoopWaker>(std::move(waker));
  PyObject* capsule = PyCapsule_New(p, kCapsuleName, capsule_destructor);
  if (capsule == nullptr) delete p;
  return capsule;
}

PyObject* mod_fileno(PyObject*, PyObject* arg) {
  auto w = loop_waker_of(arg);
  return w ? PyLong_FromLong(w->fd()) : nullptr;
}

PyObject* mod_drain(PyObject*, PyObject* arg) {
  auto w = loop_waker_of(arg);
  if (w == nullptr) return nullptr;
  std::vector<uint64_t> tokens = w->drain();
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(tokens.size()));
  if (list == nullptr) return nullptr;
  for (size_t k = 0; k < tokens.size(); ++k) {
    PyObject* t = PyLong_FromUnsignedLongLong(tokens[k]);
    if (t == nullptr) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(k), t);
  }
  return Py_BuildValue("(NO)", list, w->take_lost() ? Py_True : Py_False);
}

PyObject* mod_close(PyObject*, PyObject* arg) {
  auto w = loop_waker_of(arg);
  if (w == nullptr) return nullptr;
  w->close();
  Py_RETURN_NONE;
}

PyMethodDef kMethods[] = {
    {"loop_waker_create", mod_create, METH_NOARGS,
     "loop_waker_create() -> a waker (an eventfd and a list of ready tokens)"},
    {"loop_waker_fileno", mod_fileno, METH_O, "loop_waker_fileno(waker) -> the fd to watch"},
    {"loop_waker_drain", mod_drain, METH_O,
     "loop_waker_drain(waker) -> ([token], lost): tokens woken since the last drain; lost: "
     "some could not be recorded (wake every waiter)"},
    {"loop_waker_close", mod_close, METH_O, "loop_waker_close(waker): later wake-ups are dropped"},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

std::shared_ptr<LoopWaker> loop_waker_of(PyObject* capsule) {
  if (!PyCapsule_IsValid(capsule, kCapsuleName)) {
    PyErr_Format(PyExc_TypeError, "expected a loop waker, got %.200s", Py_TYPE(capsule)->tp_name);
    return nullptr;
  }
  return *static_cast<std::shared_ptr<LoopWaker>*>(PyCapsule_GetPointer(capsule, kCapsuleName));
}

int add_loop_waker_functions(PyObject* module) { return PyModule_AddFunctions(module, kMethods); }

}  // namespace xinterp::python
