// pgsafe._core data fingerprints: the scan runs without the GIL; the progress callback takes it.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <optional>

#include "bindings.hpp"
#include "pgsafe/conn.hpp"
#include "pgsafe/datafp.hpp"
#include "pgsafe/errors.hpp"

namespace pyb = pybind11;

namespace pgsafe::py {

void register_datafp(pyb::module_& m) {
  pyb::class_<RowDigest>(m, "RowDigest",
                         "Order-independent digest of COPY text rows (sum of XXH3-128 hashes).")
      .def(pyb::init<>())
      .def(
          "add", [](RowDigest& d, const pyb::bytes& row) { d.add(std::string_view(row)); },
          pyb::arg("row"), "Add one row of COPY text; a trailing newline is ignored.")
      .def("merge", &RowDigest::merge, pyb::arg("other"))
      .def_property_readonly("rows", &RowDigest::rows)
      .def("hex", &RowDigest::hex);

  pyb::class_<TableFingerprint>(m, "TableFingerprint")
      .def_readonly("table", &TableFingerprint::table)
      .def_readonly("rows", &TableFingerprint::rows)
      .def_readonly("digest", &TableFingerprint::digest)
      .def_readonly("bytes", &TableFingerprint::bytes)
      .def_readonly("seconds", &TableFingerprint::seconds)
      .def_readonly("chunks", &TableFingerprint::chunks)
      .def("__repr__", [](const TableFingerprint& t) {
        return "<TableFingerprint " + t.table + " rows=" + std::to_string(t.rows) + " " + t.digest +
               ">";
      });

  pyb::class_<FingerprintProgress>(m, "FingerprintProgress")
      .def_readonly("chunks_done", &FingerprintProgress::chunks_done)
      .def_readonly("chunks_total", &FingerprintProgress::chunks_total)
      .def_readonly("rows", &FingerprintProgress::rows)
      .def_readonly("bytes", &FingerprintProgress::bytes);

  m.attr("DEFAULT_CHUNK_PAGES") = kDefaultChunkPages;
  m.def(
      "fingerprint_tables",
      [](const std::string& dsn, const std::vector<std::string>& tables,
         const std::vector<std::string>& exclude_schemas, int workers, long long chunk_pages,
         const std::string& application_name,
         const std::optional<std::function<void(const FingerprintProgress&)>>& progress) {
        FingerprintOptions options;
        options.tables = tables;
        options.exclude_schemas = exclude_schemas;
        options.workers = workers;
        options.chunk_pages = chunk_pages;
        options.application_name = application_name;
        // pybind11's std::function wrapper takes the GIL for each call.
        if (progress) options.on_progress = *progress;
        auto out = fingerprint_tables(dsn, options);
        if (consume_pending_interrupt()) throw Interrupted();
        return out;
      },
      pyb::arg("dsn"), pyb::arg("tables") = std::vector<std::string>{},
      pyb::arg("exclude_schemas") = std::vector<std::string>{"pgsafe"}, pyb::arg("workers") = 2,
      pyb::arg("chunk_pages") = 0, pyb::arg("application_name") = "pgsafe-fingerprint",
      pyb::arg("progress") = pyb::none(), pyb::call_guard<pyb::gil_scoped_release>(),
      "Row counts and order-independent digests of tables, from one consistent snapshot.");
}

}  // namespace pgsafe::py
