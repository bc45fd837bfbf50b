// Table data fingerprints: a row count plus an order-independent digest of a table's rows, so
// a rewrite (VACUUM FULL, CLUSTER, a dump and restore) leaves it unchanged while a lost, added
// or altered row changes it. Rows stream as COPY text in ctid ranges that several connections
// scan in parallel inside one exported snapshot.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace pgsafe {

// Session settings under which COPY text does not depend on the session or the server's
// configuration (as pg_dump arranges), so the same data gives the same text and digest from
// any connection. search_path is emptied once names are resolved: reg* values print qualified.
inline constexpr const char* kCopySessionSettings =
    "SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; "
    "SET extra_float_digits = 3; SET bytea_output = 'hex'; SET lc_monetary = 'C'; "
    "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; "
    "SET jit = off; SET search_path = ''";

// A multiset hash of COPY text rows: the sum modulo 2^128 of each row's XXH3-128 hash. Any row
// order and any split into parts gives the same value (merge() adds parts); a row added,
// removed or changed moves it. It detects accidents, not an adversary who can choose rows.
class RowDigest {
 public:
  // One row of COPY text output; its trailing newline, if any, is not part of the row.
  void add(std::string_view row) noexcept;
  void merge(const RowDigest& other) noexcept;
  long long rows() const noexcept { return rows_; }
  // 32 lowercase hex digits, most significant first; all zeros for no rows.
  std::string hex() const;

 private:
  uint64_t hi_ = 0;
  uint64_t lo_ = 0;
  long long rows_ = 0;
};

struct TableFingerprint {
  std::string table;  // schema-qualified, quoted where SQL needs it: public."Order"
  long long rows = 0;
  std::string digest;            // RowDigest::hex() of all its rows
  unsigned long long bytes = 0;  // COPY text streamed, newlines included
  double seconds = 0;            // from its first chunk's start to its last chunk's end
  int chunks = 0;
};

struct FingerprintProgress {
  int chunks_done = 0;
  int chunks_total = 0;
  long long rows = 0;
  unsigned long long bytes = 0;
};

// 64 MiB of 8 kB pages: a 1 GB table becomes 16 ranges, enough to keep every worker busy.
constexpr long long kDefaultChunkPages = 8192;

struct FingerprintOptions {
  // Names as SQL resolves them with the session's search_path (`t`, `s.t`, `"Odd"`): tables,
  // partitioned tables, views, materialized views, foreign tables. Empty: every ordinary table
  // outside the system schemas and `exclude_schemas`.
  std::vector<std::string> tables;
  std::vector<std::string> exclude_schemas{"pgsafe"};
  int workers = 2;            // connections scanning at once, the coordinating one included
  long long chunk_pages = 0;  // ctid range size in pages; 0 means kDefaultChunkPages
  std::string application_name = "pgsafe-fingerprint";
  // Called on the calling thread after chunks finish (coalesced); an exception from it stops
  // the scan and is rethrown.
  std::function<void(const FingerprintProgress&)> on_progress;
};

// Fingerprints the tables of one consistent snapshot: the coordinating connection takes
// ACCESS SHARE locks (so no rewrite can swap a table out under the scan), then exports its
// REPEATABLE READ snapshot, which every worker imports. Interrupts cancel every worker's COPY.
// Throws ConfigError for bad options or unknown tables, DbError for server errors.
std::vector<TableFingerprint> fingerprint_tables(const std::string& dsn,
                                                 const FingerprintOptions& options);

}  // namespace pgsafe
