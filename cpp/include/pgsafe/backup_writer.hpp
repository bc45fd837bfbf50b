// Streaming backups: table data copied as COPY text by worker connections sharing one exported
// snapshot, each chunk compressed (and optionally sealed, see backup_framing.hpp) and written
// to one file at an offset reserved as it finishes, so workers never wait for each other.
// Python runs pg_dump for the DDL, writes the manifest and decides where files go.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pgsafe/backup_framing.hpp"

namespace pgsafe {

struct BackupTableInfo {
  std::string table;    // schema-qualified, quoted
  std::string columns;  // "(a, b)": the stored columns, generated ones left out
  bool has_generated = false;
  long long pages = 0;
  long long rows = 0;
  std::string digest;            // RowDigest::hex() of the rows streamed (the data fingerprint)
  unsigned long long bytes = 0;  // COPY text
  int chunks = 0;
};

struct BackupProgress {
  int chunks_done = 0;
  int chunks_total = 0;
  long long rows = 0;
  unsigned long long raw_bytes = 0;
  unsigned long long written = 0;
};

struct BackupOptions {
  std::vector<std::string> tables;  // empty: every ordinary table outside the system schemas
  std::vector<std::string> exclude_schemas;
  int workers = 2;
  long long chunk_pages = 0;  // 0: kDefaultChunkPages
  Compression compression = Compression::kZstd;
  int level = 0;        // 0: zstd 1, gzip 3 (the server, not the codec, should set the pace)
  std::string key;      // 32 raw bytes: AES-256-GCM; empty: plain
  std::string file_id;  // bound into every chunk's associated data
  std::string application_name = "pgsafe-backup";
  std::function<void(const BackupProgress&)> on_progress;
};

// One backup in the making. The constructor connects, resolves and locks the tables, and
// exports a REPEATABLE READ snapshot that stays open until finish(); the caller runs pg_dump
// with snapshot() meanwhile. `path` is created (O_EXCL, mode 0600) and written in order:
// add_section("pre-data"), copy_data(), add_section("post-data"), finish().
class BackupWriter {
 public:
  BackupWriter(const std::string& dsn, const std::string& path, const BackupOptions& options);
  ~BackupWriter();
  BackupWriter(const BackupWriter&) = delete;
  BackupWriter& operator=(const BackupWriter&) = delete;

  const std::string& snapshot() const;
  int server_version() const;
  const std::vector<BackupTableInfo>& tables() const;
  // `SELECT pg_catalog.setval(...)` for the sequences owned by the tables (every sequence
  // outside the system and excluded schemas for a whole-database backup), read now.
  std::string sequence_values_sql();
  // Appends one chunk holding `sql`; returns it.
  BackupChunk add_section(const std::string& kind, std::string_view sql);
  // Copies every table on the worker connections; interrupts cancel every COPY.
  void copy_data();
  // fsyncs and closes the file, ends the snapshot; returns every chunk in file order.
  std::vector<BackupChunk> finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgsafe
