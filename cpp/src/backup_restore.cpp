// Parallel restore of a backup's data chunks (see backup_restore.hpp).
#include "pgsafe/backup_restore.hpp"

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>

#include "pgsafe/conn.hpp"
#include "pgsafe/copybin.hpp"
#include "pgsafe/errors.hpp"
#include "pgsafe/log.hpp"
#include "pgsafe/thread_pool.hpp"

namespace pgsafe {

namespace {

// A data chunk's first line (its COPY header); what was decompressed after it stays in `buf`.
std::string first_line(Decompressor& d, std::string& buf) {
  size_t nl;
  while ((nl = buf.find('\n')) == std::string::npos) {
    if (!d.next(buf, 1 << 16)) throw Error("does not start with a COPY header");
  }
  std::string line = buf.substr(0, nl);
  buf.erase(0, nl + 1);
  return line;
}

// A data chunk's text could not be rewritten as COPY BINARY: its table is loaded as text.
class NotBinary : public Error {
 public:
  NotBinary() : Error("not convertible to COPY BINARY") {}
};

struct ChunkLoad {
  // Given the chunk's COPY header: its rewrite to COPY BINARY, or null to send the text.
  std::function<const CopyTextToBinary*(const std::string& header)> binary;
  bool freeze = false;  // COPY ... FREEZE (table truncated in this transaction)
};

// Checks, opens and streams one data chunk into its table: decompression (and the rewrite to
// COPY BINARY) runs while the server parses the previous piece.
long long load_chunk(Connection& conn, const std::string& path, const BackupChunk& chunk,
                     const RestoreOptions& options, const ChunkLoad& how) {
  std::string bytes = checked_chunk(path, chunk, options.key, options.file_id);
  try {
    Decompressor d(options.compression, bytes);
    std::string buf;
    std::string header = first_line(d, buf);
    const std::string_view tail = " FROM stdin;";
    if (header.compare(0, 5, "COPY ") != 0 || !std::string_view(header).ends_with(tail)) {
      throw Error("does not start with a COPY header");
    }
    const CopyTextToBinary* binary = how.binary ? how.binary(header) : nullptr;
    header.pop_back();
    if (binary != nullptr) {
      header += how.freeze ? " (FORMAT binary, FREEZE)" : " (FORMAT binary)";
    } else if (how.freeze) {
      header += " (FREEZE)";
    }
    // The end marker `\.` and the blank line after it stay behind until the frame ends.
    constexpr size_t kHold = 8;
    bool ended = false;
    bool started = false;
    char last_sent = '\n';  // nothing sent yet counts as the start of a line
    long long converted = 0;
    // Hands `text` (whole lines) to the server, as it is or rewritten.
    auto emit = [&](std::string& piece, std::string_view text) {
      if (binary == nullptr) {
        piece.assign(text);
        return;
      }
      piece.clear();
      if (!started) piece.append(CopyTextToBinary::header());
      started = true;
      if (!binary->convert(text, piece, converted)) throw NotBinary();
    };
    long long loaded = conn.copy_in(header, [&](std::string& piece) {
      if (ended) return false;
      for (;;) {
        if (!d.next(buf)) break;
        if (buf.size() > kHold + (1 << 20)) {
          size_t cut = buf.size() - kHold;
          if (binary != nullptr) {
            cut = buf.rfind('\n', cut - 1);
            if (cut == std::string::npos) continue;  // one long row: read on
            ++cut;
          }
          emit(piece, std::string_view(buf).substr(0, cut));
          last_sent = buf[cut - 1];
          buf.erase(0, cut);
          return true;
        }
      }
      ended = true;
      const std::string_view marker = "\\.\n\n";
      if (!std::string_view(buf).ends_with(marker)) throw Error("has no end-of-data marker");
      size_t end = buf.size() - marker.size();
      if ((end > 0 ? buf[end - 1] : last_sent) != '\n') throw Error("has no end-of-data marker");
      emit(piece, std::string_view(buf).substr(0, end));
      if (binary != nullptr) piece.append(CopyTextToBinary::trailer());
      return true;
    });
    if (binary != nullptr && loaded != converted) {
      throw Error("the server loaded " + std::to_string(loaded) + " rows of " +
                  std::to_string(converted));
    }
    return loaded;
  } catch (const ChunkError&) {
    throw;
  } catch (const DbError&) {
    throw;
  } catch (const NotBinary&) {
    throw;
  } catch (const Error& e) {
    throw ChunkError(chunk, e.what());
  }
}

// The COPY BINARY kinds of `table`'s columns as the chunk header `header` lists them (the
// stored columns in attnum order); nullopt when any has no exact binary rewrite, or the
// restored table's columns are not the header's.
std::optional<std::vector<FieldKind>> binary_fields(Connection& conn, const std::string& table,
                                                    const std::string& header) {
  Result r = conn.execute(
      "SELECT pg_catalog.quote_ident(a.attname), CASE t.typtype WHEN 'e' THEN 25 "
      "WHEN 'd' THEN t.typbasetype ELSE t.oid END "
      "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
      "WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped "
      "AND a.attgenerated = '' ORDER BY a.attnum",
      {table});
  if (r.rows.empty()) return std::nullopt;
  std::vector<FieldKind> kinds;
  std::string names;
  for (const Row& row : r.rows) {
    auto kind = field_kind_of_type(static_cast<unsigned int>(std::stoul(*row[1])));
    if (!kind) return std::nullopt;
    kinds.push_back(*kind);
    names += (names.empty() ? "" : ", ") + *row[0];
  }
  if (header != "COPY " + table + " (" + names + ") FROM stdin;") return std::nullopt;
  return kinds;
}

// What one worker loads at a time: a whole table in one transaction (truncated first, so that
// COPY FREEZE applies), or one chunk of a split table in its own transaction.
struct LoadUnit {
  std::string table;
  std::vector<size_t> chunks;  // indexes into the chunk list, in file order
  unsigned long long raw = 0;
  bool whole_table = false;
};

}  // namespace

long long restore_chunks(const std::string& dsn, const std::string& path,
                         const std::vector<BackupChunk>& chunks, const RestoreOptions& options) {
  if (options.workers < 1) throw ConfigError("workers must be 1 or more");
  if (chunks.empty()) return 0;
  std::map<std::string, unsigned long long> table_bytes;
  std::map<std::string, std::vector<size_t>> table_chunks;
  for (size_t i = 0; i < chunks.size(); ++i) {
    table_bytes[chunks[i].table] += chunks[i].raw_bytes;
    table_chunks[chunks[i].table].push_back(i);
  }
  // Largest first (as SQL text: what the server parses), so the longest loads and index builds
  // start first and the small tables fill in around them.
  std::string largest;
  unsigned long long total = 0;
  for (auto& [table, bytes] : table_bytes) {
    total += bytes;
    if (largest.empty() || bytes > table_bytes[largest]) largest = table;
  }
  // A table bigger than a worker's share would alone set the restore's length: its chunks go
  // to any worker that has nothing else, each in its own transaction (no FREEZE then).
  const bool split_largest = options.split_largest && options.workers > 1 &&
                             table_chunks[largest].size() > 1 &&
                             table_bytes[largest] * options.workers > total;
  std::vector<LoadUnit> units;
  for (auto& [table, idx] : table_chunks) {
    if (split_largest && table == largest) {
      for (size_t i : idx) units.push_back({table, {i}, table_bytes[table], false});
    } else {
      units.push_back({table, idx, table_bytes[table], true});
    }
  }
  std::stable_sort(units.begin(), units.end(), [&](const LoadUnit& a, const LoadUnit& b) {
    if (a.raw != b.raw) return a.raw > b.raw;
    if (a.table != b.table) return a.table < b.table;
    return a.chunks.front() < b.chunks.front();
  });
  std::vector<bool> taken(units.size(), false);
  // Worker 0 starts on the split table; the others load the rest first, then join it.
  auto pick = [&](int worker) -> const LoadUnit* {
    const bool big_first = worker == 0 || !split_largest;
    for (int pass = 0; pass < 2; ++pass) {
      const bool want_big = (pass == 0) == big_first;
      for (size_t i = 0; i < units.size(); ++i) {
        if (taken[i] || (split_largest && (units[i].table == largest) != want_big)) continue;
        taken[i] = true;
        return &units[i];
      }
      if (!split_largest) break;
    }
    return nullptr;
  };
  std::map<std::string, int> remaining;  // table -> units not loaded yet
  for (const LoadUnit& u : units) ++remaining[u.table];
  std::map<std::string, std::shared_ptr<const CopyTextToBinary>> converters;  // under the mutex
  std::vector<std::string> ddl_queue;
  WorkerPool pool;
  RestoreProgress progress;
  progress.chunks_total = static_cast<int>(chunks.size());

  // A table's rewrite to COPY BINARY (null: load as text), decided once from its first chunk's
  // header and shared by the workers that load its chunks.
  auto converter_for = [&](Connection& conn, const std::string& table, const std::string& header) {
    {
      std::lock_guard<std::mutex> guard(pool.mutex);
      auto found = converters.find(table);
      if (found != converters.end()) return found->second;
    }
    std::shared_ptr<const CopyTextToBinary> conv;
    if (auto kinds = binary_fields(conn, table, header)) {
      conv = std::make_shared<const CopyTextToBinary>(std::move(*kinds));
    }
    std::lock_guard<std::mutex> guard(pool.mutex);
    converters[table] = conv;
    return conv;
  };

  auto load_unit = [&](Connection& conn, const LoadUnit& unit) {
    std::shared_ptr<const CopyTextToBinary> conv;  // kept alive while the unit loads
    bool as_text = !options.binary;
    ChunkLoad how;
    how.freeze = options.freeze && unit.whole_table;
    how.binary = [&](const std::string& header) -> const CopyTextToBinary* {
      if (as_text) return nullptr;
      if (!conv) conv = converter_for(conn, unit.table, header);
      return conv.get();
    };
    for (;;) {
      long long rows_here = 0;
      int chunks_here = 0;
      unsigned long long bytes_here = 0;
      if (how.freeze) {
        try {
          conn.execute("BEGIN; TRUNCATE ONLY " + unit.table);
        } catch (const DbError& e) {
          // Not ours to truncate (another owner, say): load it plainly.
          conn.rollback_quietly("restore");
          log::core()->info("restore: loading {} without FREEZE: {}", unit.table, e.what());
          how.freeze = false;
        }
      }
      try {
        if (!how.freeze) conn.execute("BEGIN");
        for (size_t i : unit.chunks) {
          const BackupChunk& chunk = chunks[i];
          long long rows = load_chunk(conn, path, chunk, options, how);
          if (rows != chunk.rows) {
            throw ChunkError(chunk, "loaded " + std::to_string(rows) + " rows, the manifest says " +
                                        std::to_string(chunk.rows));
          }
          std::lock_guard<std::mutex> guard(pool.mutex);
          rows_here += rows;
          ++chunks_here;
          bytes_here += chunk.length;
          ++progress.chunks_done;
          progress.rows += rows;
          progress.bytes += chunk.length;
          ++pool.done;
          pool.changed.notify_all();
        }
        conn.execute("COMMIT");
        return;
      } catch (const NotBinary&) {
        // Rare (text not in its canonical form): start the table again, as text.
        conn.rollback_quietly("restore");
        log::core()->info("restore: loading {} as COPY text (its data is not all canonical)",
                          unit.table);
        std::lock_guard<std::mutex> guard(pool.mutex);
        progress.chunks_done -= chunks_here;
        progress.rows -= rows_here;
        progress.bytes -= bytes_here;
        converters[unit.table] = nullptr;
        as_text = true;
      } catch (...) {
        conn.rollback_quietly("restore");
        throw;
      }
    }
  };

  auto run = [&](int worker) {
    ScopedNoInterruptCheck quiet;
    std::unique_ptr<Connection> conn;
    try {
      conn = std::make_unique<Connection>(dsn, options.application_name);
      conn->execute(
          "SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; SET search_path = ''; "
          "SET statement_timeout = 0; SET lock_timeout = 0; "
          "SET idle_in_transaction_session_timeout = 0; SET standard_conforming_strings = on; "
          "SET check_function_bodies = false; SET synchronous_commit = off; "
          // Index builds sort in memory rather than in many on-disk runs.
          "SET maintenance_work_mem = " +
          sql_literal(options.maintenance_work_mem));
    } catch (...) {
      pool.fail(std::current_exception());
      pool.leave(nullptr);
      return;
    }
    pool.enter(conn.get());
    try {
      for (;;) {
        const LoadUnit* unit = nullptr;
        std::string ddl;
        {
          // Index builds of loaded tables first, then data, largest first.
          std::lock_guard<std::mutex> guard(pool.mutex);
          if (pool.abort) break;
          if (!ddl_queue.empty()) {
            ddl = std::move(ddl_queue.front());
            ddl_queue.erase(ddl_queue.begin());
          } else {
            unit = pick(worker);
            if (unit == nullptr) break;
          }
        }
        if (unit == nullptr) {
          conn->execute(ddl);
          continue;
        }
        load_unit(*conn, *unit);
        std::lock_guard<std::mutex> guard(pool.mutex);
        if (--remaining[unit->table] == 0) {
          auto found = options.after_table.find(unit->table);
          if (found != options.after_table.end()) {
            for (const std::string& sql : found->second) ddl_queue.push_back(sql);
          }
        }
      }
    } catch (...) {
      pool.fail(std::current_exception());
    }
    pool.leave(conn.get());
  };

  const size_t nthreads = std::min(static_cast<size_t>(options.workers), units.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < nthreads; ++i) threads.emplace_back(run, static_cast<int>(i));
  std::function<void()> report;
  if (options.on_progress) {
    report = [&] {
      RestoreProgress now;
      {
        std::lock_guard<std::mutex> guard(pool.mutex);
        now = progress;
      }
      options.on_progress(now);
    };
  }
  supervise(pool, threads, report, "restore");
  return progress.rows;
}

}  // namespace pgsafe
