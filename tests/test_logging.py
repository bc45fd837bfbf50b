"""The core's spdlog records reach Python's logging (logger ``pgsafe.core``): levels map
correctly, records from other threads and from real server messages arrive, and
``set_log_level`` filters in the core.
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from collections.abc import Iterator

import pytest

from pgsafe import _core

# spdlog's level numbers, as `_core._log` takes them.
TRACE, DEBUG, INFO, WARN, ERR, CRITICAL = range(6)
LOGGER = "pgsafe.core"


@pytest.fixture(autouse=True)
def core_level_restored() -> Iterator[None]:
    # The core's default threshold is DEBUG; every test leaves it that way.
    _core.set_log_level(logging.DEBUG)
    yield
    _core.set_log_level(logging.DEBUG)


def core_records(caplog: pytest.LogCaptureFixture, marker: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and marker in r.getMessage()]


def unique() -> str:
    return uuid.uuid4().hex


@pytest.mark.parametrize(
    ("spd", "py"),
    [
        (DEBUG, logging.DEBUG),
        (INFO, logging.INFO),
        (WARN, logging.WARNING),
        (ERR, logging.ERROR),
        (CRITICAL, logging.CRITICAL),
    ],
)
def test_levels_map_to_python(caplog: pytest.LogCaptureFixture, spd: int, py: int) -> None:
    caplog.set_level(1, logger=LOGGER)
    marker = unique()
    _core._log(spd, f"level test {marker}")
    (record,) = core_records(caplog, marker)
    assert record.levelno == py
    assert record.getMessage() == f"level test {marker}"


def test_trace_is_below_the_default_threshold(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(1, logger=LOGGER)
    marker = unique()
    _core._log(TRACE, f"hidden {marker}")
    assert core_records(caplog, marker) == []
    _core.set_log_level(5)
    _core._log(TRACE, f"shown {marker}")
    (record,) = core_records(caplog, marker)
    assert record.levelno == 5
    assert record.getMessage() == f"shown {marker}"


def test_set_log_level_filters_in_the_core(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(1, logger=LOGGER)
    marker = unique()
    _core.set_log_level(logging.WARNING)
    for level in (DEBUG, INFO, WARN, ERR):
        _core._log(level, f"{level} {marker}")
    assert [r.levelno for r in core_records(caplog, marker)] == [logging.WARNING, logging.ERROR]
    _core.set_log_level(logging.CRITICAL)
    _core._log(ERR, f"dropped {marker}")
    assert len(core_records(caplog, marker)) == 2
    _core.set_log_level(logging.DEBUG)
    _core._log(DEBUG, f"back {marker}")
    assert core_records(caplog, marker)[-1].levelno == logging.DEBUG


def test_python_logger_level_also_filters(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    marker = unique()
    _core._log(WARN, f"too low {marker}")
    _core._log(ERR, f"high enough {marker}")
    assert [r.getMessage() for r in core_records(caplog, marker)] == [f"high enough {marker}"]


def test_message_is_not_treated_as_a_format_string(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    marker = unique()
    text = f"100% done {{}} %s %(x)s é🐘 {marker}"
    _core._log(INFO, text)
    (record,) = core_records(caplog, marker)
    assert record.getMessage() == text


def test_logging_from_other_threads(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    marker = unique()
    per_thread = 50

    def emit(n: int) -> None:
        for i in range(per_thread):
            _core._log(INFO, f"thread {n} record {i} {marker}")

    threads = [threading.Thread(target=emit, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    records = core_records(caplog, marker)
    assert len(records) == 4 * per_thread
    assert {r.getMessage() for r in records} == {
        f"thread {n} record {i} {marker}" for n in range(4) for i in range(per_thread)
    }
    main = threading.main_thread().ident
    assert {r.thread for r in records} != {main}


def test_server_notice_and_warning_are_forwarded(
    caplog: pytest.LogCaptureFixture, pgsafe_db
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    marker = unique()
    with pgsafe_db.connect() as conn:
        conn.execute(f"DO $$ BEGIN RAISE NOTICE 'hello {marker}'; END $$")
        conn.execute(f"DO $$ BEGIN RAISE WARNING 'careful {marker}'; END $$")
    notice, warning = core_records(caplog, marker)
    assert notice.levelno == logging.INFO
    assert notice.getMessage() == f"server NOTICE: hello {marker}"
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == f"server WARNING: careful {marker}"


def test_server_notice_from_a_query_in_another_thread(
    caplog: pytest.LogCaptureFixture, pgsafe_db
) -> None:
    # The notice arrives while the core runs the query without the GIL, in a worker thread.
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    marker = unique()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with pgsafe_db.connect() as conn:
                conn.execute(
                    f"DO $$ BEGIN RAISE NOTICE 'before {marker}'; PERFORM pg_sleep(0.2); "
                    f"RAISE NOTICE 'after {marker}'; END $$"
                )
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    assert not errors
    messages = [r.getMessage() for r in core_records(caplog, marker)]
    assert messages == [f"server NOTICE: before {marker}", f"server NOTICE: after {marker}"]


def test_connect_logs_at_debug(caplog: pytest.LogCaptureFixture, pgsafe_db) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with pgsafe_db.connect() as conn:
        pid = conn.backend_pid
    connected = [r for r in caplog.records if r.name == LOGGER and f"(pid {pid})" in r.getMessage()]
    assert len(connected) == 1
    assert connected[0].levelno == logging.DEBUG
    assert pgsafe_db.name in connected[0].getMessage()


def test_set_log_level_silences_server_notices(caplog: pytest.LogCaptureFixture, pgsafe_db) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    marker = unique()
    _core.set_log_level(logging.WARNING)
    with pgsafe_db.connect() as conn:
        conn.execute(
            f"DO $$ BEGIN RAISE NOTICE 'quiet {marker}'; RAISE WARNING 'loud {marker}'; END $$"
        )
    assert [r.getMessage() for r in core_records(caplog, marker)] == [
        f"server WARNING: loud {marker}"
    ]


def test_a_failing_handler_does_not_break_the_core(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, pgsafe_db
) -> None:
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise RuntimeError("handler exploded")

    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    logger = logging.getLogger(LOGGER)
    handler = Broken()
    logger.addHandler(handler)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    try:
        with pgsafe_db.connect() as conn:
            conn.execute("DO $$ BEGIN RAISE NOTICE 'into a broken handler'; END $$")
            assert conn.execute("SELECT 1").rows == [("1",)]
    finally:
        logger.removeHandler(handler)
    # The handler's error is reported as unraisable instead of escaping into the core.
    assert unraisable
    assert any("handler exploded" in str(u.exc_value) for u in unraisable)  # type: ignore[attr-defined]
