// Streaming backups: table data copied as COPY text by worker connections sharing one exported
// snapshot, each chunk compressed into an independent zstd frame or gzip member (optionally
// sealed with AES-256-GCM) and appended to one file as it finishes; restore loads the chunks in
// parallel. Python runs pg_dump for the DDL, writes the manifest and decides where files go.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pgsafe/errors.hpp"

namespace pgsafe {

enum class Compression { kZstd, kGzip };
Compression parse_compression(const std::string& name);  // "zstd" | "gzip"; ConfigError else

// A chunk as the file and the manifest describe it.
struct BackupChunk {
  int index = 0;             // position in the file, 0-based; the AEAD binds it
  std::string kind;          // "pre-data", "data", "post-data"
  std::string table;         // data chunks: schema-qualified, quoted where SQL needs it
  long long first_page = 0;  // data chunks: ctid >= (first_page,0)
  long long end_page = -1;   // ctid < (end_page,0); -1 none
  unsigned long long offset = 0;
  unsigned long long length = 0;  // bytes in the file (compressed, sealed when encrypted)
  long long rows = 0;
  unsigned long long raw_bytes = 0;  // plain SQL text before compression
  std::string sha256;                // of the `length` bytes at `offset`
};

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

// The magic that starts an encrypted file (never a valid zstd frame or gzip member).
constexpr std::string_view kEncryptedMagic = "PGSAFE-AEAD1\n";

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

// Thrown when a chunk's bytes are not what the manifest recorded (hash, length, AEAD tag,
// framing): names the chunk, so a flipped bit or a truncation is found where it is.
class ChunkError : public Error {
 public:
  ChunkError(const BackupChunk& chunk, const std::string& reason);
  int index() const noexcept { return index_; }
  const std::string& table() const noexcept { return table_; }
  unsigned long long offset() const noexcept { return offset_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  int index_;
  std::string table_;
  unsigned long long offset_;
  std::string reason_;
};

// Reads one chunk, checks its SHA-256, opens and decompresses it: its SQL text.
std::string read_chunk(const std::string& path, const BackupChunk& chunk, Compression compression,
                       const std::string& key, const std::string& file_id);
// Checks a chunk's SHA-256 only (no decompression); throws ChunkError.
void check_chunk(const std::string& path, const BackupChunk& chunk);
// Loads data chunks (COPY header, rows, `\.`) in parallel, a table per worker at a time (see
// RestoreOptions); every chunk is checked before it is loaded. Returns rows loaded.
long long restore_chunks(const std::string& dsn, const std::string& path,
                         const std::vector<BackupChunk>& chunks, const RestoreOptions& options);

// Associated data of chunk `index` of file `file_id`; `last` marks the final chunk, so a file
// cut after any chunk fails to open.
std::string chunk_aad(const std::string& file_id, int index, bool last);

// The chunk framing BackupWriter and restore use internally, reachable for the unit tests
// (cpp/tests/test_backup.cpp); not an API.
namespace detail {
// `data` as one self-contained zstd frame or gzip member, fed to the compressor `piece` bytes
// at a time (0: all at once), as a backup feeds it rows.
std::string compress_frame(Compression kind, int level, std::string_view data, size_t piece = 0);
// The contents of exactly one frame or member; throws Error when it is corrupt, cut short, or
// followed by other bytes.
std::string decompress_frame(Compression kind, std::string_view data);
// AES-256-GCM with a fresh random nonce: nonce (12 bytes), ciphertext, tag (16 bytes).
std::string seal_chunk(const std::string& key, const std::string& aad, std::string_view plain);
// The plaintext; throws Error when the tag does not verify (wrong key or associated data,
// altered bytes).
std::string open_chunk(const std::string& key, const std::string& aad, std::string_view sealed);
}  // namespace detail

}  // namespace pgsafe
