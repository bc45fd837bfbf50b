// Table data fingerprints: COPY text rows hashed with XXH3-128 and summed, scanned in ctid
// ranges by worker connections that share one exported snapshot. The calling thread only
// coordinates: it watches for interrupts (Python runs signal handlers on the main thread only),
// reports progress, and cancels every worker's COPY when the scan must stop.
#include "pgsafe/datafp.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "pgsafe/conn.hpp"
#include "pgsafe/errors.hpp"
#include "pgsafe/log.hpp"

namespace pgsafe {

namespace {

using Clock = std::chrono::steady_clock;

// Part of the digest's definition: changing it changes every fingerprint ever recorded.
constexpr XXH64_hash_t kRowSeed = 0;

// Part of the digest's definition too: the backup streams its rows under the same settings.
constexpr const char* kSessionSettings = kCopySessionSettings;

struct TableInfo {
  std::string oid;
  std::string name;  // quoted, schema-qualified
  char relkind = 'r';
  long long pages = 0;
};

struct Chunk {
  size_t table = 0;
  long long first_page = 0;  // ctid >= (first_page, 0)
  long long end_page = -1;   // ctid < (end_page, 0); -1: no upper bound
  bool whole = true;         // no ctid condition at all
  long long est_pages = 0;   // for scheduling: largest first
};

struct TableAcc {
  RowDigest digest;
  unsigned long long bytes = 0;
  Clock::time_point first{};
  Clock::time_point last{};
  bool started = false;
  int chunks = 0;
};

bool has_heap(char relkind) { return relkind == 'r' || relkind == 'm'; }

const char* relkind_name(char relkind) {
  switch (relkind) {
    case 'i':
    case 'I':
      return "an index";
    case 'S':
      return "a sequence";
    case 'c':
      return "a composite type";
    case 't':
      return "a TOAST table";
    default:
      return "not a table";
  }
}

std::vector<TableInfo> user_tables(Connection& conn, const std::vector<std::string>& exclude) {
  Result r = conn.execute(
      "SELECT c.oid, pg_catalog.quote_ident(n.nspname) || '.' || "
      "pg_catalog.quote_ident(c.relname), c.relkind "
      "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "WHERE c.relkind = 'r' AND n.nspname <> ALL ($1::pg_catalog.text[]) "
      "AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
      "ORDER BY n.nspname COLLATE \"C\", c.relname COLLATE \"C\"",
      {text_array(exclude)});
  std::vector<TableInfo> out;
  for (const Row& row : r.rows) out.push_back({*row[0], *row[1], (*row[2])[0], 0});
  return out;
}

std::vector<TableInfo> named_tables(Connection& conn, const std::vector<std::string>& names) {
  std::vector<TableInfo> out;
  for (const std::string& name : names) {
    Result r = conn.execute(
        "SELECT c.oid, pg_catalog.quote_ident(n.nspname) || '.' || "
        "pg_catalog.quote_ident(c.relname), c.relkind "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = pg_catalog.to_regclass($1)",
        {name});
    if (r.rows.empty()) {
      throw ConfigError("no table named " + name + " in database " + conn.dbname());
    }
    TableInfo t{*r.rows[0][0], *r.rows[0][1], (*r.rows[0][2])[0], 0};
    if (std::string("rpvmf").find(t.relkind) == std::string::npos) {
      throw ConfigError(name + " is " + relkind_name(t.relkind) + ", not a table or view");
    }
    bool seen =
        std::any_of(out.begin(), out.end(), [&](const TableInfo& o) { return o.oid == t.oid; });
    if (!seen) out.push_back(std::move(t));
  }
  return out;
}

// Freezes the tables and returns the snapshot's name ("" when no other connection needs it).
// LOCK runs before any statement takes the REPEATABLE READ snapshot, so a table rewrite that
// is not MVCC-safe (VACUUM FULL, CLUSTER, ALTER TABLE ... TYPE, TRUNCATE) either committed
// before the snapshot or waits until the scan ends. LOCK TABLE refuses materialized views and
// foreign tables; a SELECT right after the snapshot takes their ACCESS SHARE lock instead.
std::string freeze(Connection& conn, std::vector<TableInfo>& tables, bool export_snapshot) {
  conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
  std::string lockable;
  std::string others;
  std::vector<std::string> oids;
  for (const TableInfo& t : tables) {
    oids.push_back(t.oid);
    bool can_lock = t.relkind == 'r' || t.relkind == 'p' || t.relkind == 'v';
    std::string& list = can_lock ? lockable : others;
    list += (list.empty() ? "" : ", ") + t.name;
  }
  if (!lockable.empty()) conn.execute("LOCK TABLE " + lockable + " IN ACCESS SHARE MODE");
  std::string snapshot;
  if (export_snapshot)
    snapshot = *conn.execute("SELECT pg_catalog.pg_export_snapshot()").rows[0][0];
  for (const TableInfo& t : tables) {
    if (!(t.relkind == 'r' || t.relkind == 'p' || t.relkind == 'v')) {
      conn.execute("SELECT FROM ONLY " + t.name + " LIMIT 0");
    }
  }
  // Sizes measured now, after the snapshot: every row it sees is on a page below this, and the
  // last range is open-ended anyway.
  Result sizes = conn.execute(
      "SELECT c.oid, pg_catalog.pg_relation_size(c.oid) / "
      "pg_catalog.current_setting('block_size')::bigint "
      "FROM pg_catalog.pg_class c WHERE c.oid = ANY ($1::pg_catalog.oid[])",
      {text_array(oids)});
  for (const Row& row : sizes.rows) {
    for (TableInfo& t : tables) {
      if (t.oid == *row[0]) t.pages = std::atoll(row[1]->c_str());
    }
  }
  return snapshot;
}

std::vector<Chunk> plan_chunks(const std::vector<TableInfo>& tables, long long chunk_pages) {
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < tables.size(); ++i) {
    const TableInfo& t = tables[i];
    if (!has_heap(t.relkind) || t.pages <= chunk_pages) {
      chunks.push_back({i, 0, -1, true, t.pages});
      continue;
    }
    for (long long first = 0; first < t.pages; first += chunk_pages) {
      bool last = first + chunk_pages >= t.pages;
      long long end = last ? -1 : first + chunk_pages;
      chunks.push_back({i, first, end, false, std::min(chunk_pages, t.pages - first)});
    }
  }
  std::stable_sort(chunks.begin(), chunks.end(),
                   [](const Chunk& a, const Chunk& b) { return a.est_pages > b.est_pages; });
  return chunks;
}

std::string chunk_sql(const TableInfo& t, const Chunk& c) {
  // ONLY: an inheritance parent's children are tables of their own (and their ctids would fall
  // in every range). A partitioned table has no rows of its own, so it reads its partitions.
  std::string sql = "COPY (SELECT * FROM ";
  sql += t.relkind == 'p' ? "" : "ONLY ";
  sql += t.name;
  if (!c.whole) {
    sql += " WHERE ";
    if (c.first_page > 0) sql += "ctid >= '(" + std::to_string(c.first_page) + ",0)'::tid";
    if (c.first_page > 0 && c.end_page >= 0) sql += " AND ";
    if (c.end_page >= 0) sql += "ctid < '(" + std::to_string(c.end_page) + ",0)'::tid";
  }
  return sql + ") TO STDOUT";
}

// Everything the threads share, guarded by `mutex`.
struct Scan {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<Chunk> chunks;
  size_t next = 0;
  // Chunks that only the coordinating connection may scan: it holds every table's lock since
  // before the snapshot, while another worker asking for one now could queue behind a rewrite
  // that waits for the coordinator: a deadlock the server cannot see.
  std::vector<Chunk> deferred;
  std::vector<bool> contended;  // per table: a worker could not lock it without waiting
  int helpers_running = 0;      // workers other than the coordinating one
  std::vector<TableAcc> acc;
  bool abort = false;
  std::exception_ptr error;
  std::vector<Connection*> running;  // connections that may be mid-COPY, for cancel()
  int finished = 0;
  FingerprintProgress progress;

