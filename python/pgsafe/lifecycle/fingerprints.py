"""Schema fingerprints recorded in the ledger (``pgsafe.fingerprints``): postflight records the
schema as it stands after each apply, and preflight compares the live schema with the newest
record to detect drift (a change made outside migrations).

Table (created on first use, in the ledger schema)::

    pgsafe.fingerprints (
      id          bigserial PRIMARY KEY,
      recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      sha256      text NOT NULL,          -- SchemaFingerprint.sha256 (ledger schema excluded)
      versions    text[] NOT NULL,        -- migrations applied when it was recorded
      recorded_by text NOT NULL,          -- user@host
      source      text NOT NULL,          -- 'postflight', ...
      fingerprint jsonb NOT NULL          -- SchemaFingerprint.to_json(): every object
    )
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from pgsafe import _core
from pgsafe.config import Settings, applied_by
from pgsafe.db import connect
from pgsafe.quoting import quote_ident
from pgsafe.schema import SchemaFingerprint, fingerprint

__all__ = ["RecordedFingerprint", "applied_versions", "last_fingerprint", "record_fingerprint"]


@dataclass(frozen=True)
class RecordedFingerprint:
    """One row of ``pgsafe.fingerprints``."""

    id: int
    recorded_at: datetime  # aware, UTC
    sha256: str
    versions: tuple[str, ...]
    recorded_by: str
    source: str
    fingerprint: SchemaFingerprint

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "recorded_at": self.recorded_at.isoformat(),
            "sha256": self.sha256,
            "versions": list(self.versions),
            "recorded_by": self.recorded_by,
            "source": self.source,
        }


@contextlib.contextmanager
def _conn(
    conn_or_dsn: _core.Connection | str, settings: Settings | None
) -> Iterator[_core.Connection]:
    if isinstance(conn_or_dsn, str):
        with connect(conn_or_dsn, settings or Settings(), "fingerprint") as conn:
            yield conn
    else:
        yield conn_or_dsn


def _table(ledger_schema: str) -> str:
    return f"{quote_ident(ledger_schema)}.fingerprints"


def applied_versions(conn: _core.Connection, ledger_schema: str = "pgsafe") -> list[str]:
    """Versions the ledger lists as applied, in order ([] without a ledger)."""
    table = f"{quote_ident(ledger_schema)}.migrations"
    exists = conn.execute("SELECT to_regclass($1) IS NOT NULL", [table]).rows[0][0] == "t"
    if not exists:
        return []
    rows = conn.execute(f"SELECT version FROM {table} WHERE status = 'applied'").rows
    versions = [str(r[0]) for r in rows]
    return sorted(versions, key=lambda v: (int(v) if v.isdigit() else 0, v))


def record_fingerprint(
    conn_or_dsn: _core.Connection | str,
    fp: SchemaFingerprint | None = None,
    *,
    source: str = "postflight",
    ledger_schema: str = "pgsafe",
    settings: Settings | None = None,
) -> RecordedFingerprint:
    """Records `fp` (default: the live schema, ledger excluded) with the ledger's applied
    versions, creating the table when needed; returns the new row."""
    with _conn(conn_or_dsn, settings) as conn:
        if fp is None:
            fp = fingerprint(conn, (ledger_schema,))
        table = _table(ledger_schema)
        conn.execute(
            f"CREATE SCHEMA IF NOT EXISTS {quote_ident(ledger_schema)};\n"
            f"CREATE TABLE IF NOT EXISTS {table} (\n"
            "  id bigserial PRIMARY KEY,\n"
            "  recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n"
            "  sha256 text NOT NULL,\n"
            "  versions text[] NOT NULL,\n"
            "  recorded_by text NOT NULL,\n"
            "  source text NOT NULL,\n"
            "  fingerprint jsonb NOT NULL\n"
            ")"
        )
        versions = applied_versions(conn, ledger_schema)
        doc = fp.to_json()
        doc["database"] = ""  # never store a DSN
        row = conn.execute(
            f"INSERT INTO {table} (sha256, versions, recorded_by, source, fingerprint) "
            "VALUES ($1, $2::text[], $3, $4, $5::jsonb) "
            "RETURNING id, to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')",
            [fp.sha256, _pg_array(versions), applied_by(), source, json.dumps(doc)],
        ).rows[0]
        return RecordedFingerprint(
            int(str(row[0])),
            _utc(str(row[1])),
            fp.sha256,
            tuple(versions),
            applied_by(),
            source,
            fp,
        )


def last_fingerprint(
    conn_or_dsn: _core.Connection | str,
    *,
    ledger_schema: str = "pgsafe",
    settings: Settings | None = None,
) -> RecordedFingerprint | None:
    """The newest recorded fingerprint, or None when none was ever recorded."""
    with _conn(conn_or_dsn, settings) as conn:
        table = _table(ledger_schema)
        if conn.execute("SELECT to_regclass($1) IS NOT NULL", [table]).rows[0][0] != "t":
            return None
        rows = conn.execute(
            "SELECT id, to_char(recorded_at AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS.US'), sha256, array_to_json(versions)::text, "
            f"recorded_by, source, fingerprint::text FROM {table} ORDER BY id DESC LIMIT 1"
        ).rows
        if not rows:
            return None
        r = rows[0]
        fp = SchemaFingerprint.from_json(json.loads(str(r[6])), f"{table} id {r[0]}")
        return RecordedFingerprint(
            int(str(r[0])),
            _utc(str(r[1])),
            str(r[2]),
            tuple(json.loads(str(r[3]))),
            str(r[4]),
            str(r[5]),
            fp,
        )


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _pg_array(values: list[str]) -> str:
    return (
        "{"
        + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
        + "}"
    )
