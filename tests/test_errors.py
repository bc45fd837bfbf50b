"""pgsafe.errors: the exception hierarchy, SQLSTATE lookup, and password masking.

Pure Python: no server needed. The generated block is also checked against errcodes.txt.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from pgsafe import errors as e

ROOT = Path(__file__).resolve().parent.parent


# --- hierarchy and exit codes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (e.UnsafeError, 1),
        (e.MigrationError, 2),
        (e.PostflightError, 3),
        (e.RollbackError, 4),
        (e.ConfigError, 5),
        (e.ParseError, 5),
        (e.ChecksumMismatch, 1),
        (e.DirtyMigrationError, 2),
        (e.MigrationLockTimeout, 2),
        (e.DatabaseError, 2),
        (e.LockNotAvailable, 2),
    ],
)
def test_exit_codes(cls: type[e.Error], code: int) -> None:
    assert issubclass(cls, e.Error)
    assert cls.exit_code == code


def test_lock_timeout_and_deadlock_are_distinct_database_errors() -> None:
    lock = e.lookup("55P03")
    deadlock = e.lookup("40P01")
    assert lock is e.LockNotAvailable
    assert deadlock is e.DeadlockDetected
    assert issubclass(lock, e.ObjectNotInPrerequisiteState)
    assert issubclass(deadlock, e.TransactionRollback)
    assert issubclass(e.SerializationFailure, e.TransactionRollback)
    assert not issubclass(lock, e.TransactionRollback)
    assert not issubclass(deadlock, e.ObjectNotInPrerequisiteState)
    for cls in (lock, deadlock):
        assert issubclass(cls, e.DatabaseError)
        assert issubclass(cls, e.Error)

    with pytest.raises(e.TransactionRollback):
        raise e.from_core({"sqlstate": "40P01", "message": "deadlock detected"})


def test_generated_names() -> None:
    assert e.UndefinedTable.code == "42P01"
    assert e.UndefinedTable.condition == "undefined_table"
    assert issubclass(e.UndefinedTable, e.SyntaxErrorOrAccessRuleViolation)
    assert e.InvalidPassword.code == "28P01"
    assert e.SqlclientUnableToEstablishSqlconnection.code == "08001"
    assert issubclass(e.SqlclientUnableToEstablishSqlconnection, e.ConnectionException)
    assert e.UniqueViolation.code == "23505"
    assert issubclass(e.UniqueViolation, e.IntegrityConstraintViolation)
    # The condition exists in classes 2F and 38: the second one gets the "Ext" suffix.
    assert e.ModifyingSqlDataNotPermitted.code == "2F002"
    assert e.ModifyingSqlDataNotPermittedExt.code == "38002"


# --- lookup ----------------------------------------------------------------------------------


def test_lookup_exact_class_and_root_fallbacks() -> None:
    assert e.lookup("42P01") is e.UndefinedTable
    assert e.lookup("42p01") is e.UndefinedTable
    assert e.lookup("55000") is e.ObjectNotInPrerequisiteState
    # Unknown code in a known class: the class.
    assert e.lookup("55P99") is e.ObjectNotInPrerequisiteState
    assert e.lookup("40ZZZ") is e.TransactionRollback
    # Unknown class: the root.
    assert e.lookup("ZZ123") is e.DatabaseError
    assert e.lookup("") is e.DatabaseError


# --- DatabaseError fields and text -----------------------------------------------------------


def test_from_core_builds_the_specific_class_with_all_fields() -> None:
    err = e.from_core(
        {
            "sqlstate": "23505",
            "message": 'duplicate key value violates unique constraint "t_pkey"',
            "detail": "Key (id)=(1) already exists.",
            "hint": None,
            "position": 8,
            "context": None,
            "statement": "INSERT INTO t VALUES (1)",
            "severity": "ERROR",
            "schema_name": "public",
            "table_name": "t",
            "column_name": None,
            "constraint_name": "t_pkey",
            "connection_usable": True,
        }
    )
    assert type(err) is e.UniqueViolation
    assert err.sqlstate == "23505"
    assert err.position == 8
    assert err.table_name == "t"
    assert err.constraint_name == "t_pkey"
    assert err.column_name is None
    assert err.connection_usable is True
    assert str(err) == (
        'duplicate key value violates unique constraint "t_pkey" (SQLSTATE 23505); '
        "DETAIL: Key (id)=(1) already exists."
    )


def test_from_core_missing_keys_are_none() -> None:
    err = e.from_core({"sqlstate": "55P03", "message": "could not obtain lock"})
    assert type(err) is e.LockNotAvailable
    for attr in ("detail", "hint", "position", "context", "statement", "table_name"):
        assert getattr(err, attr) is None
    assert err.connection_usable is True

    bare = e.from_core({})
    assert type(bare) is e.DatabaseError
    assert bare.sqlstate is None
    assert str(bare) == "database error"


def test_connection_usable_defaults_follow_sqlstate() -> None:
    assert e.from_core({"sqlstate": "08006", "message": "gone"}).connection_usable is False
    assert e.from_core({"sqlstate": "57P01", "message": "shutdown"}).connection_usable is False
    assert e.from_core({"sqlstate": "42P01", "message": "x"}).connection_usable is True
    explicit = e.from_core({"sqlstate": "42P01", "message": "x", "connection_usable": False})
    assert explicit.connection_usable is False


def test_str_is_one_line_with_hint() -> None:
    err = e.from_core(
        {
            "sqlstate": "42601",
            "message": 'syntax error at or near "SELEC"',
            "detail": "line one\nline two",
            "hint": "Check\nthe spelling.",
        }
    )
    text = str(err)
    assert "\n" not in text
    assert text == (
        'syntax error at or near "SELEC" (SQLSTATE 42601); '
        "DETAIL: line one line two; HINT: Check the spelling."
    )


def test_from_core_masks_passwords() -> None:
    err = e.from_core(
        {
            "sqlstate": "08001",
            "message": "could not connect to postgresql://app:hunter2@db.example:5432/prod",
            "statement": "ALTER ROLE app PASSWORD 'hunter2'",
        }
    )
    assert "hunter2" not in str(err)
    assert err.statement is not None and "hunter2" not in err.statement


def test_direct_construction_uses_class_code() -> None:
    err = e.DeadlockDetected("deadlock detected")
    assert err.sqlstate == "40P01"
    assert str(err) == "deadlock detected (SQLSTATE 40P01)"


def test_database_error_pickles() -> None:
    err = e.from_core({"sqlstate": "55P03", "message": "no lock", "table_name": "qc_jobs"})
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is e.LockNotAvailable
    assert back.table_name == "qc_jobs"
    assert str(back) == str(err)


# --- lifecycle errors ------------------------------------------------------------------------


def test_parse_error_text() -> None:
    err = e.ParseError("migrations/001_x.up.sql", 12, 5, 'syntax error at or near "TABEL"')
    assert str(err) == 'migrations/001_x.up.sql:12:5: syntax error at or near "TABEL"'
    assert isinstance(err, e.ConfigError)
    assert (err.file, err.line, err.column) == ("migrations/001_x.up.sql", 12, 5)


def test_checksum_mismatch_and_dirty_point_at_repair() -> None:
    mismatch = e.ChecksumMismatch("001", "create_job_dlq", "a" * 64, "b" * 64)
    assert isinstance(mismatch, e.UnsafeError)
    assert "pgsafe repair 001 --rebaseline" in str(mismatch)
    assert mismatch.expected == "a" * 64

    dirty = e.DirtyMigrationError("002", "add_heartbeat_column")
    assert isinstance(dirty, e.MigrationError)
    assert "pgsafe repair 002 --mark rolled-back|applied" in str(dirty)


def test_migration_lock_timeout_message_forms() -> None:
    assert str(e.MigrationLockTimeout(message="lock busy")) == "lock busy"
    text = str(e.MigrationLockTimeout(timeout_s=30, holder_pid=4242))
    assert "after 30s" in text and "4242" in text


# --- mask_password ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://user:secret@host/db", "postgresql://user:****@host/db"),
        ("postgres://user:secret@host:5432", "postgres://user:****@host:5432"),
        ("postgresql://:secret@host", "postgresql://:****@host"),
        ("postgresql://user:p@ss@host/db", "postgresql://user:****@host/db"),
        (
            "connect failed: postgresql://a:b@h1,h2/db?sslmode=require (timeout)",
            "connect failed: postgresql://a:****@h1,h2/db?sslmode=require (timeout)",
        ),
        ("postgresql://h/db?password=secret&x=1", "postgresql://h/db?password=****&x=1"),
        ("host=h password=secret dbname=d", "host=h password=**** dbname=d"),
        ("host=h password = secret dbname=d", "host=h password = **** dbname=d"),
        ("host=h password='se cret' dbname=d", "host=h password=**** dbname=d"),
        (r"password='it\'s secret' user=u", "password=**** user=u"),
        ("PASSWORD=secret", "PASSWORD=****"),
        ("env PGPASSWORD=secret psql", "env PGPASSWORD=**** psql"),
        ("sslpassword=secret", "sslpassword=****"),
        ("ALTER ROLE app WITH PASSWORD 'hunter2'", "ALTER ROLE app WITH PASSWORD '****'"),
        ("create role x login password 'it''s'", "create role x login password '****'"),
    ],
)
def test_mask_password(text: str, expected: str) -> None:
    assert e.mask_password(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://user@host/db",
        "postgresql://host:5432/db",
        "host=h user=u dbname=d",
        'password authentication failed for user "app"',
        "mypassword=notakeyword",
        "",
    ],
)
def test_mask_password_leaves_other_text_alone(text: str) -> None:
    assert e.mask_password(text) == text


# --- the generated block is current ----------------------------------------------------------


def test_generated_block_matches_errcodes() -> None:
    # The vendored copy, not the installed one: PostgreSQL minor releases add codes (15.20 added
    # 22P07), and the committed classes must not depend on the machine's minor version.
    errcodes = ROOT / "tools" / "errcodes.txt"
    tool = ROOT / "tools" / "gen_errors.py"
    result = subprocess.run(
        [sys.executable, str(tool), "--errcodes", str(errcodes), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
