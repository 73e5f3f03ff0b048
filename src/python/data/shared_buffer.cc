#include "data/shared_buffer.h"

#include <new>

#include "cpython/cpython_private.h"

namespace xinterp::python {
namespace {

struct SharedBufferObject {
  PyObject_HEAD std::shared_ptr<BufferBorrow>*
      borrow;  // heap-allocated: the object's memory is C's
};

int shared_buffer_getbuffer(PyObject* self, Py_buffer* view, int flags) {
  auto* o = reinterpret_cast<SharedBufferObject*>(self);
  BufferBorrow& b = **o->borrow;
  if ((flags & PyBUF_WRITABLE) && b.readonly()) {
    PyErr_SetString(PyExc_BufferError, "the shared buffer is read-only in its owner");
    view->obj = nullptr;
    return -1;
  }
  view->buf = b.buf();
  view->len = b.len();
  view->readonly = b.readonly();
  view->itemsize = b.itemsize();
  view->format = (flags & PyBUF_FORMAT) ? const_cast<char*>(b.format().c_str()) : nullptr;
  // With its shape asked for (PyBUF_ND), the exporter's own: 0-d stays 0-d (ndim 0, no shape,
  // no strides); without, a flat view over all bytes.
  const bool nd = (flags & PyBUF_ND) == PyBUF_ND;
  const bool has_shape = nd && b.ndim() > 0;
  view->ndim = nd ? b.ndim() : 1;
  view->shape = has_shape ? b.shape().data() : nullptr;
  view->strides =
      has_shape && (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? b.strides().data() : nullptr;
  view->suboffsets = nullptr;
  view->internal = nullptr;
  if (!nd && view->format == nullptr) view->itemsize = 1;
  view->obj = Py_NewRef(self);
  return 0;
}

void shared_buffer_dealloc(PyObject* self) {
  auto* o = reinterpret_cast<SharedBufferObject*>(self);
  PyTypeObject* type = Py_TYPE(self);
  delete o->borrow;  // possibly the last reference: the release goes to the owner
  o->borrow = nullptr;
  type->tp_free(self);
  Py_DECREF(type);
}

PyType_Slot kSlots[] = {
    {Py_bf_getbuffer, reinterpret_cast<void*>(shared_buffer_getbuffer)},
    {Py_tp_dealloc, reinterpret_cast<void*>(shared_buffer_dealloc)},
    {Py_tp_doc, const_cast<char*>("Memory lent by another interpreter (see xinterp).")},
    {0, nullptr},
};

PyType_Spec kSpec = {
    "xinterp._xinterp._SharedBuffer",
    sizeof(SharedBufferObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    kSlots,
};

}  // namespace

PyObject* make_shared_buffer_type(PyObject* module) {
  return PyType_FromModuleAndSpec(module, &kSpec, nullptr);
}

const std::shared_ptr<BufferBorrow>* borrow_of_view(PyObject* view, PyTypeObject* type) {
  // A released view names an exporter that may be gone (taking it then raises ValueError).
  if (!PyMemoryView_Check(view) || cpy::memoryview_released(view)) return nullptr;
  PyObject* exporter = PyMemoryView_GET_BUFFER(view)->obj;
  if (exporter == nullptr || Py_TYPE(exporter) != type) return nullptr;
  return reinterpret_cast<SharedBufferObject*>(exporter)->borrow;
}

PyObject* make_view(const std::shared_ptr<BufferBorrow>& borrow, PyTypeObject* type) {
  PyObject* exporter = type->tp_alloc(type, 0);
  if (exporter == nullptr) return nullptr;
  auto* held = new (std::nothrow) std::shared_ptr<BufferBorrow>(borrow);
  if (held == nullptr) {
    Py_DECREF(exporter);  // its dealloc deletes a null borrow
    return PyErr_NoMemory();
  }
  reinterpret_cast<SharedBufferObject*>(exporter)->borrow = held;
  PyThreadState* ts = cpy::current_tstate();
  borrow->set_holder(cpy::interpreter_id(PyThreadState_GetInterpreter(ts)));
  PyObject* view = PyMemoryView_FromObject(exporter);
  Py_DECREF(exporter);
  return view;
}

}  // namespace xinterp::python