  // Records the first real failure; errors after an abort are our own cancels.
  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> guard(mutex);
    if (!abort) error = std::move(e);
    abort = true;
    changed.notify_all();
  }

  // The next chunk for a worker, or false when it is done. The coordinating worker takes
  // deferred chunks first and, once the queue is empty, waits for helpers that may still defer.
  bool take(bool coordinating, Chunk& out) {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      if (abort) return false;
      if (coordinating && !deferred.empty()) {
        out = deferred.back();
        deferred.pop_back();
        return true;
      }
      if (next < chunks.size()) {
        out = chunks[next++];
        return true;
      }
      if (!coordinating || helpers_running == 0) return false;
      changed.wait(lock);
    }
  }

  void defer(const Chunk& chunk) {
    std::lock_guard<std::mutex> guard(mutex);
    contended[chunk.table] = true;
    deferred.push_back(chunk);
    changed.notify_all();
  }
};

// A helper's ACCESS SHARE lock on a table, only if it is granted at once. A failed NOWAIT is
// rolled back to a savepoint, so the transaction, and the imported snapshot, live on.
bool try_lock(Connection& conn, const TableInfo& t) {
  if (!(t.relkind == 'r' || t.relkind == 'p' || t.relkind == 'v')) return false;
  try {
    conn.execute("SAVEPOINT pgsafe_lock; LOCK TABLE " + t.name +
                 " IN ACCESS SHARE MODE NOWAIT; RELEASE SAVEPOINT pgsafe_lock");
    return true;
  } catch (const DbError& e) {
    if (e.sqlstate() != "55P03" || !e.fields().connection_usable) throw;
    conn.execute("ROLLBACK TO SAVEPOINT pgsafe_lock");
    log::core()->info("fingerprint: {} is contended; the coordinating connection scans it", t.name);
    return false;
  }
}

