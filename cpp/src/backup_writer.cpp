// The backup writer: resolves and locks the tables, exports a snapshot, copies each table (in
// ctid ranges for big ones) on worker connections sharing it, and places every chunk in the
// file as it finishes.
#include "pgsafe/backup_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <utility>

#include "pgsafe/checksum.hpp"
#include "pgsafe/conn.hpp"
#include "pgsafe/datafp.hpp"
#include "pgsafe/errors.hpp"
#include "pgsafe/fd.hpp"
#include "pgsafe/log.hpp"
#include "pgsafe/thread_pool.hpp"

namespace pgsafe {

namespace {

// One COPY of a table, or of a ctid range of it.
struct DataTask {
  size_t table = 0;
  long long first_page = 0;
  long long end_page = -1;
  bool whole = true;
  long long est_pages = 0;
};

}  // namespace

struct BackupWriter::Impl {
  std::string dsn;
  std::string path;
  BackupOptions options;
  Connection coordinator;
  std::string snapshot;
  std::vector<BackupTableInfo> tables;
  // Per table, per column (attnum order): stored (true) or generated. A generated column is
  // digested (so the digest equals `pgsafe fingerprint`'s) but not written: COPY FROM refuses it.
  std::vector<std::vector<bool>> keeps;
  std::vector<std::string> oids;
  Fd fd;
  std::mutex mutex;  // guards the file layout below and the tables' accumulators
  unsigned long long next_offset = 0;
  std::vector<BackupChunk> chunks;
  std::vector<RowDigest> digests;
  bool finished = false;

  Impl(std::string d, std::string p, BackupOptions o)
      : dsn(std::move(d)),
        path(std::move(p)),
        options(std::move(o)),
        coordinator(dsn, options.application_name) {}

  // Reserves the chunk's place in the file, then seals, hashes and writes it there.
  BackupChunk place(BackupChunk chunk, std::string& compressed, bool last) {
    const bool sealed = !options.key.empty();
    const unsigned long long length = compressed.size() + (sealed ? kNonceBytes + kTagBytes : 0);
    {
      std::lock_guard<std::mutex> guard(mutex);
      chunk.index = static_cast<int>(chunks.size());
      chunk.offset = next_offset;
      chunk.length = length;
      next_offset += length;
      chunks.push_back(chunk);
    }
    std::string sealed_bytes;
    std::string_view bytes = compressed;
    if (sealed) {
      sealed_bytes =
          seal_chunk(options.key, chunk_aad(options.file_id, chunk.index, last), compressed);
      bytes = sealed_bytes;
    }
    chunk.sha256 = sha256_hex(bytes);
    write_at(fd.get(), path, bytes, chunk.offset);
    std::lock_guard<std::mutex> guard(mutex);
    chunks[static_cast<size_t>(chunk.index)].sha256 = chunk.sha256;
    return chunk;
  }

  void resolve_tables() {
    const char* select =
        "SELECT c.oid, pg_catalog.quote_ident(n.nspname) || '.' || "
        "pg_catalog.quote_ident(c.relname), c.relkind, "
        "(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' "
        "ORDER BY a.attnum) FILTER (WHERE a.attgenerated = '') FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), "
        "EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 "
        "AND NOT a.attisdropped AND a.attgenerated <> ''), "
        "(SELECT pg_catalog.string_agg(CASE WHEN a.attgenerated = '' THEN 'k' ELSE 'g' END, '' "
        "ORDER BY a.attnum) FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ";
    std::vector<Row> rows;
    if (options.tables.empty()) {
      // What pg_dump dumps the data of: ordinary tables, not an extension's own.
      Result r = coordinator.execute(
          std::string(select) +
              "WHERE c.relkind = 'r' AND n.nspname <> ALL ($1::pg_catalog.text[]) "
              "AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
              "AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = "
              "'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e') "
              "ORDER BY n.nspname COLLATE \"C\", c.relname COLLATE \"C\"",
          {text_array(options.exclude_schemas)});
      rows = std::move(r.rows);
    } else {
      for (const std::string& name : options.tables) {
        Result r = coordinator.execute(
            std::string(select) + "WHERE c.oid = pg_catalog.to_regclass($1)", {name});
        if (r.rows.empty()) {
          throw ConfigError("no table named " + name + " in database " + coordinator.dbname());
        }
        if ((*r.rows[0][2])[0] != 'r') {
          throw ConfigError(name +
                            " is not an ordinary table (back up a partitioned table's "
                            "partitions by name)");
        }
        bool seen = std::any_of(rows.begin(), rows.end(),
                                [&](const Row& o) { return *o[0] == *r.rows[0][0]; });
        if (!seen) rows.push_back(std::move(r.rows[0]));
      }
    }
    for (const Row& row : rows) {
      oids.push_back(*row[0]);
      BackupTableInfo t;
      t.table = *row[1];
      t.columns = row[3] ? "(" + *row[3] + ")" : "";
      t.has_generated = *row[4] == "t";
      tables.push_back(std::move(t));
      std::vector<bool> keep;
      for (char ch : row[5].value_or("")) keep.push_back(ch == 'k');
      keeps.push_back(std::move(keep));
    }
  }

