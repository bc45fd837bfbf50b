// pgsafe._core: the private compiled core. Users import `pgsafe`, never this module.
#include "bindings.hpp"

#ifndef PGSAFE_VERSION
#define PGSAFE_VERSION "0.0.0"
#endif

PYBIND11_MODULE(_core, m) {
  m.doc() = "pgsafe's compiled core: libpq, OpenSSL, zstd, spdlog";
  m.attr("__version__") = PGSAFE_VERSION;
  pgsafe::py::register_errors(m);
  pgsafe::py::register_log(m);
  pgsafe::py::register_conn(m);
  pgsafe::py::register_sql(m);
  pgsafe::py::register_checksum(m);
  pgsafe::py::register_executor(m);
  pgsafe::py::register_schema(m);
  pgsafe::py::register_datafp(m);
  pgsafe::py::register_probe(m);
  pgsafe::py::register_trace(m);
  pgsafe::py::register_backup(m);
}
