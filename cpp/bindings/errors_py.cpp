// The one exception translator: core errors become pgsafe.errors classes (a backup chunk's
// ChunkError becomes CorruptChunk, naming the chunk); a Ctrl-C seen while the core waited is
// re-raised as the exact Python exception the signal handler raised.
#include <Python.h>

#include <atomic>

#include "bindings.hpp"
#include "pgsafe/backup_framing.hpp"
#include "pgsafe/conn.hpp"
#include "pgsafe/errors.hpp"

namespace py = pybind11;

namespace pgsafe::py {

namespace {

// The exception a signal handler raised while the core waited without the GIL. Guarded by
// the GIL: only touched while holding it.
PyObject* g_pending_type = nullptr;
PyObject* g_pending_value = nullptr;
PyObject* g_pending_tb = nullptr;

// Set at interpreter exit: from then on no core thread may try to take the GIL.
std::atomic<bool> g_exiting{false};

bool check_signals() {
  if (g_exiting || !Py_IsInitialized()) return false;
  pybind11::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() == 0) return false;
  Py_XDECREF(g_pending_type);
  Py_XDECREF(g_pending_value);
  Py_XDECREF(g_pending_tb);
  PyErr_Fetch(&g_pending_type, &g_pending_value, &g_pending_tb);
  return true;
}

void restore_pending_signal() {
  if (g_pending_type) {
    PyErr_Restore(g_pending_type, g_pending_value, g_pending_tb);
    g_pending_type = g_pending_value = g_pending_tb = nullptr;
  } else {
    PyErr_SetNone(PyExc_KeyboardInterrupt);
  }
}

void raise_python(const char* cls, const pybind11::args& args,
                  const pybind11::kwargs& kwargs = {}) {
  pybind11::object errors = pybind11::module_::import("pgsafe.errors");
  pybind11::object exc = errors.attr(cls)(*args, **kwargs);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
}

pybind11::dict fields_dict(const DbErrorFields& f) {
  pybind11::dict d;
  auto opt = [](const std::string& s) -> pybind11::object {
    return s.empty() ? pybind11::none() : pybind11::object(pybind11::str(s));
  };
  d["sqlstate"] = f.sqlstate;
  d["severity"] = opt(f.severity);
  d["message"] = f.message;
  d["detail"] = opt(f.detail);
  d["hint"] = opt(f.hint);
  d["context"] = opt(f.context);
  d["statement"] = opt(f.statement);
  d["schema_name"] = opt(f.schema_name);
  d["table_name"] = opt(f.table_name);
  d["column_name"] = opt(f.column_name);
  d["constraint_name"] = opt(f.constraint_name);
  d["position"] = f.position > 0 ? pybind11::object(pybind11::int_(f.position)) : pybind11::none();
  d["connection_usable"] = f.connection_usable;
  return d;
}

void translate(const std::exception_ptr& p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const Interrupted&) {
    restore_pending_signal();
  } catch (const DbError& e) {
    pybind11::object errors = pybind11::module_::import("pgsafe.errors");
    pybind11::object exc = errors.attr("from_core")(fields_dict(e.fields()));
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  } catch (const ChunkError& e) {
    raise_python("CorruptChunk",
                 pybind11::make_tuple(e.index(), e.table(), e.offset(), e.reason(), e.what()));
  } catch (const LockTimeout& e) {
    pybind11::kwargs kw;
    kw["message"] = e.what();
    raise_python("MigrationLockTimeout", pybind11::args(), kw);
  } catch (const FileError& e) {
    raise_python("ConfigError", pybind11::make_tuple(e.what()));
  } catch (const ConfigError& e) {
    raise_python("ConfigError", pybind11::make_tuple(e.what()));
  } catch (const Error& e) {
    raise_python("Error", pybind11::make_tuple(e.what()));
  }
}

}  // namespace

void register_errors(pybind11::module_& m) {
  // pybind11's translator type takes the exception_ptr by value.
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      translate(p);
    } catch (pybind11::error_already_set& e) {
      e.restore();  // pgsafe.errors itself failed: surface that error
    }
  });
  set_interrupt_check(&check_signals);
  pybind11::module_::import("atexit").attr("register")(pybind11::cpp_function([] {
    g_exiting = true;
    set_interrupt_check({});
  }));
  m.def("_interrupt_check_installed", [] { return true; });
}

}  // namespace pgsafe::py
