// The Python face of LoopWaker (objects/loop_waker.h): a capsule that xinterp._aio keeps per
// (event loop, interpreter), and the module functions that make, drain and close one.
#pragma once

#include <Python.h>

#include <memory>

#include "objects/loop_waker.h"

namespace xinterp::python {

// The waker in a capsule made by loop_waker_create(), or nullptr with TypeError set.
std::shared_ptr<LoopWaker> loop_waker_of(PyObject* capsule);

int add_loop_waker_functions(PyObject* module);

}  // namespace xinterp::python