  void freeze() {
    coordinator.execute(std::string(kCopySessionSettings) +
                        "; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    if (!tables.empty()) {
      std::string list;
      for (const BackupTableInfo& t : tables) list += (list.empty() ? "" : ", ") + t.table;
      // Before the snapshot: a rewrite that is not MVCC-safe either committed before it or
      // waits until the backup ends.
      coordinator.execute("LOCK TABLE " + list + " IN ACCESS SHARE MODE");
    }
    snapshot = *coordinator.execute("SELECT pg_catalog.pg_export_snapshot()").rows[0][0];
    if (tables.empty()) return;
    Result sizes = coordinator.execute(
        "SELECT c.oid, pg_catalog.pg_relation_size(c.oid) / "
        "pg_catalog.current_setting('block_size')::bigint "
        "FROM pg_catalog.pg_class c WHERE c.oid = ANY ($1::pg_catalog.oid[])",
        {text_array(oids)});
    for (const Row& row : sizes.rows) {
      for (size_t i = 0; i < oids.size(); ++i) {
        if (oids[i] == *row[0]) tables[i].pages = std::atoll(row[1]->c_str());
      }
    }
  }
};

BackupWriter::BackupWriter(const std::string& dsn, const std::string& path,
                           const BackupOptions& options)
    : impl_(std::make_unique<Impl>(dsn, path, options)) {
  if (options.workers < 1) throw ConfigError("workers must be 1 or more");
  if (!options.key.empty() && options.key.size() != 32) {
    throw ConfigError("an AES-256 key is 32 bytes, not " + std::to_string(options.key.size()));
  }
  Impl& m = *impl_;
  if (m.options.level == 0) m.options.level = m.options.compression == Compression::kZstd ? 1 : 3;
  m.resolve_tables();
  m.freeze();
  m.digests.resize(m.tables.size());
  m.fd.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (m.fd.get() < 0) throw FileError(path, "cannot create: " + errno_text());
  if (!options.key.empty()) {
    std::string header = std::string(kEncryptedMagic) + options.file_id + "\n";
    write_at(m.fd.get(), path, header, 0);
    m.next_offset = header.size();
  }
}

BackupWriter::~BackupWriter() = default;

const std::string& BackupWriter::snapshot() const { return impl_->snapshot; }
int BackupWriter::server_version() const { return impl_->coordinator.server_version(); }
const std::vector<BackupTableInfo>& BackupWriter::tables() const { return impl_->tables; }

std::string BackupWriter::sequence_values_sql() {
  Impl& m = *impl_;
  std::string where;
  std::vector<Value> params;
  if (m.options.tables.empty()) {
    where =
        "n.nspname <> ALL ($1::pg_catalog.text[]) AND n.nspname <> 'information_schema' "
        "AND n.nspname !~ '^pg_' AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend e WHERE "
        "e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND e.objid = s.oid "
        "AND e.deptype = 'e')";
    params.emplace_back(text_array(m.options.exclude_schemas));
  } else {
    // pg_dump -t dumps a table's owned sequences (serial and identity) with it.
    where =
        "EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = "
        "'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = s.oid AND d.deptype IN "
        "('a', 'i') AND d.refobjid = ANY ($1::pg_catalog.oid[]))";
    params.emplace_back(text_array(m.oids));
  }
  Result seqs = m.coordinator.execute(
      "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(s.relname) "
      "FROM pg_catalog.pg_class s JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace "
      "WHERE s.relkind = 'S' AND " +
          where + " ORDER BY n.nspname COLLATE \"C\", s.relname COLLATE \"C\"",
      params);
  std::string out;
  for (const Row& row : seqs.rows) {
    Result v = m.coordinator.execute("SELECT last_value, is_called FROM " + *row[0]);
    out += "SELECT pg_catalog.setval(" + sql_literal(*row[0]) + ", " + *v.rows[0][0] + ", " +
           (*v.rows[0][1] == "t" ? "true" : "false") + ");\n";
  }
  return out;
}

BackupChunk BackupWriter::add_section(const std::string& kind, std::string_view sql) {
  Impl& m = *impl_;
  Compressor comp(m.options.compression, m.options.level);
  comp.begin();
  comp.add(sql);
  BackupChunk chunk;
  chunk.kind = kind;
  chunk.raw_bytes = comp.raw_bytes();
  return m.place(std::move(chunk), comp.end(), kind == "post-data");
}

void BackupWriter::copy_data() {
  Impl& m = *impl_;
  const long long chunk_pages =
      m.options.chunk_pages > 0 ? m.options.chunk_pages : kDefaultChunkPages;
  std::vector<DataTask> tasks;
  for (size_t i = 0; i < m.tables.size(); ++i) {
    const long long pages = m.tables[i].pages;
    if (pages <= chunk_pages) {
      tasks.push_back({i, 0, -1, true, pages});
      continue;
    }
    for (long long first = 0; first < pages; first += chunk_pages) {
      bool last = first + chunk_pages >= pages;
      tasks.push_back(
          {i, first, last ? -1 : first + chunk_pages, false, std::min(chunk_pages, pages - first)});
    }
  }
  std::stable_sort(tasks.begin(), tasks.end(),
                   [](const DataTask& a, const DataTask& b) { return a.est_pages > b.est_pages; });
  if (tasks.empty()) return;

  WorkerPool pool;
  size_t next = 0;
  std::vector<DataTask> deferred;  // only the coordinator, which locked every table, takes these
  std::vector<bool> contended(m.tables.size(), false);
  int helpers_running = 0;
  BackupProgress progress;
  progress.chunks_total = static_cast<int>(tasks.size());

  auto take = [&](bool coordinating, DataTask& out) {
    std::unique_lock<std::mutex> lock(pool.mutex);
    for (;;) {
      if (pool.abort) return false;
      if (coordinating && !deferred.empty()) {
        out = deferred.back();
        deferred.pop_back();
        return true;
      }
      if (next < tasks.size()) {
        out = tasks[next++];
        return true;
      }
      if (!coordinating || helpers_running == 0) return false;
      pool.changed.wait(lock);
    }
  };

  auto work = [&](Connection& conn, bool coordinating) {
    Compressor comp(m.options.compression, m.options.level);
    std::vector<bool> locked(m.tables.size(), coordinating);
    DataTask task;
    while (take(coordinating, task)) {
      const BackupTableInfo& t = m.tables[task.table];
      if (!locked[task.table]) {
        bool skip;
        {
          std::lock_guard<std::mutex> guard(pool.mutex);
          skip = contended[task.table];
        }
        if (!skip) {
          try {
            conn.execute("SAVEPOINT pgsafe_lock; LOCK TABLE " + t.table +
                         " IN ACCESS SHARE MODE NOWAIT; RELEASE SAVEPOINT pgsafe_lock");
            locked[task.table] = true;
          } catch (const DbError& e) {
            if (e.sqlstate() != "55P03" || !e.fields().connection_usable) throw;
            conn.execute("ROLLBACK TO SAVEPOINT pgsafe_lock");
            skip = true;
          }
        }
        if (skip) {
          std::lock_guard<std::mutex> guard(pool.mutex);
          contended[task.table] = true;
          deferred.push_back(task);
          pool.changed.notify_all();
          continue;
        }
      }
      std::string sql = "COPY (SELECT * FROM ONLY " + t.table;
      if (!task.whole) {
        sql += " WHERE ";
        if (task.first_page > 0)
          sql += "ctid >= '(" + std::to_string(task.first_page) + ",0)'::tid";
        if (task.first_page > 0 && task.end_page >= 0) sql += " AND ";
        if (task.end_page >= 0) sql += "ctid < '(" + std::to_string(task.end_page) + ",0)'::tid";
      }
      sql += ") TO STDOUT";
      RowDigest digest;
      comp.begin();
      comp.add("COPY " + t.table + (t.columns.empty() ? "" : " " + t.columns) + " FROM stdin;\n");
      const std::vector<bool>& keep = m.keeps[task.table];
      std::string kept;
      CopyStats stats = conn.copy_out(sql, [&](std::string_view row) {
        digest.add(row);
        if (!t.has_generated) {
          comp.add(row);
          return;
        }
        // COPY text escapes tabs inside values, so every tab separates two columns.
        kept.clear();
        size_t col = 0;
        size_t start = 0;
        bool first = true;
        std::string_view body = row.substr(0, row.size() - (row.ends_with('\n') ? 1 : 0));
        for (;;) {
          size_t tab = body.find('\t', start);
          std::string_view value = body.substr(
              start, tab == std::string_view::npos ? std::string_view::npos : tab - start);
          if (col >= keep.size() || keep[col]) {
            if (!first) kept += '\t';
            first = false;
            kept += value;
          }
          ++col;
          if (tab == std::string_view::npos) break;
          start = tab + 1;
        }
        kept += '\n';
        comp.add(kept);
      });
      comp.add("\\.\n\n");
      BackupChunk chunk;
      chunk.kind = "data";
      chunk.table = t.table;
      chunk.first_page = task.whole ? 0 : task.first_page;
      chunk.end_page = task.whole ? -1 : task.end_page;
      chunk.rows = stats.rows;
      chunk.raw_bytes = comp.raw_bytes();
      BackupChunk placed = m.place(std::move(chunk), comp.end(), false);
      std::lock_guard<std::mutex> guard(pool.mutex);
      m.digests[task.table].merge(digest);
      BackupTableInfo& info = m.tables[task.table];
      info.bytes += stats.bytes;
      ++info.chunks;
      ++progress.chunks_done;
      progress.rows += stats.rows;
      progress.raw_bytes += placed.raw_bytes;
      progress.written += placed.length;
      ++pool.done;
      pool.changed.notify_all();
    }
  };

  auto run = [&](Connection* coordinator) {
    ScopedNoInterruptCheck quiet;
    std::unique_ptr<Connection> own;
    Connection* conn = coordinator;
    if (conn == nullptr) {
      try {
        own = std::make_unique<Connection>(m.dsn, m.options.application_name);
        own->execute(std::string(kCopySessionSettings) +
                     "; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
                     "SET TRANSACTION SNAPSHOT " +
                     sql_literal(m.snapshot));
        conn = own.get();
      } catch (const std::exception& e) {
        log::core()->warn("backup: a worker could not start, continuing without it: {}", e.what());
      }
    }
    if (conn != nullptr) {
      pool.enter(conn);
      try {
        work(*conn, coordinator != nullptr);
      } catch (...) {
        pool.fail(std::current_exception());
      }
    }
    {
      std::lock_guard<std::mutex> guard(pool.mutex);
      if (coordinator == nullptr) --helpers_running;
    }
    pool.leave(conn);
  };

  const size_t nthreads = std::min(static_cast<size_t>(m.options.workers), tasks.size());
  helpers_running = static_cast<int>(nthreads) - 1;
  std::vector<std::thread> threads;
  try {
    for (size_t i = 0; i < nthreads; ++i) {
      threads.emplace_back(run, i == 0 ? &m.coordinator : nullptr);
    }
  } catch (...) {
    pool.fail(std::current_exception());
    std::lock_guard<std::mutex> guard(pool.mutex);
    helpers_running -= static_cast<int>(nthreads - threads.size());
  }
  std::function<void()> report;
  if (m.options.on_progress) {
    report = [&] {
      BackupProgress now;
      {
        std::lock_guard<std::mutex> guard(pool.mutex);
        now = progress;
      }
      m.options.on_progress(now);
    };
  }
  supervise(pool, threads, report, "backup");
  for (size_t i = 0; i < m.tables.size(); ++i) {
    m.tables[i].rows = m.digests[i].rows();
    m.tables[i].digest = m.digests[i].hex();
  }
}

std::vector<BackupChunk> BackupWriter::finish() {
  Impl& m = *impl_;
  if (::fsync(m.fd.get()) != 0) throw FileError(m.path, "cannot fsync: " + errno_text());
  if (::close(m.fd.release()) != 0) throw FileError(m.path, "cannot close: " + errno_text());
  m.coordinator.execute("COMMIT");
  m.finished = true;
  return m.chunks;
}

}  // namespace pgsafe
