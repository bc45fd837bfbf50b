// pgsafe._core schema fingerprint: the catalog read runs with the GIL released.
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "pgsafe/schema.hpp"

namespace pyb = pybind11;

namespace pgsafe::py {

void register_schema(pyb::module_& m) {
  pyb::class_<SchemaObject>(m, "SchemaObject", "One catalog object: kind, name, definition.")
      .def(pyb::init<std::string, std::string, std::string>(), pyb::arg("kind"), pyb::arg("name"),
           pyb::arg("definition"))
      .def_readonly("kind", &SchemaObject::kind)
      .def_readonly("name", &SchemaObject::name)
      .def_readonly("definition", &SchemaObject::definition)
      .def("__repr__",
           [](const SchemaObject& o) { return "<SchemaObject " + o.kind + " " + o.name + ">"; });

  pyb::class_<SchemaFingerprint>(m, "SchemaFingerprint")
      .def_readonly("objects", &SchemaFingerprint::objects)
      .def_readonly("sha256", &SchemaFingerprint::sha256)
      .def_readonly("server_version", &SchemaFingerprint::server_version);

  m.def(
      "schema_fingerprint",
      [](Connection& conn, std::vector<std::string> exclude_schemas) {
        SchemaOptions options;
        options.exclude_schemas = std::move(exclude_schemas);
        return schema_fingerprint(conn, options);
      },
      pyb::arg("conn"), pyb::arg("exclude_schemas"), pyb::call_guard<pyb::gil_scoped_release>(),
      "Read the catalog in one snapshot and describe it canonically (objects sorted, SHA-256).");
  m.def("schema_canonical_text", &schema_canonical_text, pyb::arg("objects"),
        "The canonical serialisation that schema_fingerprint hashes.");
  m.def("schema_digest", &schema_digest, pyb::arg("objects"),
        "SHA-256 of the canonical serialisation of these objects, in any order.");
}

}  // namespace pgsafe::py
