"""Table data fingerprints: each table's row count and an order-independent digest of its rows,
taken from one consistent snapshot by the C++ core. A rewrite (VACUUM FULL, CLUSTER, a column
type change that keeps the values' text, a dump and restore) leaves a fingerprint unchanged;
a lost, added or altered row changes it. The "nothing lost" checks compare them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgsafe import _core
from pgsafe.db import split_name
from pgsafe.errors import ConfigError

__all__ = ["DEFAULT_CHUNK_PAGES", "Progress", "TableFingerprint", "fingerprint"]

DEFAULT_CHUNK_PAGES: int = _core.DEFAULT_CHUNK_PAGES

Progress = _core.FingerprintProgress


@dataclass(frozen=True)
class TableFingerprint:
    """One table's data. Two fingerprints are equal when table, rows, digest and bytes are;
    how long the scan took does not count."""

    table: str  # schema-qualified, quoted where SQL needs it
    rows: int
    digest: str  # 32 hex digits: the sum of the rows' XXH3-128 hashes of their COPY text
    bytes: int  # COPY text scanned
    seconds: float = field(default=0.0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rows": self.rows,
            "digest": self.digest,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 6),
        }


def fingerprint(
    dsn: str,
    tables: Sequence[str] | None = None,
    workers: int = 2,
    *,
    chunk_pages: int | None = None,
    exclude_schemas: Sequence[str] = ("pgsafe",),
    progress: Callable[[Progress], None] | None = None,
) -> list[TableFingerprint]:
    """Fingerprints `tables` (default: every ordinary table outside the system schemas and
    `exclude_schemas`) from one snapshot, scanning ctid ranges of `chunk_pages` pages on
    `workers` connections. `progress` is called on this thread as chunks finish. Ctrl-C cancels
    the scan on the server."""
    if isinstance(tables, str):
        raise ConfigError("tables must be a list of names, not one string")
    if workers < 1:
        raise ConfigError(f"workers must be 1 or more, not {workers}")
    if chunk_pages is not None and chunk_pages < 1:
        raise ConfigError(f"chunk_pages must be 1 or more, not {chunk_pages}")
    names = [t.strip() for t in tables or []]
    if any(not t for t in names):
        raise ConfigError("empty table name")
    for t in names:
        split_name(t)
    found = _core.fingerprint_tables(
        dsn,
        names,
        list(exclude_schemas),
        workers,
        chunk_pages or 0,
        "pgsafe-fingerprint",
        progress,
    )
    return [TableFingerprint(f.table, f.rows, f.digest, f.bytes, f.seconds) for f in found]
