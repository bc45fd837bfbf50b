// The live probe (see probe.hpp). Every query reads statistics or lock views; relation names go
// through to_regclass() and regclass output, which look the catalog up without locking the
// relation, so an ACCESS EXCLUSIVE lock held on a probed table does not stop the probe.
#include "pgsafe/probe.hpp"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <utility>

#include "pgsafe/errors.hpp"
#include "pgsafe/lock_modes.hpp"
#include "pgsafe/log.hpp"

namespace pgsafe {

namespace {

const std::string& text(const Row& row, size_t i) {
  static const std::string kEmpty;
  return row[i] ? *row[i] : kEmpty;
}

int to_int(const Row& row, size_t i) { return row[i] ? std::atoi(row[i]->c_str()) : 0; }

// Column i of a row, read as the type of the field it fills (NULL: zero, empty, false).
void read_column(const Row& row, size_t i, std::string& out) { out = text(row, i); }
void read_column(const Row& row, size_t i, int& out) { out = to_int(row, i); }
void read_column(const Row& row, size_t i, long long& out) {
  out = row[i] ? std::strtoll(row[i]->c_str(), nullptr, 10) : 0;
}
void read_column(const Row& row, size_t i, double& out) {
  out = row[i] ? std::strtod(row[i]->c_str(), nullptr) : 0.0;
}
void read_column(const Row& row, size_t i, bool& out) { out = text(row, i) == "t"; }
void read_column(const Row& row, size_t i, LockMode& out) { out = lock_mode_of_row(text(row, i)); }
template <typename T>
void read_column(const Row& row, size_t i, std::optional<T>& out) {
  out.reset();
  if (row[i]) read_column(row, i, out.emplace());
}

// A record whose `fields` are the row's columns from `first` on, in that order.
template <typename T, typename... Fields>
T read_row(const Row& row, size_t first, Fields T::*... fields) {
  T out;
  size_t i = first;
  (read_column(row, i++, out.*fields), ...);
  return out;
}

// Seconds from a timestamp column to the server's clock now (not to the transaction start).
std::string age(std::string_view ts) {
  return std::string("extract(epoch FROM clock_timestamp() - ").append(ts).append(")");
}

// The client of a pg_stat_activity / pg_stat_replication row aliased `a`.
std::string client(std::string_view a) {
  std::string p(a);
  return "CASE WHEN " + p + ".client_addr IS NOT NULL THEN host(" + p + ".client_addr) WHEN " + p +
         ".client_port = -1 THEN 'local' ELSE '' END";
}

constexpr std::string_view kThisDatabase =
    "(SELECT oid FROM pg_database WHERE datname = current_database())";

// pg_locks rows `x` and `y` are on the same lockable object.
std::string same_target(std::string_view x, std::string_view y) {
  std::string out = "true";
  for (std::string_view col : {"locktype", "database", "relation", "page", "tuple", "virtualxid",
                               "transactionid", "classid", "objid", "objsubid"}) {
    out.append(" AND ")
        .append(x)
        .append(".")
        .append(col)
        .append(" IS NOT DISTINCT FROM ")
        .append(y)
        .append(".")
        .append(col);
  }
  return out;
}

class Prober {
 public:
  Prober(Connection& conn, const ProbeOptions& options)
      : conn_(conn), options_(options), waitstart_(conn.server_version() >= 140000) {}

