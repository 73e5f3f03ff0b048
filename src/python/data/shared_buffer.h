// _SharedBuffer (Python type xinterp._xinterp._SharedBuffer): the receiver-side exporter over a
// BufferBorrow. Receivers get memoryview(_SharedBuffer), which sees the owner's memory directly,
// with the owner's readonly flag, format, itemsize and shape, and keeps the borrow alive until
// the view is released.
//
// Requirements: make_view() runs attached to the receiver; `type` is that interpreter's
// _SharedBuffer type (one per interpreter: multi-phase init).
#pragma once

#include <Python.h>

#include <memory>

#include "data/buffer_borrow.h"

namespace xinterp::python {

// Creates the _SharedBuffer type for a module. New reference or nullptr.
PyObject* make_shared_buffer_type(PyObject* module);

// The borrow behind a memoryview made by make_view(), or nullptr if `view` is not one.
const std::shared_ptr<BufferBorrow>* borrow_of_view(PyObject* view, PyTypeObject* type);

// A memoryview over the borrowed memory in the calling (receiving) interpreter. New reference,
// or nullptr with an exception set.
PyObject* make_view(const std::shared_ptr<BufferBorrow>& borrow, PyTypeObject* type);

}  // namespace xinterp::python
