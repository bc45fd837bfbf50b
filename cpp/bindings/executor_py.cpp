// pgsafe._core executor, ledger and migration lock.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "pgsafe/executor.hpp"

namespace pyb = pybind11;

namespace pgsafe::py {

void register_executor(pyb::module_& m) {
  pyb::class_<Timeouts>(m, "Timeouts", "Timeouts in milliseconds, set per statement class.")
      .def(pyb::init<>())
      .def_readwrite("lock_timeout_ms", &Timeouts::lock_timeout_ms)
      .def_readwrite("statement_timeout_ms", &Timeouts::statement_timeout_ms)
      .def_readwrite("long_statement_timeout_ms", &Timeouts::long_statement_timeout_ms)
      .def_readwrite("idle_in_transaction_timeout_ms", &Timeouts::idle_in_transaction_timeout_ms);

  pyb::class_<RetryPolicy>(m, "RetryPolicy", "Bounded exponential backoff with jitter.")
      .def(pyb::init<>())
      .def_readwrite("max_attempts", &RetryPolicy::max_attempts)
      .def_readwrite("base_delay_ms", &RetryPolicy::base_delay_ms)
      .def_readwrite("max_delay_ms", &RetryPolicy::max_delay_ms)
      .def("delay_seconds", &RetryPolicy::delay_seconds, pyb::arg("attempt"));

  pyb::enum_<Direction>(m, "Direction", "Which script of a migration a plan runs.")
      .value("up", Direction::kUp)
      .value("down", Direction::kDown);

  pyb::class_<MigrationPlan>(m, "MigrationPlan")
      .def(pyb::init<>())
      .def_readwrite("version", &MigrationPlan::version)
      .def_readwrite("name", &MigrationPlan::name)
      .def_readwrite("checksum", &MigrationPlan::checksum)
      .def_readwrite("direction", &MigrationPlan::direction)
      .def_readwrite("statements", &MigrationPlan::statements);

  pyb::enum_<EventKind>(m, "EventKind", "What an executor Event reports.")
      .value("segment_start", EventKind::kSegmentStart)
      .value("statement_done", EventKind::kStatementDone)
      .value("retry", EventKind::kRetry)
      .value("retries_exhausted", EventKind::kRetriesExhausted)
      .value("index_invalid", EventKind::kIndexInvalid)
      .value("index_rebuilt", EventKind::kIndexRebuilt)
      .value("index_dropped", EventKind::kIndexDropped)
      .value("dirty", EventKind::kDirty)
      .value("committed", EventKind::kCommitted);

  pyb::class_<Event>(m, "Event")
      .def_readonly("kind", &Event::kind)
      .def_readonly("version", &Event::version)
      .def_readonly("segment", &Event::segment)
      .def_readonly("statement", &Event::statement)
      .def_readonly("attempt", &Event::attempt)
      .def_readonly("seconds", &Event::seconds)
      .def_readonly("sqlstate", &Event::sqlstate)
      .def_readonly("message", &Event::message);

  pyb::class_<ExecResult>(m, "ExecResult")
      .def_readonly("status", &ExecResult::status)
      .def_readonly("attempts", &ExecResult::attempts)
      .def_readonly("retries", &ExecResult::retries)
      .def_readonly("duration_s", &ExecResult::duration_s)
      .def_readonly("statements", &ExecResult::statements)
      .def_readonly("rebuilt_indexes", &ExecResult::rebuilt_indexes);

  pyb::class_<LedgerRow>(m, "LedgerRow")
      .def_readonly("version", &LedgerRow::version)
      .def_readonly("name", &LedgerRow::name)
      .def_readonly("checksum", &LedgerRow::checksum)
      .def_readonly("status", &LedgerRow::status)
      .def_readonly("applied_at", &LedgerRow::applied_at)
      .def_readonly("applied_by", &LedgerRow::applied_by)
      .def_readonly("pgsafe_version", &LedgerRow::pgsafe_version)
      .def_readonly("dirty_reason", &LedgerRow::dirty_reason)
      .def_readonly("duration_s", &LedgerRow::duration_s)
      .def_readonly("retries", &LedgerRow::retries);

  pyb::class_<Ledger>(m, "Ledger", "The pgsafe.migrations table and its history.")
      .def(pyb::init<std::string>(), pyb::arg("schema") = "pgsafe")
      .def_property_readonly("schema", &Ledger::schema)
      .def("ensure", &Ledger::ensure, pyb::call_guard<pyb::gil_scoped_release>())
      .def("exists", &Ledger::exists, pyb::call_guard<pyb::gil_scoped_release>())
      .def("rows", &Ledger::rows, pyb::call_guard<pyb::gil_scoped_release>())
      .def("set_status", &Ledger::set_status, pyb::arg("conn"), pyb::arg("version"),
           pyb::arg("status"), pyb::arg("reason"), pyb::arg("by"),
           pyb::call_guard<pyb::gil_scoped_release>())
      .def("set_checksum", &Ledger::set_checksum, pyb::arg("conn"), pyb::arg("version"),
           pyb::arg("checksum"), pyb::arg("reason"), pyb::arg("by"),
           pyb::call_guard<pyb::gil_scoped_release>());

  pyb::class_<Executor>(m, "Executor", "Runs one migration plan at a time on a connection.")
      .def(pyb::init([](Connection& conn, const Ledger& ledger, const Timeouts& timeouts,
                        const RetryPolicy& retry, std::string applied_by,
                        std::string pgsafe_version, const pyb::object& on_event) {
             EventSink sink;
             if (!on_event.is_none()) {
               auto cb = std::make_shared<pyb::object>(on_event);
               sink = [cb](const Event& e) {
                 pyb::gil_scoped_acquire gil;
                 (*cb)(e);  // a Python exception here aborts the run, as it should
               };
             }
             return std::make_unique<Executor>(conn, ledger, timeouts, retry, std::move(applied_by),
                                               std::move(pgsafe_version), std::move(sink));
           }),
           pyb::arg("conn"), pyb::arg("ledger"), pyb::arg("timeouts"), pyb::arg("retry"),
           pyb::arg("applied_by"), pyb::arg("pgsafe_version"), pyb::arg("on_event") = pyb::none(),
           pyb::keep_alive<1, 2>())
      .def("run", &Executor::run, pyb::arg("plan"), pyb::call_guard<pyb::gil_scoped_release>())
      .def("guard_with_lock", &Executor::guard_with_lock, pyb::arg("pid"), pyb::arg("key"),
           "Check before each commit that session `pid` still holds the migration lock `key`.")
      .def_property_readonly("left_dirty", &Executor::left_dirty,
                             "After run() raised: whether the ledger row was left dirty.")
      .def_property_readonly("failed_at", &Executor::failed_at,
                             "After run() raised: (line, column) in the file of the statement "
                             "that failed (within a batch), (0, 0) when none did.");

  pyb::class_<LockHolder>(m, "LockHolder")
      .def_readonly("pid", &LockHolder::pid)
      .def_readonly("application_name", &LockHolder::application_name)
      .def_readonly("usename", &LockHolder::usename)
      .def_readonly("client", &LockHolder::client)
      .def_readonly("state", &LockHolder::state)
      .def_readonly("since", &LockHolder::since);

  pyb::class_<MigrationLock>(m, "MigrationLock",
                             "Advisory lock polled with pg_try_advisory_lock on its own session.")
      .def(pyb::init<Connection&, std::int64_t>(), pyb::arg("session"), pyb::arg("key"),
           pyb::keep_alive<1, 2>())
      .def("acquire", &MigrationLock::acquire, pyb::arg("deadline_s"), pyb::arg("backoff"),
           pyb::call_guard<pyb::gil_scoped_release>())
      .def("try_acquire", &MigrationLock::try_acquire, pyb::call_guard<pyb::gil_scoped_release>())
      .def("holder", &MigrationLock::holder, pyb::call_guard<pyb::gil_scoped_release>())
      .def("release", &MigrationLock::release, pyb::call_guard<pyb::gil_scoped_release>())
      .def("check_alive", &MigrationLock::check_alive, pyb::call_guard<pyb::gil_scoped_release>())
      .def_property_readonly("held", &MigrationLock::held);

  m.def("migration_lock_key", &migration_lock_key, pyb::arg("ledger_schema"));
}

}  // namespace pgsafe::py