  ProbeResult run() {
    ProbeResult r;
    r.server_version = conn_.server_version();
    r.long_tx_seconds = options_.long_tx_seconds;
    Result head = conn_.execute(
        "SELECT pg_backend_pid(), current_database(),"
        " to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    r.probe_pid = to_int(head.rows.at(0), 0);
    r.database = text(head.rows.at(0), 1);
    r.probed_at = text(head.rows.at(0), 2);
    resolve(r);
    sessions(r);
    blocking(r);
    lock_queues(r);
    vacuums(r);
    replication(r);
    return r;
  }

 private:
  // Each name in a savepoint of its own: a malformed one ("a.b.c.d") is an unknown relation,
  // not the end of the probe.
  void resolve(ProbeResult& r) {
    for (const std::string& name : options_.relations) {
      conn_.execute("SAVEPOINT pgsafe_probe_resolve");
      try {
        Result res = conn_.execute("SELECT to_regclass($1)::oid, to_regclass($1)::text", {name});
        conn_.execute("RELEASE SAVEPOINT pgsafe_probe_resolve");
        const Row& row = res.rows.at(0);
        if (!row[0]) {
          r.unknown_relations.push_back(name);
          continue;
        }
        if (std::find(oids_.begin(), oids_.end(), *row[0]) != oids_.end()) continue;
        oids_.push_back(*row[0]);
        r.relations.push_back(text(row, 1));
      } catch (const DbError& e) {
        if (!e.fields().connection_usable) throw;
        conn_.execute("ROLLBACK TO SAVEPOINT pgsafe_probe_resolve");
        r.unknown_relations.push_back(name);
      }
    }
  }

  void sessions(ProbeResult& r) {
    Result res = conn_.execute(
        "SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''), " +
        client("a") +
        ", coalesce(a.state, ''), coalesce(a.query, ''), coalesce(a.wait_event_type, ''),"
        " coalesce(a.wait_event, ''), " +
        age("a.xact_start") + ", coalesce(" + age("a.state_change") +
        ", 0), coalesce(a.backend_xmin::text, '')"
        " FROM pg_stat_activity a"
        " WHERE a.pid <> pg_backend_pid() AND a.datname = current_database()"
        " AND a.backend_type = 'client backend' AND a.xact_start IS NOT NULL"
        " ORDER BY a.xact_start, a.pid");
    for (const Row& row : res.rows) {
      auto s = read_row<SessionInfo>(
          row, 0, &SessionInfo::pid, &SessionInfo::usename, &SessionInfo::application_name,
          &SessionInfo::client, &SessionInfo::state, &SessionInfo::query,
          &SessionInfo::wait_event_type, &SessionInfo::wait_event, &SessionInfo::xact_seconds,
          &SessionInfo::state_seconds, &SessionInfo::backend_xmin);
      bool idle = s.state.rfind("idle in transaction", 0) == 0;
      if (s.xact_seconds >= options_.long_tx_seconds) r.long_transactions.push_back(s);
      if (idle) r.idle_in_transaction.push_back(std::move(s));
    }
  }

  void blocking(ProbeResult& r) {
    const std::string waitstart = waitstart_ ? "w.waitstart" : "NULL::timestamptz";
    Result res = conn_.execute(
        "SELECT w.pid, coalesce(wa.query, ''), coalesce(" +
        age("coalesce(" + waitstart + ", wa.state_change)") +
        ", 0), w.mode, w.locktype,"
        // A row-lock wait is on the holder's transaction id; the tuple lock the waiter holds
        // meanwhile names the table.
        " coalesce(coalesce(w.relation, (SELECT t.relation FROM pg_locks t WHERE t.pid = w.pid"
        " AND t.locktype = 'tuple' AND t.granted LIMIT 1))::regclass::text, ''),"
        " b.pid, CASE WHEN b.pid = 0 THEN '(prepared transaction)' ELSE coalesce(ba.query, '')"
        " END, coalesce(ba.state, ''), coalesce(" +
        age("ba.xact_start") +
        ", 0),"
        " (SELECT string_agg(DISTINCT h.mode, ', ') FROM pg_locks h WHERE h.pid = b.pid"
        " AND h.granted AND " +
        same_target("h", "w") +
        "),"
        " (SELECT string_agg(DISTINCT h.mode, ', ') FROM pg_locks h WHERE h.pid = b.pid"
        " AND NOT h.granted)"
        " FROM pg_locks w JOIN pg_stat_activity wa ON wa.pid = w.pid"
        " CROSS JOIN LATERAL (SELECT DISTINCT unnest(pg_blocking_pids(w.pid)) AS pid) b"
        " LEFT JOIN pg_stat_activity ba ON ba.pid = b.pid"
        " WHERE NOT w.granted AND w.pid <> pg_backend_pid() AND wa.datname = current_database()"
        " ORDER BY w.pid, b.pid");
    for (const Row& row : res.rows) {
      auto e = read_row<BlockingEdge>(
          row, 0, &BlockingEdge::blocked_pid, &BlockingEdge::blocked_query,
          &BlockingEdge::blocked_wait_seconds, &BlockingEdge::blocked_mode, &BlockingEdge::locktype,
          &BlockingEdge::relation, &BlockingEdge::blocking_pid, &BlockingEdge::blocking_query,
          &BlockingEdge::blocking_state, &BlockingEdge::blocking_xact_seconds);
      e.blocking_granted = row[10].has_value();
      e.blocking_modes = e.blocking_granted ? text(row, 10) : text(row, 11);
      r.blocking.push_back(std::move(e));
    }
  }

  void lock_queues(ProbeResult& r) {
    if (!options_.relations.empty() && oids_.empty()) return;  // nothing given exists yet
    const std::string waitstart = waitstart_ ? "l.waitstart" : "NULL::timestamptz";
    std::string filter = oids_.empty()
                             ? std::string(
                                   " AND l.relation IN (SELECT q.relation FROM pg_locks q WHERE"
                                   " q.locktype = 'relation' AND NOT q.granted AND q.database = ")
                                   .append(kThisDatabase)
                                   .append(")")
                             : std::string(" AND l.relation = ANY($1::oid[])");
    std::string sql =
        "SELECT l.relation::regclass::text, coalesce(l.pid, 0), l.mode, l.granted,"
        " coalesce(a.state, ''), CASE WHEN l.pid IS NULL THEN '(prepared transaction)'"
        " ELSE coalesce(a.query, '') END, coalesce(a.application_name, ''), coalesce(" +
        age("CASE WHEN l.granted THEN a.xact_start ELSE coalesce(" + waitstart +
            ", a.state_change) END") +
        ", 0), l.relation"
        " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'relation' AND l.database = " +
        std::string(kThisDatabase) + " AND l.pid IS DISTINCT FROM pg_backend_pid()" + filter +
        " ORDER BY l.relation, l.granted DESC, " + waitstart + " NULLS LAST, l.pid";
    Result res = oids_.empty() ? conn_.execute(sql) : conn_.execute(sql, {text_array(oids_)});
    std::string current_oid;
    for (const Row& row : res.rows) {
      if (r.lock_queues.empty() || text(row, 8) != current_oid) {
        current_oid = text(row, 8);
        r.lock_queues.push_back(LockQueue{text(row, 0), {}, {}});
      }
      auto e = read_row<LockEntry>(row, 1, &LockEntry::pid, &LockEntry::mode, &LockEntry::granted,
                                   &LockEntry::state, &LockEntry::query,
                                   &LockEntry::application_name, &LockEntry::seconds);
      LockQueue& q = r.lock_queues.back();
      (e.granted ? q.holders : q.waiters).push_back(std::move(e));
    }
    for (LockQueue& q : r.lock_queues) {
      std::stable_sort(q.holders.begin(), q.holders.end(),
                       [](const LockEntry& a, const LockEntry& b) {
                         return lock_mode_rank(a.mode) > lock_mode_rank(b.mode);
                       });
    }
  }

  void vacuums(ProbeResult& r) {
    if (!options_.relations.empty() && oids_.empty()) return;
    std::string sql =
        "SELECT p.pid, CASE WHEN p.relid <> 0 THEN p.relid::regclass::text ELSE '' END, p.phase,"
        " coalesce(a.backend_type = 'autovacuum worker', false), coalesce(a.query, ''),"
        " coalesce(" +
        age("coalesce(a.xact_start, a.query_start)") +
        ", 0), p.heap_blks_total, p.heap_blks_scanned"
        " FROM pg_stat_progress_vacuum p LEFT JOIN pg_stat_activity a ON a.pid = p.pid"
        " WHERE p.datname = current_database() AND p.pid <> pg_backend_pid()" +
        std::string(oids_.empty() ? "" : " AND p.relid = ANY($1::oid[])") + " ORDER BY p.pid";
    Result res = oids_.empty() ? conn_.execute(sql) : conn_.execute(sql, {text_array(oids_)});
    for (const Row& row : res.rows) {
      auto v = read_row<VacuumRun>(row, 0, &VacuumRun::pid, &VacuumRun::relation, &VacuumRun::phase,
                                   &VacuumRun::autovacuum, &VacuumRun::query, &VacuumRun::seconds,
                                   &VacuumRun::heap_blks_total, &VacuumRun::heap_blks_scanned);
      v.wraparound = v.query.find("to prevent wraparound") != std::string::npos;
      r.vacuums.push_back(std::move(v));
    }
  }

  void replication(ProbeResult& r) {
    Result res =
        conn_.execute("SELECT r.pid, coalesce(r.application_name, ''), " + client("r") +
                      ", coalesce(r.state, ''), coalesce(r.sync_state, ''),"
                      " pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
                      " ELSE pg_current_wal_lsn() END, r.replay_lsn)::bigint,"
                      " extract(epoch FROM r.replay_lag)"
                      " FROM pg_stat_replication r ORDER BY r.pid");
    for (const Row& row : res.rows) {
      auto l =
          read_row<ReplicaLag>(row, 0, &ReplicaLag::pid, &ReplicaLag::application_name,
                               &ReplicaLag::client, &ReplicaLag::state, &ReplicaLag::sync_state,
                               &ReplicaLag::replay_lag_bytes, &ReplicaLag::replay_lag_seconds);
      r.replication.push_back(std::move(l));
    }
  }

  Connection& conn_;
  const ProbeOptions& options_;
  bool waitstart_;  // pg_locks.waitstart exists (PostgreSQL 14+)
  std::vector<std::string> oids_;
};

}  // namespace

ProbeResult probe(Connection& conn, const ProbeOptions& options) {
  if (!conn.is_open()) throw ConfigError("probe: the connection is closed");
  if (conn.transaction_status() != TxStatus::kIdle) {
    throw ConfigError("probe: the connection is inside a transaction; it needs an idle one");
  }
  if (options.long_tx_seconds < 0) throw ConfigError("probe: long_tx_seconds must be >= 0");
  if (options.lock_timeout_ms < 1 || options.statement_timeout_ms < 1) {
    throw ConfigError("probe: lock_timeout_ms and statement_timeout_ms must be positive");
  }
  ProbeResult result;
  try {
    conn.execute(
        "BEGIN READ ONLY; SET LOCAL lock_timeout = " + std::to_string(options.lock_timeout_ms) +
        "; SET LOCAL statement_timeout = " + std::to_string(options.statement_timeout_ms));
    result = Prober(conn, options).run();
    conn.execute("ROLLBACK");
  } catch (...) {
    conn.rollback_quietly("probe");
    throw;
  }
  log::core()->debug(
      "probe: {} long transactions, {} idle in transaction, {} blocking edges, {} lock queues, "
      "{} vacuums, {} replicas",
      result.long_transactions.size(), result.idle_in_transaction.size(), result.blocking.size(),
      result.lock_queues.size(), result.vacuums.size(), result.replication.size());
  return result;
}

}  // namespace pgsafe
