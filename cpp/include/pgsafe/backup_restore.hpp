// Parallel restore of a backup file's data chunks: a table per worker at a time (each in one
// transaction that truncates it first, so COPY FREEZE applies), rewritten to COPY BINARY where
// every column has an exact rewrite (copybin.hpp), and each table's index and key builds run as
// soon as it is loaded.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "pgsafe/backup_framing.hpp"

namespace pgsafe {

struct RestoreProgress {
  int chunks_done = 0;
  int chunks_total = 0;
  long long rows = 0;
  unsigned long long bytes = 0;  // file bytes read
};

struct RestoreOptions {
  int workers = 2;
  Compression compression = Compression::kZstd;
  std::string key;
  std::string file_id;
  std::string application_name = "pgsafe-restore";
  // Data sent as COPY BINARY where every column has an exact rewrite (copybin.hpp).
  bool binary = true;
  // Each table in one transaction that truncates it first, so COPY FREEZE applies: rows are
  // written frozen and all-visible (no hint-bit writes or anti-wraparound vacuum later), and
  // with wal_level = minimal the load skips WAL.
  bool freeze = true;
  // A table bigger than one worker's share of the data (which would otherwise alone set the
  // restore's length) loads on every worker that has nothing else to load, each chunk in its
  // own transaction (so without FREEZE). PostgreSQL 15 queues such loads on the relation
  // extension lock, so only that table is split.
  bool split_largest = true;
  std::string maintenance_work_mem = "512MB";  // for the index and key builds
  // Per table: statements (its index and key builds) run on a worker connection as soon as
  // every chunk of the table is loaded, while other tables are still loading.
  std::map<std::string, std::vector<std::string>> after_table;
  std::function<void(const RestoreProgress&)> on_progress;
};

// Loads data chunks (COPY header, rows, `\.`) in parallel, a table per worker at a time (see
// RestoreOptions); every chunk is checked before it is loaded. Returns rows loaded.
long long restore_chunks(const std::string& dsn, const std::string& path,
                         const std::vector<BackupChunk>& chunks, const RestoreOptions& options);

}  // namespace pgsafe
