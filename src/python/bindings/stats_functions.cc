// The module's counters: stats() per interpreter and runtime_stats() for the whole process
// (DESIGN.md, contract line 10: everything is counted, and tests assert on the counters).
#include <Python.h>

#include <initializer_list>

#include "bindings/module_state.h"
#include "data/main_module_transport.h"
#include "data/xidata.h"
#include "engine/python_engine.h"
#include "engine/run_interrupt.h"
#include "objects/channel.h"
#include "objects/queue.h"

namespace xinterp::python {
namespace {

struct Counter {
  const char* name;
  uint64_t value;
};

// Adds every counter to `dict`; -1 with an exception set on failure.
int add_counters(PyObject* dict, std::initializer_list<Counter> counters) {
  for (const Counter& c : counters) {
    PyObject* n = PyLong_FromUnsignedLongLong(c.value);
    if (n == nullptr) return -1;
    const int r = PyDict_SetItemString(dict, c.name, n);
    Py_DECREF(n);
    if (r < 0) return -1;
  }
  return 0;
}

int add_owner_stats(PyObject* d, const OwnerStats& o) {
  return add_counters(d, {{"posted", o.posted},
                          {"run_inline", o.run_inline},
                          {"run_by_owner", o.run_by_owner},
                          {"run_by_housekeeper", o.run_by_housekeeper},
                          {"run_raw", o.run_raw},
                          {"failed", o.failed},
                          {"wakes", o.wakes},
                          {"peak_backlog", o.peak_backlog},
                          {"lost", o.lost},
                          {"backlog", o.backlog()}});
}

// A new dict filled by fill(dict), or nullptr with an exception set.
template <class Fill>
PyObject* new_dict(Fill fill) {
  PyObject* d = PyDict_New();
  if (d != nullptr && fill(d) < 0) Py_CLEAR(d);
  return d;
}

// stats() -> {interpreter id: {counter: int}}
PyObject* mod_stats(PyObject*, PyObject*) {
  PyObject* out = PyDict_New();
  if (out == nullptr) return nullptr;
  for (const auto& rec : PythonEngine::get().all()) {
    PyObject* d = new_dict([&](PyObject* d) {
      if (add_owner_stats(d, rec->owner->stats()) < 0) return -1;
      return add_counters(
          d, {{"borrows", static_cast<uint64_t>(rec->borrows.load())},
              {"queued", static_cast<uint64_t>(QueueRegistry::get().queued_by(rec->py_id))},
              {"wakes_coalesced", rec->wakes_coalesced.load()},
              {"wakes_refused", rec->wakes_refused.load()},
              {"cpython_calls_added", rec->cpython_calls_added.load()},
              {"cpython_calls_run", rec->cpython_calls_run.load()},
              {"running", rec->running.load() ? 1u : 0u}});
    });
    PyObject* key = d ? PyLong_FromLongLong(rec->py_id) : nullptr;
    const int r = key ? PyDict_SetItem(out, key, d) : -1;
    Py_XDECREF(d);
    Py_XDECREF(key);
    if (r < 0) {
      Py_DECREF(out);
      return nullptr;
    }
  }
  return out;
}

// runtime_stats() -> what no single interpreter reports.
PyObject* mod_runtime_stats(PyObject*, PyObject*) {
  PythonEngine& engine = PythonEngine::get();
  const RegistryStats reg = engine.runtime().registry_stats();
  const FallbackStats fb = fallback_stats();
  const MainTransportStats mt = main_transport_stats();
  const QueueCounts queues = QueueRegistry::get().counts();
  const InterruptStats intr = interrupt_stats();
  return new_dict([&](PyObject* out) {
    PyObject* closed = new_dict([&](PyObject* d) { return add_owner_stats(d, reg.retired); });
    const int r = closed ? PyDict_SetItemString(out, "closed_interpreters", closed) : -1;
    Py_XDECREF(closed);
    if (r < 0) return -1;
    return add_counters(out, {{"interpreters_created", reg.owners_created},
                              {"interpreters_alive", reg.owners_alive},
                              {"unknown_interpreter_posts", reg.unknown_owner_posts},
                              {"unknown_interpreter_failed", reg.unknown_owner_failed},
                              {"stranded_at_exit", engine.stranded_at_exit()},
                              {"closed_with_borrows_at_exit", engine.closed_with_borrows_at_exit()},
                              {"exit_interrupts_refused", engine.exit_interrupts_refused()},
                              {"threads_abandoned_at_exit", engine.threads_abandoned_at_exit()},
                              {"refused_while_closing", engine.refused_while_closing()},
                              {"foreign_ended_with_borrows", engine.foreign_ended_with_borrows()},
                              {"calls_abandoned_at_exit", engine.calls_abandoned_at_exit()},
                              {"interrupts_posted", intr.posted},
                              {"interrupt_async_handoffs", intr.async_handoffs},
                              {"interrupt_rebuild_failed", intr.rebuild_failed},
                              {"interrupts_refused", intr.refused},
                              {"interrupted_at_exit", intr.at_exit},
                              {"modules_forgotten_after_interrupt", intr.modules_forgotten},
                              {"drain_workers_started", reg.drain_workers_started},
                              {"housekeeper_inline_drains", reg.housekeeper_inline_drains},
                              {"drain_worker_start_failures", reg.drain_worker_start_failures},
                              {"queues", queues.live},
                              {"queues_held_only_by_values", queues.held_only_by_values},
                              {"channels", ChannelRegistry::get().all().size()},
                              {"fallback_pickled", fb.pickled},
                              {"fallback_function_code", fb.function_code},
                              {"fallback_buffer_copied", fb.buffer_copied},
                              {"fallback_bytearray_copied", fb.bytearray_copied},
                              {"fallback_fake_main_loads", mt.fake_main_loads},
                              {"fallback_main_script_runs", mt.main_script_runs},
                              {"bytes_copied_out_at_sender_close", fb.bytes_copied_out}});
  });
}

PyMethodDef kMethods[] = {
    {"stats", mod_stats, METH_NOARGS, "stats() -> {interpreter id: {counter: int}}"},
    {"runtime_stats", mod_runtime_stats, METH_NOARGS, "runtime_stats() -> dict of totals"},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int add_stats_functions(PyObject* module) { return PyModule_AddFunctions(module, kMethods); }

}  // namespace xinterp::python