void scan_chunks(Scan& scan, const std::vector<TableInfo>& tables, Connection& conn,
                 bool coordinating) {
  // The coordinating connection locked every table before the snapshot was taken.
  std::vector<bool> locked(tables.size(), coordinating);
  Chunk chunk;
  while (scan.take(coordinating, chunk)) {
    if (!locked[chunk.table]) {
      bool contended = false;
      {
        std::lock_guard<std::mutex> guard(scan.mutex);
        contended = scan.contended[chunk.table];
      }
      if (contended || !try_lock(conn, tables[chunk.table])) {
        scan.defer(chunk);
        continue;
      }
      locked[chunk.table] = true;
    }
    RowDigest digest;
    const auto started = Clock::now();
    CopyStats stats = conn.copy_out(chunk_sql(tables[chunk.table], chunk),
                                    [&digest](std::string_view row) { digest.add(row); });
    const auto ended = Clock::now();
    std::lock_guard<std::mutex> guard(scan.mutex);
    TableAcc& acc = scan.acc[chunk.table];
    acc.digest.merge(digest);
    acc.bytes += stats.bytes;
    acc.first = acc.started ? std::min(acc.first, started) : started;
    acc.last = acc.started ? std::max(acc.last, ended) : ended;
    acc.started = true;
    ++acc.chunks;
    ++scan.progress.chunks_done;
    scan.progress.rows += stats.rows;
    scan.progress.bytes += stats.bytes;
    scan.changed.notify_all();
  }
}

// `coordinator` is the connection holding the snapshot for worker 0, null for a helper, which
// opens its own connection and imports the snapshot.
void run_worker(Scan& scan, const std::vector<TableInfo>& tables, Connection* coordinator,
                const std::string& dsn, const std::string& application_name,
                const std::string& snapshot) {
  ScopedNoInterruptCheck quiet;  // the calling thread watches for interrupts and cancels us
  std::unique_ptr<Connection> own;
  Connection* conn = coordinator;
  if (conn == nullptr) {
    try {
      own = std::make_unique<Connection>(dsn, application_name);
      own->execute(std::string(kSessionSettings) +
                   "; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
                   "SET TRANSACTION SNAPSHOT " +
                   sql_literal(snapshot));
      conn = own.get();
    } catch (const std::exception& e) {
      // No connection to spare (max_connections, a pooler): the others do the work.
      log::core()->warn("fingerprint: a worker could not start, continuing without it: {}",
                        e.what());
    }
  }
  if (conn != nullptr) {
    {
      std::lock_guard<std::mutex> guard(scan.mutex);
      scan.running.push_back(conn);
    }
    try {
      scan_chunks(scan, tables, *conn, coordinator != nullptr);
    } catch (...) {
      scan.fail(std::current_exception());
    }
  }
  std::lock_guard<std::mutex> guard(scan.mutex);
  scan.running.erase(std::remove(scan.running.begin(), scan.running.end(), conn),
                     scan.running.end());
  if (coordinator == nullptr) --scan.helpers_running;
  ++scan.finished;
  scan.changed.notify_all();
  // `own` closes after this, out of the calling thread's reach: it is no longer in `running`.
}

}  // namespace

void RowDigest::add(std::string_view row) noexcept {
  if (!row.empty() && row.back() == '\n') row.remove_suffix(1);
  XXH128_hash_t h = XXH3_128bits_withSeed(row.data(), row.size(), kRowSeed);
  lo_ += h.low64;
  hi_ += h.high64 + (lo_ < h.low64 ? 1 : 0);
  ++rows_;
}

