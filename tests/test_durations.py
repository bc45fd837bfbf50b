"""Every duration pgsafe reads goes through one parser (pgsafe.config.parse_duration): the same
units and the same rules for CLI flags, policy keys, postflight expectations, backup retention
and the Alembic hook. `--lock-timeout 0` (PostgreSQL's "no timeout": wait forever) is refused
with exit 5 and one line, before anything touches the database."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from helpers import exists, pgsafe, query, write
from pgsafe import _core
from pgsafe.backup.core import _parse_age
from pgsafe.config import Settings, format_duration, parse_duration, parse_timeout
from pgsafe.errors import ConfigError
from pgsafe.lifecycle.policy import load_policy
from pgsafe.lifecycle.postflight import parse_expectations


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("5s", 5_000),
        ("200ms", 200),
        ("1.5 s", 1_500),
        ("15min", 900_000),
        ("15m", 900_000),
        ("2h", 7_200_000),
        ("7d", 604_800_000),
        ("2w", 1_209_600_000),
        ("500us", 0.5),
        ("10 SEC", 10_000),
    ],
)
def test_units_are_the_same_everywhere(text: str, ms: float) -> None:
    assert parse_duration(text, "x") == ms


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5000", "'5000' has no unit"),
        ("soon", "not a duration: 'soon'"),
        ("-1s", "cannot be negative"),
        ("5 parsecs", "not a duration"),
        ("1.2.3s", "not a duration"),
        ("", "not a duration"),
        (30, "30 has no unit"),
        (True, "not a duration"),
        (float("nan"), "not a duration"),
        ("0", "must be more than 0"),
        (0, "must be more than 0"),
    ],
)
def test_bad_durations_are_one_line_naming_where(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(value, "--some-flag")
    text = str(info.value)
    assert text.startswith("--some-flag: ") and message in text and "\n" not in text


def test_zero_only_where_it_is_documented_and_never_for_a_timeout() -> None:
    assert parse_duration("0", "x", zero="no wait") == 0
    assert parse_duration(0, "x", zero="no wait") == 0
    with pytest.raises(ConfigError, match="PostgreSQL reads 0 as 'no timeout'"):
        parse_timeout("0s", "--lock-timeout")
    with pytest.raises(ConfigError, match=r"longer than allowed \(at most about 24.9d"):
        parse_timeout("600h", "--lock-timeout")
    assert parse_timeout("0.4ms", "x") == 1  # never rounded down to "no timeout"
    assert parse_duration(30, "x", unit="s") == 30_000  # a key named ..._s
    assert format_duration(5_000) == "5s" and format_duration(1_500) == "1500ms"


def test_settings_refuse_a_zero_timeout_through_the_python_api() -> None:
    with pytest.raises(ConfigError, match=r"Settings\.lock_timeout_ms: must be more than 0"):
        Settings(lock_timeout_ms=0).timeouts()
    assert Settings().timeouts().lock_timeout_ms == 5_000


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["apply", "--apply", "--lock-timeout", "0"], "--lock-timeout"),
        (["apply", "--apply", "--lock-timeout", "0ms"], "--lock-timeout"),
        (["apply", "--apply", "--statement-timeout", "0"], "--statement-timeout"),
        (["apply", "--apply", "--long-statement-timeout", "0s"], "--long-statement-timeout"),
        (["apply", "--apply", "--idle-timeout", "0"], "--idle-timeout"),
        (["apply", "--apply", "--lock-timeout", "5000"], "--lock-timeout"),
        (["apply", "--apply", "--lock-wait", "-1s"], "--lock-wait"),
        (["apply", "--apply", "--slow-warning", "0"], "--slow-warning"),
        (["rollback", "--apply", "--lock-timeout", "0"], "--lock-timeout"),
        (["postflight", "--timeout", "0"], "--timeout"),
        (["backup", "--max-age", "0"], "--max-age"),
        (["backup", "--max-age", "7"], "--max-age"),
        (["locks", "--long-tx", "30"], "--long-tx"),
        (["locks", "--watch", "50ms"], "--watch"),
    ],
)
def test_every_duration_flag_is_checked_before_anything_runs(
    argv: list[str], flag: str, tmp_path: Path
) -> None:
    # An unreachable target: a flag that got through would fail later, with another message.
    res = pgsafe(*argv, "--db", "postgresql://nobody@127.0.0.1:1/none", cwd=tmp_path)
    assert res.returncode == 5, (argv, res.stdout, res.stderr)
    error = [ln for ln in res.stderr.splitlines() if ln.startswith("pgsafe: error:")]
    assert len(error) == 1 and f"argument {flag}:" in error[0], res.stderr
    assert "Traceback" not in res.stderr


def test_lock_timeout_zero_never_waits_behind_a_lock(pgsafe_db, tmp_path: Path) -> None:
    """The issue's case: `--lock-timeout 0` sat behind an ACCESS EXCLUSIVE holder until killed.
    It is refused at once (exit 5), nothing applied, no ledger created."""
    migs = write(tmp_path / "m", {"001_a.sql": "ALTER TABLE t ADD COLUMN note text;\n"})
    holder = pgsafe_db.connect(application_name="pgsafe-test-holder")
    holder.execute("CREATE TABLE t (id int)")
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    try:
        started = time.monotonic()
        res = pgsafe(
            "apply", str(migs), "--db", pgsafe_db.dsn, "--apply", "--log-dir", "",
            "--lock-timeout", "0", timeout=30,
        )  # fmt: skip
        assert res.returncode == 5, (res.stdout, res.stderr)
        assert time.monotonic() - started < 20
        assert "wait forever" in res.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not exists(pgsafe_db, "pgsafe.migrations")
    assert query(pgsafe_db, "SELECT count(*) FROM pg_attribute WHERE attname = 'note'") == [("0",)]


def test_lock_wait_zero_means_no_wait(pgsafe_db, tmp_path: Path) -> None:
    """`--lock-wait 0` is documented as "fail at once when another run holds the migration
    lock": it gives up at once (exit 2) instead of waiting the default 5 minutes."""
    migs = write(tmp_path / "m", {"001_a.sql": "CREATE TABLE a (id int);\n"})
    other = pgsafe_db.connect(application_name="pgsafe lock")
    key = _core.migration_lock_key("pgsafe")
    other.execute(f"SELECT pg_advisory_lock({key})")
    try:
        started = time.monotonic()
        res = pgsafe(
            "apply", str(migs), "--db", pgsafe_db.dsn, "--apply", "--log-dir", "",
            "--lock-wait", "0", "--no-backup", timeout=60,
        )  # fmt: skip
        assert res.returncode == 2, (res.stdout, res.stderr)
        assert time.monotonic() - started < 30
        assert "migration lock" in res.stderr
    finally:
        other.close()


