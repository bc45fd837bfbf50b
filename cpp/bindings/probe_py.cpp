// pgsafe._core live probe: plain structs, read-only attributes; the probe runs without the GIL.
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "pgsafe/conn.hpp"
#include "pgsafe/errors.hpp"
#include "pgsafe/probe.hpp"

namespace pyb = pybind11;

namespace pgsafe::py {

void register_probe(pyb::module_& m) {
  pyb::class_<SessionInfo>(m, "SessionInfo", "A backend with an open transaction.")
      .def_readonly("pid", &SessionInfo::pid)
      .def_readonly("usename", &SessionInfo::usename)
      .def_readonly("application_name", &SessionInfo::application_name)
      .def_readonly("client", &SessionInfo::client)
      .def_readonly("state", &SessionInfo::state)
      .def_readonly("query", &SessionInfo::query)
      .def_readonly("wait_event_type", &SessionInfo::wait_event_type)
      .def_readonly("wait_event", &SessionInfo::wait_event)
      .def_readonly("xact_seconds", &SessionInfo::xact_seconds)
      .def_readonly("state_seconds", &SessionInfo::state_seconds)
      .def_readonly("backend_xmin", &SessionInfo::backend_xmin);

  pyb::class_<BlockingEdge>(m, "BlockingEdge", "A blocked session and one session blocking it.")
      .def_readonly("blocked_pid", &BlockingEdge::blocked_pid)
      .def_readonly("blocked_query", &BlockingEdge::blocked_query)
      .def_readonly("blocked_wait_seconds", &BlockingEdge::blocked_wait_seconds)
      .def_readonly("blocked_mode", &BlockingEdge::blocked_mode)
      .def_readonly("locktype", &BlockingEdge::locktype)
      .def_readonly("relation", &BlockingEdge::relation)
      .def_readonly("blocking_pid", &BlockingEdge::blocking_pid)
      .def_readonly("blocking_query", &BlockingEdge::blocking_query)
      .def_readonly("blocking_state", &BlockingEdge::blocking_state)
      .def_readonly("blocking_xact_seconds", &BlockingEdge::blocking_xact_seconds)
      .def_readonly("blocking_modes", &BlockingEdge::blocking_modes)
      .def_readonly("blocking_granted", &BlockingEdge::blocking_granted);

  pyb::class_<LockEntry>(m, "LockEntry", "A session holding or waiting for a relation lock.")
      .def_readonly("pid", &LockEntry::pid)
      .def_readonly("mode", &LockEntry::mode)
      .def_readonly("granted", &LockEntry::granted)
      .def_readonly("state", &LockEntry::state)
      .def_readonly("query", &LockEntry::query)
      .def_readonly("application_name", &LockEntry::application_name)
      .def_readonly("seconds", &LockEntry::seconds);

  pyb::class_<LockQueue>(m, "LockQueue", "Holders and waiters of one relation's locks.")
      .def_readonly("relation", &LockQueue::relation)
      .def_readonly("holders", &LockQueue::holders)
      .def_readonly("waiters", &LockQueue::waiters);

  pyb::class_<VacuumRun>(m, "VacuumRun", "A running VACUUM or autovacuum.")
      .def(pyb::init<int, std::string, std::string, bool, bool, double, long long, long long,
                     std::string>(),
           pyb::arg("pid"), pyb::arg("relation"), pyb::arg("phase"), pyb::arg("autovacuum"),
           pyb::arg("wraparound"), pyb::arg("seconds"), pyb::arg("heap_blks_total"),
           pyb::arg("heap_blks_scanned"), pyb::arg("query"))
      .def_readonly("pid", &VacuumRun::pid)
      .def_readonly("relation", &VacuumRun::relation)
      .def_readonly("phase", &VacuumRun::phase)
      .def_readonly("autovacuum", &VacuumRun::autovacuum)
      .def_readonly("wraparound", &VacuumRun::wraparound)
      .def_readonly("seconds", &VacuumRun::seconds)
      .def_readonly("heap_blks_total", &VacuumRun::heap_blks_total)
      .def_readonly("heap_blks_scanned", &VacuumRun::heap_blks_scanned)
      .def_readonly("query", &VacuumRun::query);

  pyb::class_<ReplicaLag>(m, "ReplicaLag", "One pg_stat_replication row and its replay lag.")
      .def_readonly("pid", &ReplicaLag::pid)
      .def_readonly("application_name", &ReplicaLag::application_name)
      .def_readonly("client", &ReplicaLag::client)
      .def_readonly("state", &ReplicaLag::state)
      .def_readonly("sync_state", &ReplicaLag::sync_state)
      .def_readonly("replay_lag_bytes", &ReplicaLag::replay_lag_bytes)
      .def_readonly("replay_lag_seconds", &ReplicaLag::replay_lag_seconds);

  pyb::class_<ProbeResult>(m, "ProbeResult")
      .def_readonly("server_version", &ProbeResult::server_version)
      .def_readonly("probe_pid", &ProbeResult::probe_pid)
      .def_readonly("database", &ProbeResult::database)
      .def_readonly("probed_at", &ProbeResult::probed_at)
      .def_readonly("long_tx_seconds", &ProbeResult::long_tx_seconds)
      .def_readonly("relations", &ProbeResult::relations)
      .def_readonly("unknown_relations", &ProbeResult::unknown_relations)
      .def_readonly("long_transactions", &ProbeResult::long_transactions)
      .def_readonly("idle_in_transaction", &ProbeResult::idle_in_transaction)
      .def_readonly("blocking", &ProbeResult::blocking)
      .def_readonly("lock_queues", &ProbeResult::lock_queues)
      .def_readonly("vacuums", &ProbeResult::vacuums)
      .def_readonly("replication", &ProbeResult::replication);

  m.def(
      "probe",
      [](Connection& conn, const std::vector<std::string>& relations, double long_tx_seconds,
         int lock_timeout_ms, int statement_timeout_ms) {
        ProbeOptions options;
        options.relations = relations;
        options.long_tx_seconds = long_tx_seconds;
        options.lock_timeout_ms = lock_timeout_ms;
        options.statement_timeout_ms = statement_timeout_ms;
        auto out = probe(conn, options);
        if (consume_pending_interrupt()) throw Interrupted();
        return out;
      },
      pyb::arg("conn"), pyb::arg("relations") = std::vector<std::string>{},
      pyb::arg("long_tx_seconds") = 30.0, pyb::arg("lock_timeout_ms") = 1000,
      pyb::arg("statement_timeout_ms") = 5000, pyb::call_guard<pyb::gil_scoped_release>(),
      "Probe the connected database for blockers, long transactions, lock queues, vacuums and "
      "replication lag, in one read-only transaction with short lock and statement timeouts.");
}

}  // namespace pgsafe::py