void RowDigest::merge(const RowDigest& other) noexcept {
  lo_ += other.lo_;
  hi_ += other.hi_ + (lo_ < other.lo_ ? 1 : 0);
  rows_ += other.rows_;
}

std::string RowDigest::hex() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[15 - i] = kHex[(hi_ >> (4 * i)) & 0xF];
    out[31 - i] = kHex[(lo_ >> (4 * i)) & 0xF];
  }
  return out;
}

std::vector<TableFingerprint> fingerprint_tables(const std::string& dsn,
                                                 const FingerprintOptions& options) {
  if (options.workers < 1) throw ConfigError("workers must be 1 or more");
  if (options.chunk_pages < 0) throw ConfigError("chunk_pages must be 1 or more (0: default)");
  const long long chunk_pages = options.chunk_pages > 0 ? options.chunk_pages : kDefaultChunkPages;
  Connection coordinator(dsn, options.application_name);
  std::vector<TableInfo> tables = options.tables.empty()
                                      ? user_tables(coordinator, options.exclude_schemas)
                                      : named_tables(coordinator, options.tables);
  if (tables.empty()) return {};
  coordinator.execute(kSessionSettings);

  Scan scan;
  const bool parallel = options.workers > 1;
  std::string snapshot = freeze(coordinator, tables, parallel);
  scan.chunks = plan_chunks(tables, chunk_pages);
  scan.acc.resize(tables.size());
  scan.contended.assign(tables.size(), false);
  scan.progress.chunks_total = static_cast<int>(scan.chunks.size());
  const size_t nthreads = std::min(static_cast<size_t>(options.workers), scan.chunks.size());
  log::core()->debug("fingerprint: {} tables, {} chunks of up to {} pages, {} workers",
                     tables.size(), scan.chunks.size(), chunk_pages, nthreads);

  std::vector<std::thread> threads;
  threads.reserve(nthreads);
  scan.helpers_running = static_cast<int>(nthreads) - 1;
  try {
    for (size_t i = 0; i < nthreads; ++i) {
      // The coordinating connection scans too: it already holds the snapshot.
      Connection* conn = i == 0 ? &coordinator : nullptr;
      threads.emplace_back(run_worker, std::ref(scan), std::cref(tables), conn, std::cref(dsn),
                           std::cref(options.application_name), std::cref(snapshot));
    }
  } catch (...) {  // no thread to be had: stop the ones that started before reporting it
    scan.fail(std::current_exception());
    std::lock_guard<std::mutex> guard(scan.mutex);
    scan.helpers_running -= static_cast<int>(nthreads - threads.size());
  }
  bool interrupted = false;
  int reported = 0;
  {
    std::unique_lock<std::mutex> lock(scan.mutex);
    while (scan.finished < static_cast<int>(threads.size())) {
      scan.changed.wait_for(lock, std::chrono::milliseconds(100));
      if (!scan.abort) {
        lock.unlock();
        bool stop = interrupt_requested();  // may run Python signal handlers: not under lock
        lock.lock();
        if (stop && !scan.abort) {
          log::core()->warn("interrupted: cancelling the fingerprint's COPY on the server");
          interrupted = true;
          scan.abort = true;
          scan.changed.notify_all();
        }
      }
      if (scan.abort) {
        // Again every slice: a worker may have started its next COPY after the last cancel.
        for (Connection* c : scan.running) c->cancel();
        continue;
      }
      if (options.on_progress && scan.progress.chunks_done != reported) {
        FingerprintProgress now = scan.progress;
        reported = now.chunks_done;
        lock.unlock();
        try {
          options.on_progress(now);
        } catch (...) {
          scan.fail(std::current_exception());
        }
        lock.lock();
      }
    }
  }
  for (std::thread& t : threads) t.join();
  if (interrupted) throw Interrupted();
  if (scan.error) std::rethrow_exception(scan.error);
  if (options.on_progress && scan.progress.chunks_done != reported) {
    options.on_progress(scan.progress);
  }

  std::vector<TableFingerprint> out;
  out.reserve(tables.size());
  for (size_t i = 0; i < tables.size(); ++i) {
    const TableAcc& acc = scan.acc[i];
    TableFingerprint fp;
    fp.table = tables[i].name;
    fp.rows = acc.digest.rows();
    fp.digest = acc.digest.hex();
    fp.bytes = acc.bytes;
    fp.seconds = std::chrono::duration<double>(acc.last - acc.first).count();
    fp.chunks = acc.chunks;
    out.push_back(std::move(fp));
  }
  return out;
}

}  // namespace pgsafe
