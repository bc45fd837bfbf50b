// Lock tracing (see trace.hpp). The tracing session runs the statements. Inside a transaction
// it reads its own locks and catalog (it alone sees its uncommitted changes) after each
// statement, in the same message; an observer session samples pg_locks for the tracer's pid
// (shared memory: it sees uncommitted locks) while an autocommit statement runs.
#include "pgsafe/trace.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "pgsafe/conn.hpp"
#include "pgsafe/errors.hpp"
#include "pgsafe/log.hpp"

namespace pgsafe {

namespace {

double now_s() {
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

struct RelInfo {
  std::string name;
  std::string relkind;
  std::string filenode;
  std::string table;  // its own oid, or the table an index belongs to
};

struct ColInfo {
  std::string relid, name, type, notnull, def;
};

struct ConInfo {
  std::string relid, name, type, validated, def;
};

struct Catalog {
  std::map<std::string, RelInfo> rels;                          // by oid
  std::map<std::string, std::string> oid_by_name;               // display name -> oid
  std::map<std::pair<std::string, std::string>, ColInfo> cols;  // (relid, attnum)
  std::map<std::pair<std::string, std::string>, ConInfo> cons;  // (relid, conname)
};

std::string val(const Row& row, size_t i) { return i < row.size() && row[i] ? *row[i] : ""; }

// Relations, columns and constraints of the user's schemas, as rows tagged r / a / c: the CTE
// `rel` (kRelation, optionally narrowed by scoped()), then kCatalogRows over it.
constexpr const char* kRelation =
    "rel AS (SELECT c.oid, "
    "CASE WHEN n.nspname = 'public' THEN pg_catalog.quote_ident(c.relname) ELSE "
    "pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) END"
    " AS name, c.relkind, COALESCE(i.indrelid, c.oid) AS tbl"
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'";

// Only the relations in `oids` (an oid[] expression), the tables they are indexes of, and those
// tables' indexes: a statement can only change what it locked.
std::string scoped(const std::string& oids) {
  return " AND (c.oid = ANY(" + oids + ") OR COALESCE(i.indrelid, c.oid) = ANY(" + oids +
         ") OR COALESCE(i.indrelid, c.oid) IN (SELECT x.indrelid FROM pg_catalog.pg_index x"
         " WHERE x.indexrelid = ANY(" +
         oids + ")))";
}

constexpr const char* kCatalogRows =
    " SELECT 'r', rel.oid::text, rel.name, rel.relkind::text,"
    " pg_catalog.pg_relation_filenode(rel.oid)::text, rel.tbl::text, NULL FROM rel"
    " UNION ALL SELECT 'a', a.attrelid::text, a.attnum::text, a.attname::text,"
    " pg_catalog.format_type(a.atttypid, a.atttypmod),"
    " CASE WHEN a.attnotnull THEN 't' ELSE 'f' END,"
    " pg_catalog.pg_get_expr(d.adbin, d.adrelid)"
    " FROM rel JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.oid"
    " LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
    " WHERE rel.relkind IN ('r', 'p', 'm', 'f', 'v') AND a.attnum > 0 AND NOT a.attisdropped"
    " UNION ALL SELECT 'c', k.conrelid::text, k.conname::text, k.contype::text,"
    " CASE WHEN k.convalidated THEN 't' ELSE 'f' END,"
    " pg_catalog.pg_get_constraintdef(k.oid), NULL"
    " FROM rel JOIN pg_catalog.pg_constraint k ON k.conrelid = rel.oid";

// One row of the catalog query into `cat`; false for a row of another tag.
bool add_catalog_row(const Row& row, Catalog& cat) {
  const std::string tag = val(row, 0);
  if (tag == "r") {
    cat.rels[val(row, 1)] = RelInfo{val(row, 2), val(row, 3), val(row, 4), val(row, 5)};
    cat.oid_by_name[val(row, 2)] = val(row, 1);
  } else if (tag == "a") {
    cat.cols[{val(row, 1), val(row, 2)}] =
        ColInfo{val(row, 1), val(row, 3), val(row, 4), val(row, 5), val(row, 6)};
  } else if (tag == "c") {
    cat.cons[{val(row, 1), val(row, 2)}] =
        ConInfo{val(row, 1), val(row, 2), val(row, 3), val(row, 4), val(row, 5)};
  } else {
    return false;
  }
  return true;
}

// The whole catalog of the user's schemas in one round trip.
Catalog read_catalog(Connection& conn) {
  static const std::string kSql = std::string("WITH ") + kRelation + ")" + kCatalogRows;
  Catalog cat;
  for (const Row& row : conn.execute(kSql).rows) add_catalog_row(row, cat);
  return cat;
}

// What the tracing session holds right after a statement, read by that session itself (inside
// its transaction it sees its own uncommitted catalog changes, and pg_locks shows its own
// locks) in the same round trip as the statement: rows tagged 'l' (relation oid, mode,
// granted) for its locks on user relations, one 'd' row (seconds since the round trip's message
// arrived: the statement's own run time), then the catalog rows of the relations it locked.
constexpr const char* kSnapshotName = "pgsafe_trace_snapshot";
const std::string& snapshot_sql() {
  static const std::string kSql =
      std::string(
          "WITH held AS (SELECT l.relation, l.mode, l.granted FROM pg_catalog.pg_locks l"
          " WHERE l.pid = pg_catalog.pg_backend_pid() AND l.locktype = 'relation'"
          " AND l.relation >= 16384),"  // FirstNormalObjectId: no system catalogs
          " scope AS (SELECT pg_catalog.array_agg(DISTINCT h.relation) AS oids FROM held h), ") +
      kRelation + scoped("(SELECT s.oids FROM scope s)::pg_catalog.oid[]") +
      ") SELECT 'l', h.relation::text, h.mode, CASE WHEN h.granted THEN 't' ELSE 'f' END,"
      " NULL, NULL, NULL FROM held h"
      " UNION ALL SELECT 'd', (EXTRACT(EPOCH FROM pg_catalog.clock_timestamp() -"
      " pg_catalog.statement_timestamp()))::text, NULL, NULL, NULL, NULL, NULL"
      " UNION ALL" +
      kCatalogRows;
  return kSql;
}

// `current` with what a snapshot read of the relations in `scope` (their pre-existing part)
// returned in place of what it knew about the same relations (the scoped ones, their tables
// and those tables' indexes).
Catalog merged(const Catalog& current, const std::set<std::string>& scope, Catalog part) {
  std::set<std::string> tables;
  for (const std::string& oid : scope) {
    auto it = current.rels.find(oid);
    tables.insert(it != current.rels.end() ? it->second.table : oid);
  }
  Catalog out = current;
  std::set<std::string> gone;
  for (const auto& [oid, rel] : current.rels) {
    if (scope.count(oid) != 0 || tables.count(rel.table) != 0) gone.insert(oid);
  }
  for (const auto& [oid, rel] : part.rels) gone.insert(oid);
  for (const std::string& oid : gone) {
    auto it = out.rels.find(oid);
    if (it == out.rels.end()) continue;
    auto by_name = out.oid_by_name.find(it->second.name);
    if (by_name != out.oid_by_name.end() && by_name->second == oid) out.oid_by_name.erase(by_name);
    out.rels.erase(it);
  }
  std::erase_if(out.cols, [&](const auto& kv) { return gone.count(kv.first.first) != 0; });
  std::erase_if(out.cons, [&](const auto& kv) { return gone.count(kv.first.first) != 0; });
  out.rels.merge(part.rels);
  for (auto& [name, oid] : part.oid_by_name) out.oid_by_name[name] = oid;
  out.cols.merge(part.cols);
  out.cons.merge(part.cons);
  return out;
}

std::vector<UnindexedForeignKey> unindexed_foreign_keys(Connection& conn) {
  // Supported: some valid, non-partial index whose leading columns are exactly the FK columns
  // (in any order), so deleting or updating a referenced row does not scan the referencing table.
  Result r = conn.execute(
      "SELECT CASE WHEN n.nspname = 'public' THEN pg_catalog.quote_ident(c.relname) ELSE "
      " pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) END,"
      " k.conname::text, k.confrelid::regclass::text,"
      " (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ',' ORDER BY u.ord)"
      "   FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY u(attnum, ord)"
      "   JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum)"
      " FROM pg_catalog.pg_constraint k"
      " JOIN pg_catalog.pg_class c ON c.oid = k.conrelid"
      " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
      " WHERE k.contype = 'f' AND NOT EXISTS ("
      "   SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = k.conrelid"
      "   AND i.indpred IS NULL AND i.indisvalid"
      "   AND (pg_catalog.string_to_array(i.indkey::text, ' ')::int2[])"
      "       [1:pg_catalog.array_length(k.conkey, 1)] @> k.conkey"
      "   AND (pg_catalog.string_to_array(i.indkey::text, ' ')::int2[])"
      "       [1:pg_catalog.array_length(k.conkey, 1)] <@ k.conkey)"
      " ORDER BY 1, 2");
  std::vector<UnindexedForeignKey> out;
  for (const Row& row : r.rows) {
    UnindexedForeignKey fk;
    fk.relation = val(row, 0);
    fk.constraint_name = val(row, 1);
    fk.references = val(row, 2);
    std::string cols = val(row, 3);
    size_t start = 0;
    while (start <= cols.size() && !cols.empty()) {
      size_t comma = cols.find(',', start);
      if (comma == std::string::npos) comma = cols.size();
      fk.columns.push_back(cols.substr(start, comma - start));
      start = comma + 1;
    }
    out.push_back(std::move(fk));
  }
  return out;
}

// (oid, mode) -> granted
using LockSet = std::map<std::pair<std::string, LockMode>, bool>;

const char* const kLocksSql =
    "SELECT l.relation::text, l.mode, l.granted, l.locktype FROM pg_catalog.pg_locks l"
    " WHERE l.pid = $1";

// Locks of `pid` on relations that existed before, merged into `into` (a granted sighting wins).
// True when `pid` waits for any lock (a relation, or another transaction's snapshot).
bool read_locks(Connection& observer, const std::string& pid, const Catalog& before,
                LockSet& into) {
  Result r = observer.execute(kLocksSql, {pid});
  bool waiting = false;
  for (const Row& row : r.rows) {
    bool granted = val(row, 2) == "t";
    if (!granted) waiting = true;
    // Relation oids are per database; only this database's user relations are in `before`.
    if (val(row, 3) != "relation" || before.rels.count(val(row, 0)) == 0) continue;
    auto key = std::make_pair(val(row, 0), lock_mode_of_row(val(row, 1)));
    auto it = into.find(key);
    if (it == into.end()) {
      into.emplace(key, granted);
    } else {
      it->second = it->second || granted;
    }
  }
  return waiting;
}

ObservedLock observed(const Catalog& before, const std::string& oid, LockMode mode, bool granted) {
  ObservedLock l;
  auto it = before.rels.find(oid);
  l.relation = it->second.name;
  l.relkind = it->second.relkind;
  l.mode = mode;
  l.granted = granted;
  l.blocks_select = lock_conflicts(mode, LockMode::kAccessShare);
  l.blocks_writes = lock_conflicts(mode, LockMode::kRowExclusive);
  l.blocks_for_update = lock_conflicts(mode, LockMode::kRowShare);
  return l;
}

std::vector<ObservedLock> to_locks(const Catalog& before, const LockSet& set) {
  std::vector<ObservedLock> out;
  for (const auto& [key, granted] : set)
    out.push_back(observed(before, key.first, key.second, granted));
  // Strongest first, then by relation: the first entry is what a reader wants.
  std::stable_sort(out.begin(), out.end(), [](const ObservedLock& a, const ObservedLock& b) {
    int ra = lock_mode_rank(a.mode);
    int rb = lock_mode_rank(b.mode);
    return ra != rb ? ra > rb : a.relation < b.relation;
  });
  return out;
}

bool is_index(const std::string& relkind) { return relkind == "i" || relkind == "I"; }

// What `stmt` changed among the relations that existed before the migration.
void diff_catalog(const Catalog& origin, const Catalog& before, const Catalog& after,
                  StatementTrace& out) {
  for (const auto& [oid, rel] : before.rels) {
    if (origin.rels.count(oid) == 0 && origin.oid_by_name.count(rel.name) == 0) continue;
    std::string now_filenode;
    auto it = after.rels.find(oid);
    if (it != after.rels.end()) {
      now_filenode = it->second.filenode;
    } else {
      // Dropped and built again under the same name (REINDEX CONCURRENTLY, ALTER COLUMN TYPE
      // rebuilding an index): a rebuild, not a drop.
      auto by_name = after.oid_by_name.find(rel.name);
      if (by_name == after.oid_by_name.end()) continue;
      const RelInfo& other = after.rels.at(by_name->second);
      if (is_index(other.relkind) != is_index(rel.relkind)) continue;
      now_filenode = "replaced";
    }
    if (rel.filenode.empty() || now_filenode == rel.filenode) continue;
    (is_index(rel.relkind) ? out.index_rebuilds : out.rewrites).push_back(rel.name);
  }
  auto relname = [&](const std::string& relid) {
    auto it = after.rels.find(relid);
    if (it != after.rels.end()) return it->second.name;
    auto old = before.rels.find(relid);
    return old != before.rels.end() ? old->second.name : relid;
  };
  for (const auto& [key, col] : after.cols) {
    if (origin.rels.count(key.first) == 0) continue;  // a table created by the migration
    auto it = before.cols.find(key);
    if (it == before.cols.end()) {
      out.column_changes.push_back({relname(key.first), col.name, "added", "", col.type});
      continue;
    }
    const ColInfo& old = it->second;
    if (old.type != col.type) {
      out.column_changes.push_back({relname(key.first), col.name, "type", old.type, col.type});
    }
    if (old.notnull != col.notnull) {
      out.column_changes.push_back({relname(key.first), col.name, "nullability",
                                    old.notnull == "t" ? "NOT NULL" : "NULL",
                                    col.notnull == "t" ? "NOT NULL" : "NULL"});
    }
    if (old.def != col.def) {
      out.column_changes.push_back({relname(key.first), col.name, "default", old.def, col.def});
    }
  }
  for (const auto& [key, col] : before.cols) {
    if (origin.rels.count(key.first) == 0 || after.cols.count(key) != 0) continue;
    if (after.rels.count(key.first) == 0) continue;  // the whole table went
    out.column_changes.push_back({relname(key.first), col.name, "dropped", col.type, ""});
  }
  for (const auto& [key, con] : after.cons) {
    if (origin.rels.count(key.first) == 0) continue;
    auto it = before.cons.find(key);
    bool valid = con.validated == "t";
    if (it == before.cons.end()) {
      out.constraint_changes.push_back(
          {relname(key.first), con.name, con.type, "added", con.def, valid});
    } else if (it->second.validated != con.validated) {
      out.constraint_changes.push_back({relname(key.first), con.name, con.type,
                                        valid ? "validated" : "invalidated", con.def, valid});
    } else if (it->second.def != con.def) {
      out.constraint_changes.push_back(
          {relname(key.first), con.name, con.type, "changed", con.def, valid});
    }
  }
  for (const auto& [key, con] : before.cons) {
    if (origin.rels.count(key.first) == 0 || after.cons.count(key) != 0) continue;
    out.constraint_changes.push_back(
        {relname(key.first), con.name, con.type, "dropped", con.def, con.validated == "t"});
  }
}

void set_error(StatementTrace& st, const std::exception& e) {
  if (const auto* db = dynamic_cast<const DbError*>(&e)) {
    st.error = db->fields().message.empty() ? db->what() : db->fields().message;
    st.sqlstate = db->sqlstate();
  } else {
    st.error = e.what();
  }
}

class Tracer {
 public:
  Tracer(const std::string& dsn, const TraceOptions& options)
      : options_(options),
        // The observer connects while the tracer does (it is first needed by an autocommit
        // statement): a connection is a server process to start, the longest wait of a short
        // migration's trace.
        connecting_(std::async(std::launch::async,
                               [dsn, name = options.application_name + "-observer"] {
                                 ScopedNoInterruptCheck no_check;  // only the main thread's
                                 Connection conn(dsn, name);
                                 conn.execute("SET lock_timeout = 1000");
                                 return conn;
                               })),
        tracer_(dsn, options.application_name),
        pid_(std::to_string(tracer_.backend_pid())) {
    tracer_.execute("SET lock_timeout = " + std::to_string(options.lock_timeout_ms) +
                    "; SET statement_timeout = " + std::to_string(options.statement_timeout_ms));
    prepare_snapshot();
  }

  MigrationTrace run(const std::vector<Statement>& statements,
                     const std::vector<std::vector<std::string>>& gates) {
    MigrationTrace out;
    double started = now_s();
    origin_ = read_catalog(tracer_);
    auto fks_before = unindexed_foreign_keys(tracer_);
    Catalog current = origin_;
    size_t i = 0;
    while (i < statements.size() && out.error.empty()) {
      if (statements[i].non_transactional) {
        static const std::vector<std::string> kNone;
        const auto& gate = i < gates.size() ? gates[i] : kNone;
        out.statements.push_back(run_sampled(statements[i], static_cast<int>(i), gate, current));
        if (!out.statements.back().error.empty()) out.error = out.statements.back().error;
        ++i;
        continue;
      }
      size_t end = i;
      // One transaction up to the next autocommit statement or "-- pgsafe: step" marker.
      do {
        ++end;
      } while (end < statements.size() && !statements[end].non_transactional &&
               !statements[end].new_step);
      run_transaction(statements, i, end, current, out);
      i = end;
    }
    out.committed = out.error.empty() && options_.commit;
    if (out.error.empty()) {
      auto fks_after = unindexed_foreign_keys(tracer_);
      std::set<std::pair<std::string, std::string>> old;
      for (const auto& fk : fks_before) old.insert({fk.relation, fk.constraint_name});
      for (auto& fk : fks_after) {
        if (old.count({fk.relation, fk.constraint_name}) == 0) {
          out.unindexed_foreign_keys.push_back(std::move(fk));
        }
      }
    }
    out.duration_s = now_s() - started;
    return out;
  }

 private:
  void prepare_snapshot() {
    tracer_.execute(std::string("PREPARE ") + kSnapshotName + " AS " + snapshot_sql());
  }

  // DISCARD ALL and DEALLOCATE drop the session's prepared statements, ours too.
  static bool drops_prepared(const Statement& stmt) {
    return stmt.kind == "DiscardStmt" || stmt.kind == "DeallocateStmt";
  }

  void prepare_snapshot_again() {
    Result r = tracer_.execute("SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE name = $1",
                               {kSnapshotName});
    if (r.rows.empty()) prepare_snapshot();
  }

  // Runs a statement of the transaction (the first one opens it) and reads the snapshot after
  // it, in one round trip (one simple-protocol message: the snapshot does not run when the
  // statement fails).
  Result run_with_snapshot(const Statement& stmt, bool opens) {
    const std::string begin = opens ? "BEGIN;\n" : "";
    const std::string execute = std::string("EXECUTE ") + kSnapshotName;
    if (!drops_prepared(stmt)) return tracer_.execute(begin + stmt.sql + "\n;" + execute);
    tracer_.execute(begin + stmt.sql);
    prepare_snapshot_again();
    return tracer_.execute(execute);
  }

  // The part of a snapshot's catalog about relations that existed before the migration (and
  // indexes of their tables), as the scoped catalog diff wants it.
  Catalog pre_existing(Catalog part) const {
    std::set<std::string> keep;
    for (const auto& [oid, rel] : part.rels) {
      if (origin_.rels.count(oid) != 0 || origin_.rels.count(rel.table) != 0) keep.insert(oid);
    }
    std::erase_if(part.rels, [&](const auto& kv) { return keep.count(kv.first) == 0; });
    std::erase_if(part.oid_by_name, [&](const auto& kv) { return keep.count(kv.second) == 0; });
    std::erase_if(part.cols, [&](const auto& kv) { return keep.count(kv.first.first) == 0; });
    std::erase_if(part.cons, [&](const auto& kv) { return keep.count(kv.first.first) == 0; });
    return part;
  }

  void run_transaction(const std::vector<Statement>& statements, size_t begin, size_t end,
                       Catalog& current, MigrationTrace& out) {
    size_t first = out.statements.size();
    LockSet held;
    for (size_t i = begin; i < end; ++i) {
      const Statement& stmt = statements[i];
      StatementTrace st;
      st.index = static_cast<int>(i);
      st.line = stmt.line;
      st.sql = stmt.sql;
      double t0 = now_s();
      Result snapshot;
      try {
        snapshot = run_with_snapshot(stmt, i == begin);
      } catch (const DbError& e) {
        st.duration_s = now_s() - t0;
        set_error(st, e);
        out.error = st.error;
        out.statements.push_back(std::move(st));
        tracer_.rollback_quietly("trace");
        return;
      }
      st.duration_s = now_s() - t0;  // unless the server's own timing comes back below
      LockSet after;
      Catalog part;
      for (const Row& row : snapshot.rows) {
        if (add_catalog_row(row, part)) continue;
        if (val(row, 0) == "d") {
          if (!val(row, 1).empty()) st.duration_s = std::min(st.duration_s, std::stod(val(row, 1)));
        } else if (origin_.rels.count(val(row, 1)) != 0) {  // 'l', on a pre-existing relation
          auto key = std::make_pair(val(row, 1), lock_mode_of_row(val(row, 2)));
          after[key] = after[key] || val(row, 3) == "t";
        }
      }
      LockSet fresh;
      for (const auto& [key, granted] : after) {
        if (held.count(key) == 0) fresh.emplace(key, granted);
      }
      st.locks = to_locks(origin_, fresh);
      st.held = to_locks(origin_, after);
      held = std::move(after);
      // Only a relation it locked can have changed (DDL locks what it alters); of what the
      // snapshot read, the pre-existing relations and their tables' indexes count.
      std::set<std::string> scope;
      for (const auto& entry : held) scope.insert(entry.first.first);
      if (!scope.empty()) {
        Catalog next = merged(current, scope, pre_existing(std::move(part)));
        diff_catalog(origin_, current, next, st);
        current = std::move(next);
      }
      out.statements.push_back(std::move(st));
    }
    double t0 = now_s();
    tracer_.execute(options_.commit ? "COMMIT" : "ROLLBACK");
    double tail = now_s() - t0;
    for (size_t k = out.statements.size(); k-- > first;) {
      tail += out.statements[k].duration_s;
      out.statements[k].lock_hold_s = tail;
    }
  }

  StatementTrace run_sampled(const Statement& stmt, int index, const std::vector<std::string>& gate,
                             Catalog& current) {
    StatementTrace st;
    st.index = index;
    st.line = stmt.line;
    st.sql = stmt.sql;
    st.non_transactional = true;
    st.sampled = true;
    bool gated = open_gate(gate);

    std::atomic<bool> done{false};
    std::exception_ptr failure;
    double t0 = now_s();
    std::thread worker([&] {
      ScopedNoInterruptCheck no_check;  // the observer (main thread) watches for Ctrl-C
      try {
        tracer_.execute(stmt.sql);
      } catch (...) {
        failure = std::current_exception();
      }
      done = true;
    });
    LockSet seen;
    double wait_seen = 0.0;
    double released = 0.0;
    try {
      while (!done) {
        bool waiting = read_locks(observer(), pid_, origin_, seen);
        ++st.samples;
        if (waiting && wait_seen == 0.0) wait_seen = now_s();
        if (gated && (waiting || now_s() - t0 > options_.gate_max_s)) {
          read_locks(observer(), pid_, origin_, seen);  // once more: it may have moved on
          observer().execute("COMMIT");
          gated = false;
          released = now_s();
        }
        if (!done) std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    } catch (...) {
      tracer_.cancel();
      worker.join();
      throw;
    }
    worker.join();
    double t1 = now_s();
    if (gated) observer().execute("COMMIT");
    // The time it spent waiting for the gate is ours, not the statement's.
    double gate_wait = (wait_seen > 0.0 && released > wait_seen) ? released - wait_seen : 0.0;
    st.duration_s = std::max(0.0, t1 - t0 - gate_wait);
    st.lock_hold_s = st.duration_s;
    st.locks = to_locks(origin_, seen);
    st.held = st.locks;
    if (failure) {
      try {
        std::rethrow_exception(failure);
      } catch (const DbError& e) {
        set_error(st, e);
        return st;
      }
    }
    if (drops_prepared(stmt)) prepare_snapshot_again();
    Catalog next = read_catalog(tracer_);
    diff_catalog(origin_, current, next, st);
    current = std::move(next);
    return st;
  }

  // SHARE UPDATE EXCLUSIVE on the relations the statement names, and an old snapshot (CREATE
  // INDEX / REINDEX CONCURRENTLY wait for those): its first request of SHARE UPDATE EXCLUSIVE or
  // stronger queues behind the gate (the weak locks of name lookups pass), so pg_locks shows it
  // however fast the statement is; the gate opens as soon as the wait is seen.
  bool open_gate(const std::vector<std::string>& relations) {
    // The snapshot, and the relations' tables (an index is gated through its table: LOCK TABLE
    // refuses indexes), in one message.
    Result r = observer().execute(
        "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT DISTINCT COALESCE((SELECT i.indrelid"
        " FROM pg_catalog.pg_index i WHERE i.indexrelid = pg_catalog.to_regclass(x.name)),"
        " pg_catalog.to_regclass(x.name))::regclass::text FROM pg_catalog.unnest(" +
        sql_literal(text_array(relations)) + "::text[]) AS x(name)");
    for (const Row& row : r.rows) {
      if (row.empty() || !row[0]) continue;
      try {
        observer().execute("SAVEPOINT pgsafe_gate; LOCK TABLE " + *row[0] +
                           " IN SHARE UPDATE EXCLUSIVE MODE NOWAIT; RELEASE SAVEPOINT pgsafe_gate");
      } catch (const DbError& e) {
        log::core()->debug("trace: no gate on {}: {}", *row[0], e.what());
        observer().execute("ROLLBACK TO SAVEPOINT pgsafe_gate");
      }
    }
    return true;
  }

  Connection& observer() {
    if (!observer_) observer_.emplace(connecting_.get());
    return *observer_;
  }

  TraceOptions options_;
  std::future<Connection> connecting_;
  Connection tracer_;
  std::optional<Connection> observer_;
  std::string pid_;
  Catalog origin_;
};

}  // namespace

MigrationTrace trace_migration(const std::string& dsn, const std::vector<Statement>& statements,
                               const std::vector<std::vector<std::string>>& gate_relations,
                               const TraceOptions& options) {
  Tracer tracer(dsn, options);
  return tracer.run(statements, gate_relations);
}

}  // namespace pgsafe
