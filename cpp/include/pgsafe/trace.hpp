// Lock tracing: runs a migration's statements on a throwaway database and observes, per
// statement, the relation locks the session took on objects that existed before the migration
// (from pg_locks), rewrites (relfilenode changes), column and constraint changes (a catalog
// diff), and timings. In a transaction the tracing session reads its own locks and catalog in
// the same round trip as the statement; statements that cannot run in a transaction are watched
// while they run: a second session samples pg_locks for the tracing backend.
#pragma once

#include <string>
#include <vector>

#include "pgsafe/lock_modes.hpp"
#include "pgsafe/sql.hpp"

namespace pgsafe {

struct ObservedLock {
  std::string relation;  // as regclass prints it (schema-qualified off the search_path)
  std::string relkind;   // pg_class.relkind: r, p, i, I, m, v, S, f, t
  LockMode mode = LockMode::kAccessShare;
  bool granted = true;  // false: seen only as a request the session waited for
  // What an application query on the same relation would wait for.
  bool blocks_select = false;      // SELECT (AccessShareLock)
  bool blocks_writes = false;      // INSERT/UPDATE/DELETE (RowExclusiveLock)
  bool blocks_for_update = false;  // SELECT ... FOR UPDATE/SHARE (RowShareLock)
};

struct ColumnChange {
  std::string relation;
  std::string column;
  std::string what;  // "added", "dropped", "type", "nullability", "default"
  std::string before;
  std::string after;
};

struct ConstraintChange {
  std::string relation;
  std::string name;
  std::string type;  // pg_constraint.contype: c, f, p, u, x, t, n
  std::string what;  // "added", "dropped", "validated", "invalidated", "changed"
  std::string definition;
  bool validated = true;  // convalidated afterwards (for "dropped": before)
};

struct StatementTrace {
  int index = 0;  // position in the migration, 0-based
  int line = 0;
  std::string sql;
  bool non_transactional = false;
  bool sampled = false;  // observed by sampling while it ran (autocommit statement)
  int samples = 0;       // pg_locks samples taken while it ran
  double duration_s = 0.0;
  // From the start of this statement until its locks are released: its own run time, the
  // statements after it in the same transaction, and the commit.
  double lock_hold_s = 0.0;
  // Locks this statement acquired on pre-existing relations (not held before it ran).
  std::vector<ObservedLock> locks;
  // Every lock held on pre-existing relations once it finished (inside the transaction):
  // includes those taken by earlier statements of the same transaction.
  std::vector<ObservedLock> held;
  std::vector<std::string> rewrites;        // tables/matviews whose relfilenode changed
  std::vector<std::string> index_rebuilds;  // indexes whose relfilenode (or oid) changed
  std::vector<ColumnChange> column_changes;
  std::vector<ConstraintChange> constraint_changes;
  std::string error;     // the server's message when it failed (the trace stops there)
  std::string sqlstate;  // its SQLSTATE
};

struct UnindexedForeignKey {
  std::string relation;
  std::string constraint_name;
  std::vector<std::string> columns;
  std::string references;
};

struct MigrationTrace {
  std::vector<StatementTrace> statements;
  std::vector<UnindexedForeignKey> unindexed_foreign_keys;  // new since the migration started
  double duration_s = 0.0;
  bool committed = false;
  std::string error;  // non-empty when a statement failed: nothing after it ran
};

struct TraceOptions {
  std::string application_name = "pgsafe-trace";
  int lock_timeout_ms = 10000;  // nothing else uses the throwaway database: a wait is a bug
  int statement_timeout_ms = 0;
  // Autocommit statements: a snapshot and SHARE UPDATE EXCLUSIVE on the relations it names (per
  // statement, see trace_migration) make its first strong lock request wait, visibly, in
  // pg_locks; the gate opens as soon as the wait is seen, or after gate_max_s.
  double gate_max_s = 2.0;
  bool commit = true;  // false: roll back at the end (the database is left as it was)
};

// Runs `statements` on `dsn` (a throwaway database: they are really executed) and traces them.
// Consecutive transactional statements share one transaction; each non-transactional one runs
// alone in autocommit. `gate_relations[i]` (optional, may be shorter) names relations statement
// i is expected to lock, for the sampling gate. A failing statement ends the trace and is
// reported in the result; connection failures throw DbError.
MigrationTrace trace_migration(const std::string& dsn, const std::vector<Statement>& statements,
                               const std::vector<std::vector<std::string>>& gate_relations = {},
                               const TraceOptions& options = {});

}  // namespace pgsafe
