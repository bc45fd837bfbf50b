// pgsafe._core backups: the writer's long steps and the restore run without the GIL; progress
// callbacks take it. A ChunkError becomes pgsafe.errors.CorruptChunk (errors_py.cpp).
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "pgsafe/backup_framing.hpp"
#include "pgsafe/backup_restore.hpp"
#include "pgsafe/backup_writer.hpp"
#include "pgsafe/conn.hpp"
#include "pgsafe/copybin.hpp"
#include "pgsafe/errors.hpp"

namespace pyb = pybind11;

namespace pgsafe::py {

void register_backup(pyb::module_& m) {
  pyb::enum_<Compression>(m, "Compression", "How each chunk of a backup file is compressed.")
      .value("zstd", Compression::kZstd)
      .value("gzip", Compression::kGzip);

  pyb::class_<BackupChunk>(m, "BackupChunk")
      .def(pyb::init<>())
      .def_readwrite("index", &BackupChunk::index)
      .def_readwrite("kind", &BackupChunk::kind)
      .def_readwrite("table", &BackupChunk::table)
      .def_readwrite("first_page", &BackupChunk::first_page)
      .def_readwrite("end_page", &BackupChunk::end_page)
      .def_readwrite("offset", &BackupChunk::offset)
      .def_readwrite("length", &BackupChunk::length)
      .def_readwrite("rows", &BackupChunk::rows)
      .def_readwrite("raw_bytes", &BackupChunk::raw_bytes)
      .def_readwrite("sha256", &BackupChunk::sha256);

  pyb::class_<BackupTableInfo>(m, "BackupTableInfo")
      .def_readonly("table", &BackupTableInfo::table)
      .def_readonly("columns", &BackupTableInfo::columns)
      .def_readonly("has_generated", &BackupTableInfo::has_generated)
      .def_readonly("pages", &BackupTableInfo::pages)
      .def_readonly("rows", &BackupTableInfo::rows)
      .def_readonly("digest", &BackupTableInfo::digest)
      .def_readonly("bytes", &BackupTableInfo::bytes)
      .def_readonly("chunks", &BackupTableInfo::chunks);

  pyb::class_<BackupProgress>(m, "BackupProgress")
      .def_readonly("chunks_done", &BackupProgress::chunks_done)
      .def_readonly("chunks_total", &BackupProgress::chunks_total)
      .def_readonly("rows", &BackupProgress::rows)
      .def_readonly("raw_bytes", &BackupProgress::raw_bytes)
      .def_readonly("written", &BackupProgress::written);

  pyb::class_<RestoreProgress>(m, "RestoreProgress")
      .def_readonly("chunks_done", &RestoreProgress::chunks_done)
      .def_readonly("chunks_total", &RestoreProgress::chunks_total)
      .def_readonly("rows", &RestoreProgress::rows)
      .def_readonly("bytes", &RestoreProgress::bytes);

  m.attr("ENCRYPTED_MAGIC") = pyb::bytes(std::string(kEncryptedMagic));

  pyb::class_<BackupOptions>(m, "BackupOptions", "What a BackupWriter backs up, and how.")
      .def(pyb::init<>())
      .def_readwrite("tables", &BackupOptions::tables)
      .def_readwrite("exclude_schemas", &BackupOptions::exclude_schemas)
      .def_readwrite("workers", &BackupOptions::workers)
      .def_readwrite("chunk_pages", &BackupOptions::chunk_pages)
      .def_readwrite("compression", &BackupOptions::compression)
      .def_readwrite("level", &BackupOptions::level)
      .def_property(
          "key", [](const BackupOptions& o) { return pyb::bytes(o.key); },
          [](BackupOptions& o, const pyb::bytes& key) { o.key = std::string(key); },
          "32 raw bytes: encrypt with AES-256-GCM; empty: plain.")
      .def_readwrite("file_id", &BackupOptions::file_id)
      .def_readwrite("application_name", &BackupOptions::application_name)
      .def_readwrite("on_progress", &BackupOptions::on_progress);

  pyb::class_<BackupWriter>(m, "BackupWriter")
      .def(pyb::init<const std::string&, const std::string&, const BackupOptions&>(),
           pyb::arg("dsn"), pyb::arg("path"), pyb::arg("options") = BackupOptions{},
           pyb::call_guard<pyb::gil_scoped_release>())
      .def_property_readonly("snapshot", &BackupWriter::snapshot)
      .def_property_readonly("server_version", &BackupWriter::server_version)
      .def_property_readonly("tables", &BackupWriter::tables)
      .def("sequence_values_sql", &BackupWriter::sequence_values_sql,
           pyb::call_guard<pyb::gil_scoped_release>())
      .def(
          "add_section",
          [](BackupWriter& w, const std::string& kind, const pyb::bytes& sql) {
            std::string text(sql);
            pyb::gil_scoped_release release;
            return w.add_section(kind, text);
          },
          pyb::arg("kind"), pyb::arg("sql"))
      .def(
          "copy_data",
          [](BackupWriter& w) {
            w.copy_data();
            if (consume_pending_interrupt()) throw Interrupted();
          },
          pyb::call_guard<pyb::gil_scoped_release>())
      .def("finish", &BackupWriter::finish, pyb::call_guard<pyb::gil_scoped_release>());

  m.def(
      "read_backup_chunk",
      [](const std::string& path, const BackupChunk& chunk, Compression compression,
         const pyb::bytes& key, const std::string& file_id) {
        std::string k(key);
        std::string out;
        {
          pyb::gil_scoped_release release;
          out = read_chunk(path, chunk, compression, k, file_id);
        }
        return pyb::bytes(out);
      },
      pyb::arg("path"), pyb::arg("chunk"), pyb::arg("compression"), pyb::arg("key") = pyb::bytes(),
      pyb::arg("file_id") = "", "A chunk's SQL text, after checking its SHA-256.");
  m.def(
      "copy_text_to_binary",
      [](const std::vector<unsigned int>& type_oids, const pyb::bytes& text) -> pyb::object {
        auto out = copy_text_to_binary(type_oids, std::string_view(text));
        return out ? pyb::object(pyb::bytes(*out)) : pyb::none();
      },
      pyb::arg("type_oids"), pyb::arg("text"),
      "COPY text rows as the COPY BINARY stream restore sends (header and trailer included); "
      "None when a type or a field has no exact rewrite.");
  m.def("check_backup_chunk", &check_chunk, pyb::arg("path"), pyb::arg("chunk"),
        pyb::call_guard<pyb::gil_scoped_release>(), "Checks a chunk's SHA-256.");
  pyb::class_<RestoreOptions>(m, "RestoreOptions", "How restore_backup_chunks loads the data.")
      .def(pyb::init<>())
      .def_readwrite("workers", &RestoreOptions::workers)
      .def_readwrite("compression", &RestoreOptions::compression)
      .def_property(
          "key", [](const RestoreOptions& o) { return pyb::bytes(o.key); },
          [](RestoreOptions& o, const pyb::bytes& key) { o.key = std::string(key); },
          "32 raw bytes: the AES-256-GCM key of an encrypted file; empty: plain.")
      .def_readwrite("file_id", &RestoreOptions::file_id)
      .def_readwrite("application_name", &RestoreOptions::application_name)
      .def_readwrite("binary", &RestoreOptions::binary)
      .def_readwrite("freeze", &RestoreOptions::freeze)
      .def_readwrite("split_largest", &RestoreOptions::split_largest)
      .def_readwrite("maintenance_work_mem", &RestoreOptions::maintenance_work_mem)
      .def_readwrite("after_table", &RestoreOptions::after_table)
      .def_readwrite("on_progress", &RestoreOptions::on_progress);

  m.def(
      "restore_backup_chunks",
      [](const std::string& dsn, const std::string& path, const std::vector<BackupChunk>& chunks,
         const RestoreOptions& options) {
        long long rows = restore_chunks(dsn, path, chunks, options);
        if (consume_pending_interrupt()) throw Interrupted();
        return rows;
      },
      pyb::arg("dsn"), pyb::arg("path"), pyb::arg("chunks"), pyb::arg("options") = RestoreOptions{},
      pyb::call_guard<pyb::gil_scoped_release>(),
      "Loads data chunks in parallel, and each table's index builds once it is loaded; rows.");
}

}  // namespace pgsafe::py
