// One register_* function per concern; module.cpp only wires them up.
#pragma once

#include <pybind11/pybind11.h>

namespace pgsafe::py {

void register_errors(pybind11::module_& m);
void register_log(pybind11::module_& m);
void register_conn(pybind11::module_& m);
void register_sql(pybind11::module_& m);
void register_checksum(pybind11::module_& m);
void register_executor(pybind11::module_& m);
void register_schema(pybind11::module_& m);
void register_datafp(pybind11::module_& m);
void register_probe(pybind11::module_& m);
void register_trace(pybind11::module_& m);
void register_backup(pybind11::module_& m);

}  // namespace pgsafe::py
