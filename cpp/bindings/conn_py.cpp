// pgsafe._core.Connection: every network wait runs with the GIL released.
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "pgsafe/conn.hpp"
#include "pgsafe/errors.hpp"

namespace pyb = pybind11;

namespace pgsafe::py {

namespace {

const char* tx_status_name(TxStatus s) {
  switch (s) {
    case TxStatus::kIdle:
      return "idle";
    case TxStatus::kActive:
      return "active";
    case TxStatus::kInTransaction:
      return "in_transaction";
    case TxStatus::kInError:
      return "in_error";
    default:
      return "unknown";
  }
}

// The connection's DSN through pgsafe's one masker, pgsafe.errors.mask_password (the core has
// none of its own).
pyb::str masked_dsn(const Connection& c) {
  return pyb::module_::import("pgsafe.errors").attr("mask_password")(c.dsn());
}

pyb::list rows_to_python(const Result& r) {
  pyb::list rows;
  for (const Row& row : r.rows) {
    pyb::tuple t(row.size());
    for (size_t j = 0; j < row.size(); ++j) {
      t[j] = row[j] ? pyb::object(pyb::str(*row[j])) : pyb::none();
    }
    rows.append(std::move(t));
  }
  return rows;
}

}  // namespace

void register_conn(pyb::module_& m) {
  pyb::class_<Result>(m, "Result", "Outcome of one command: text values, None for NULL.")
      .def_readonly("columns", &Result::columns)
      .def_property_readonly("rows", &rows_to_python)
      .def_readonly("status", &Result::status)
      .def_readonly("rowcount", &Result::rowcount)
      .def("__repr__", [](const Result& r) {
        return "<Result " + r.status + " rows=" + std::to_string(r.rows.size()) + ">";
      });

  pyb::class_<Connection>(m, "Connection", "A libpq connection (RAII; close() or use `with`).")
      .def(pyb::init<const std::string&, const std::string&, double>(), pyb::arg("dsn") = "",
           pyb::arg("application_name") = "pgsafe", pyb::arg("connect_timeout") = 10.0,
           pyb::call_guard<pyb::gil_scoped_release>())
      .def(
          "execute",
          [](Connection& c, const std::string& sql,
             const std::optional<std::vector<Value>>& params) {
            Result r = c.execute(sql, params.value_or(std::vector<Value>{}));
            // Ctrl-C arrived as the statement completed: honour it now, back in Python.
            if (consume_pending_interrupt()) throw Interrupted();
            return r;
          },
          pyb::arg("sql"), pyb::arg("params") = pyb::none(),
          pyb::call_guard<pyb::gil_scoped_release>(),
          "Run one command; Ctrl-C cancels it on the server.")
      .def(
          "copy_out",
          [](Connection& c, const std::string& sql, const pyb::function& on_row) {
            CopyStats stats;
            {
              pyb::gil_scoped_release release;
              stats = c.copy_out(sql, [&on_row](std::string_view row) {
                pyb::gil_scoped_acquire gil;
                on_row(pyb::bytes(row.data(), row.size()));
              });
              if (consume_pending_interrupt()) throw Interrupted();
            }
            return stats.rows;
          },
          pyb::arg("sql"), pyb::arg("on_row"),
          "Run COPY ... TO STDOUT, calling on_row(bytes) per row (newline included); returns "
          "the row count. Ctrl-C, or an exception from on_row, cancels it on the server.")
      .def("cancel", &Connection::cancel, pyb::call_guard<pyb::gil_scoped_release>())
      .def("close", &Connection::close, pyb::call_guard<pyb::gil_scoped_release>())
      .def_property_readonly("closed", [](const Connection& c) { return !c.is_open(); })
      .def_property_readonly("backend_pid", &Connection::backend_pid)
      .def_property_readonly("server_version", &Connection::server_version)
      .def_property_readonly(
          "transaction_status",
          [](const Connection& c) { return tx_status_name(c.transaction_status()); })
      .def_property_readonly("dbname", &Connection::dbname)
      .def_property_readonly("user", &Connection::user)
      .def_property_readonly("host", &Connection::host)
      .def_property_readonly("port", &Connection::port)
      .def_property_readonly("dsn", &masked_dsn, "The DSN with its password masked.")
      .def(
          "__enter__", [](Connection& c) -> Connection& { return c; },
          pyb::return_value_policy::reference)
      .def(
          "__exit__", [](Connection& c, const pyb::args&) { c.close(); },
          pyb::call_guard<pyb::gil_scoped_release>())
      .def("__repr__", [](const Connection& c) {
        return "<Connection " + std::string(masked_dsn(c)) + (c.is_open() ? "" : " closed") + ">";
      });

  m.def("conninfo_parse", &conninfo_parse, pyb::arg("dsn"),
        "The (keyword, value) pairs a DSN sets, as libpq parses it; ConfigError when it cannot.");
  m.def("sleep", &interruptible_sleep, pyb::arg("seconds"),
        pyb::call_guard<pyb::gil_scoped_release>(), "Sleep without the GIL; Ctrl-C interrupts.");
}

}  // namespace pgsafe::py
