// The live probe: what on a target database would make a migration wait or make others wait
// behind it, right now. Long and idle-in-transaction sessions, blocking chains, lock queues per
// relation, running (auto)vacuums and replication lag, read from the statistics and lock views
// only, in one short read-only transaction that never locks a user table.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "pgsafe/conn.hpp"
#include "pgsafe/lock_modes.hpp"

namespace pgsafe {

struct ProbeOptions {
  // Names as a user writes them ("orders", "app.orders"), resolved with the session's
  // search_path; a name that resolves to nothing (a table a migration will create) is listed in
  // ProbeResult::unknown_relations, not an error. Empty: lock queues of every relation with a
  // waiter, and every running vacuum.
  std::vector<std::string> relations;
  double long_tx_seconds = 30.0;
  // The probe's own limits (SET LOCAL in its transaction): it gives up rather than wait.
  int lock_timeout_ms = 1000;
  int statement_timeout_ms = 5000;
};

// A backend of the probed database with an open transaction.
struct SessionInfo {
  int pid = 0;
  std::string usename;
  std::string application_name;
  std::string client;  // address, "local" for a unix socket, "" when unknown
  std::string state;   // pg_stat_activity.state
  std::string query;   // current or last statement
  std::string wait_event_type;
  std::string wait_event;
  double xact_seconds = 0;   // since the transaction began
  double state_seconds = 0;  // since `state` last changed (how long idle, for idle ones)
  std::string backend_xmin;  // holds back vacuum when set
};

// One edge of a blocking chain: `blocked_pid` waits for a lock that `blocking_pid` holds (or is
// queued ahead for with a conflicting mode), as pg_blocking_pids() reports.
struct BlockingEdge {
  int blocked_pid = 0;
  std::string blocked_query;
  double blocked_wait_seconds = 0;  // since the wait began (PostgreSQL 14+), else since state
  LockMode blocked_mode = LockMode::kAccessShare;  // the lock mode it wants
  std::string locktype;  // "relation", "transactionid" (row lock), "advisory", ...
  std::string relation;  // regclass text; "" when the lock is not on a relation
  int blocking_pid = 0;
  std::string blocking_query;
  std::string blocking_state;
  double blocking_xact_seconds = 0;
  std::string blocking_modes;    // modes the blocker holds on the same lock target, comma-separated
  bool blocking_granted = true;  // false: the blocker is itself waiting ahead in the queue
};

// One session holding or waiting for a lock on a relation.
struct LockEntry {
  int pid = 0;  // 0 for a prepared transaction
  LockMode mode = LockMode::kAccessShare;
  bool granted = false;
  std::string state;
  std::string query;
  std::string application_name;
  double seconds = 0;  // waiting: since the wait began; holding: since its transaction began
};

struct LockQueue {
  std::string relation;
  std::vector<LockEntry> holders;  // granted, strongest first
  std::vector<LockEntry> waiters;  // in queue order (wait start, PostgreSQL 14+)
};

struct VacuumRun {
  int pid = 0;
  std::string relation;
  std::string phase;
  bool autovacuum = false;  // an autovacuum worker, not a manual VACUUM
  bool wraparound = false;  // "(to prevent wraparound)": it will not yield to a lock request
  double seconds = 0;
  long long heap_blks_total = 0;
  long long heap_blks_scanned = 0;
  std::string query;
};

struct ReplicaLag {
  int pid = 0;
  std::string application_name;
  std::string client;
  std::string state;
  std::string sync_state;
  std::optional<long long> replay_lag_bytes;  // null without the privilege to see LSNs
  std::optional<double> replay_lag_seconds;   // null when the replica reported nothing yet
};

struct ProbeResult {
  int server_version = 0;
  int probe_pid = 0;
  std::string database;
  std::string probed_at;  // ISO 8601 UTC, the server's clock
  double long_tx_seconds = 0;
  std::vector<std::string> relations;          // resolved, regclass text, in the order given
  std::vector<std::string> unknown_relations;  // given names that resolve to nothing
  std::vector<SessionInfo> long_transactions;
  std::vector<SessionInfo> idle_in_transaction;
  std::vector<BlockingEdge> blocking;
  std::vector<LockQueue> lock_queues;
  std::vector<VacuumRun> vacuums;
  std::vector<ReplicaLag> replication;
};

// Probes the database `conn` is connected to, skipping its own backend. The connection must be
// idle; the probe runs in a READ ONLY transaction with SET LOCAL lock_timeout and
// statement_timeout and ends it with ROLLBACK, so the session's settings are untouched. It reads
// pg_stat_activity, pg_locks, pg_stat_progress_vacuum, pg_stat_replication and pg_class (to
// resolve names, without locking the relations). Throws ConfigError for a closed or busy
// connection, DbError when the server refuses (the connection stays usable).
ProbeResult probe(Connection& conn, const ProbeOptions& options = {});

}  // namespace pgsafe