def test_policy_and_expectation_keys_use_the_same_parser(tmp_path: Path) -> None:
    (tmp_path / "pgsafe.toml").write_text(
        '[policy.staging]\nlong_transaction_s = "1min"\nslow_migration_s = 120\n'
        'max_lock_timeout_ms = "10s"\nmax_backup_age_hours = "2d"\nlong_lock_wait_s = "2s"\n'
    )
    p = load_policy("staging", tmp_path)
    assert (p.long_transaction_s, p.slow_migration_s, p.max_lock_timeout_ms) == (60, 120, 10_000)
    assert (p.max_backup_age_hours, p.long_lock_wait_s) == (48, 2)
    (tmp_path / "pgsafe.toml").write_text("[policy.staging]\nmax_backup_age_hours = 0\n")
    assert load_policy("staging", tmp_path).max_backup_age_hours == 0  # documented: too old
    for bad, message in [
        ("max_lock_timeout_ms = 0", "policy.staging.max_lock_timeout_ms: must be more than 0"),
        ('slow_migration_s = "5"', "policy.staging.slow_migration_s: '5' has no unit"),
        ("long_transaction_s = -1", "cannot be negative"),
        ('max_backup_age_hours = "soon"', "not a duration"),
    ]:
        (tmp_path / "pgsafe.toml").write_text(f"[policy.staging]\n{bad}\n")
        with pytest.raises(ConfigError, match=message):
            load_policy("staging", tmp_path)

    e = parse_expectations({"postflight": {"statement_timeout": "2s", "max_not_valid_age": "1d"}})
    assert (e.statement_timeout_s, e.max_not_valid_age_s) == (2, 86_400)
    for doc, message in [
        ({"statement_timeout": 0}, "postflight.statement_timeout: must be more than 0"),
        ({"statement_timeout": 30}, "30 has no unit"),
        ({"max_not_valid_age": "24"}, "'24' has no unit"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_expectations({"postflight": doc})
    assert parse_expectations({"postflight": {"max_not_valid_age": 0}}).max_not_valid_age_s == 0


def test_backup_retention_age_uses_the_same_parser() -> None:
    assert _parse_age("7d") == dt.timedelta(days=7)
    assert _parse_age("30min") == dt.timedelta(minutes=30)
    assert _parse_age(90) == dt.timedelta(seconds=90)  # the Python API's number: seconds
    for bad in ("7", "0", 0, dt.timedelta(0)):
        with pytest.raises(ConfigError, match="max age"):
            _parse_age(bad)  # type: ignore[arg-type]


def test_alembic_settings_use_the_same_parser() -> None:
    pytest.importorskip("alembic")
    _duration = pytest.importorskip("pgsafe.alembic.runtime")._duration

    assert _duration("lock_timeout", "2s", "-x") == "2s"
    assert _duration("statement_timeout", "1500ms", "-x") == "1500ms"
    assert _duration("lock_wait", "0", "-x") == "0ms"
    for name, value, message in [
        ("lock_timeout", "0", "-x lock_timeout=0: must be more than 0"),
        ("statement_timeout", "45", "-x statement_timeout=45: '45' has no unit"),
        ("lock_timeout", "soon", "-x lock_timeout=soon: not a duration"),
    ]:
        with pytest.raises(ConfigError, match=message):
            _duration(name, value, "-x")
