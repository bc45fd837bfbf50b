"""Consistent streaming backups, parallel restore and verified restores.

The C++ core copies table data as COPY text on several connections sharing one exported
snapshot and appends each chunk as an independent zstd frame or gzip member (optionally sealed
with AES-256-GCM); this module runs ``pg_dump`` for the DDL inside the same snapshot, writes the
manifest, moves complete files into place, keeps ``latest-backup.txt`` and applies retention.
A plain backup restores with ``zstd -dc FILE | psql`` or ``zcat FILE | psql``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgsafe import _core, pgbin
from pgsafe.analysis.statement import Statement, split_statements
from pgsafe.backup import force as restore_force
from pgsafe.backup.datafp import fingerprint
from pgsafe.config import parse_duration
from pgsafe.db import server_major, split_name
from pgsafe.errors import (
    BackupError,
    ConfigError,
    CorruptChunk,
    Error,
    InsufficientPrivilege,
    RollbackError,
    UnsafeError,
    mask_password,
)
from pgsafe.progress import Progress, human_bytes
from pgsafe.quoting import quote_literal
from pgsafe.render import Report, Section, Table, Text
from pgsafe.server import TemporaryServer
from pgsafe.stamps import stamped_name

log = logging.getLogger("pgsafe")

FORMAT_VERSION = 1
DEFAULT_OUT_DIR = "backups/migrations"
LATEST_NAME = "latest-backup.txt"
_SUFFIX = {"zstd": ".sql.zst", "gzip": ".sql.gz"}
# The manifest's "compress" names the core's Compression.
_COMPRESSION = {c.name: c for c in (_core.Compression.zstd, _core.Compression.gzip)}
_ENCRYPTED_SUFFIX = ".enc"
_KEY_CHECK_LABEL = b"pgsafe-backup-key-check/"


# --------------------------------------------------------------------------------------------
# Keys


def _decode_key(raw: bytes, where: str) -> bytes:
    text = raw.strip()
    if re.fullmatch(rb"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text.decode())
    if len(raw) == 32:
        return raw

    with contextlib.suppress(binascii.Error, ValueError):
        decoded = base64.b64decode(text, validate=True)
        if len(decoded) == 32:
            return decoded
    raise ConfigError(
        f"{where}: not an AES-256 key (want 32 raw bytes, 64 hex digits or base64 of 32 bytes)"
    )


def load_key(key_file: str | os.PathLike[str] | None = None, key_env: str | None = None) -> bytes:
    """The 32-byte key from a file or an environment variable (never from the command line):
    32 raw bytes, 64 hex digits, or base64 of 32 bytes. Create one with
    ``openssl rand -hex 32 > backup.key``."""
    if key_file is not None and key_env is not None:
        raise ConfigError("give the key as a file or as an environment variable, not both")
    if key_file is not None:
        try:
            raw = Path(key_file).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{key_file}: cannot read the key: {exc.strerror}") from None
        return _decode_key(raw, str(key_file))
    if key_env is not None:
        value = os.environ.get(key_env)
        if not value:
            raise ConfigError(f"environment variable {key_env} is not set (expected the key)")
        return _decode_key(value.encode(), f"environment variable {key_env}")
    raise ConfigError("no key given")


def _key_check(key: bytes, file_id: str) -> str:
    return hmac.new(key, _KEY_CHECK_LABEL + file_id.encode(), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------------------------
# Files and the manifest


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_private(path: Path, data: bytes) -> None:
    """Writes `data` to `path` atomically: a 0600 temporary file, fsynced, renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def manifest_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".manifest.json")


def verified_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".verified.json")


def _load_manifest(path: Path) -> dict[str, Any]:
    mpath = manifest_path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such backup file")
    try:
        doc = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{mpath}: missing; a backup without its manifest is incomplete "
            "(interrupted) and cannot be checked or restored by pgsafe"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{mpath}: not a pgsafe backup manifest ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != "pgsafe-backup":
        raise ConfigError(f"{mpath}: not a pgsafe backup manifest")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"{mpath}: format version {doc.get('format_version')} (this pgsafe reads "
            f"{FORMAT_VERSION})"
        )
    return doc


def _chunk_from(d: dict[str, Any]) -> _core.BackupChunk:
    c = _core.BackupChunk()
    c.index = int(d["index"])
    c.kind = str(d["kind"])
    c.table = str(d.get("table") or "")
    rng = d.get("ctid_range") or [0, None]
    c.first_page = int(rng[0] or 0)
    c.end_page = -1 if rng[1] is None else int(rng[1])
    c.offset = int(d["offset"])
    c.length = int(d["length"])
    c.rows = int(d.get("rows") or 0)
    c.raw_bytes = int(d.get("raw_bytes") or 0)
    c.sha256 = str(d["sha256"])
    return c


def _chunk_json(c: _core.BackupChunk) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": c.index,
        "kind": c.kind,
        "offset": c.offset,
        "length": c.length,
        "sha256": c.sha256,
        "raw_bytes": c.raw_bytes,
    }
    if c.kind == "data":
        out["table"] = c.table
        out["ctid_range"] = [c.first_page, None if c.end_page < 0 else c.end_page]
        out["rows"] = c.rows
    return out


# --------------------------------------------------------------------------------------------
# pg_dump and psql


def _split_password(dsn: str) -> tuple[str, str | None]:
    """The DSN without its password, and the password, so neither pg_dump's nor psql's command
    line (visible to every local user in `ps`) carries it; it goes in PGPASSWORD instead. The DSN
    is read by libpq itself (the core's conninfo_parse), URL or key=value alike."""
    pairs = _core.conninfo_parse(dsn)
    password = next((v for k, v in pairs if k == "password"), None)
    if password is None:
        return dsn, None
    kept = [f"{k}={_conninfo_value(v)}" for k, v in pairs if k != "password"]
    return " ".join(kept), password


def _conninfo_value(value: str) -> str:
    """A key=value conninfo value, quoted as libpq reads it: 'a b', with \\ and \' escaped."""
    if value and not any(c in value for c in " '\\\t\n"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _client_env(dsn: str) -> tuple[str, dict[str, str]]:
    clean, password = _split_password(dsn)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    return clean, env


def _tool(name: str, server_major: int) -> str:
    """pg_dump or psql for a `server_major` server: of its major or newer (pgsafe.pgbin)."""

    return pgbin.client_program(name, server_major)


def _pg_dump(
    clients: pgbin.Installation, dsn: str, snapshot: str, tables: Sequence[str] | None
) -> dict[str, bytes]:
    """The schema inside `snapshot` as pg_dump's plain script of each section ("pre-data",
    "post-data"): one pg_dump (its custom-format archive, the catalogs read once), each section
    written out of it by pg_restore, which needs no connection."""
    clean, env = _client_env(dsn)
    argv = [
        clients.program("pg_dump"),
        "--format=custom",
        "--compress=0",
        "--section=pre-data",
        "--section=post-data",
        f"--snapshot={snapshot}",
        "--encoding=UTF8",
        "--no-password",
        "--dbname",
        clean,
    ]
    for t in tables or []:
        argv += ["--table", t]  # quote_ident() output is a pg_dump pattern matching only it
    archive = _finish(_start(argv, env), b"", "pg_dump")
    # Both sections at once: each pg_restore starts while the other reads the archive.
    restores = {
        section: _start([clients.program("pg_restore"), f"--section={section}", "--file=-"], env)
        for section in ("pre-data", "post-data")
    }
    try:
        return {
            section: _finish(proc, archive, f"pg_restore --section={section}")
            for section, proc in restores.items()
        }
    finally:
        for proc in restores.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    pipe = subprocess.PIPE
    return subprocess.Popen(argv, stdin=pipe, stdout=pipe, stderr=pipe, env=env)


def _finish(proc: subprocess.Popen[bytes], stdin: bytes, what: str) -> bytes:
    out, err = proc.communicate(stdin)
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise BackupError(f"{what} failed: {mask_password(' '.join(lines))}")
    return out


def _psql(psql: str, dsn: str, sql: bytes, what: str) -> None:
    clean, env = _client_env(dsn)
    env["PGAPPNAME"] = "pgsafe-restore"  # its session is found and ended if an undo needs it
    argv = [
        psql,
        "-X",
        "-q",
        "--no-password",
        "-v",
        "ON_ERROR_STOP=1",
        "--single-transaction",
        "-f",
        "-",
        "--dbname",
        clean,
    ]
    proc = subprocess.run(argv, input=sql, capture_output=True, env=env, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        first = next(
            (ln for ln in lines if "ERROR" in ln or "FATAL" in ln), lines[0] if lines else ""
        )
        raise RollbackError(
            f"restoring the {what} failed (nothing of it kept): {mask_password(first)}"
        )


# --------------------------------------------------------------------------------------------
# Reports


@dataclass
class TableEntry:
    table: str
    rows: int
    digest: str
    bytes: int
    chunks: int
    columns: str = ""
    has_generated: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _json_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _report_json(report: Any, rename: dict[str, str] | None = None) -> dict[str, Any]:
    """A report dataclass's fields but its title, as JSON values: paths as text, times in ISO
    8601, seconds to the microsecond; `rename` gives fields other names."""
    names = rename or {}
    return {
        names.get(f.name, f.name): _json_value(getattr(report, f.name))
        for f in dataclasses.fields(report)
        if f.name != "title"
    }


@dataclass
class BackupResult(Report):
    """What `backup()` wrote: the file, its manifest, and what it holds."""

    path: Path
    manifest_path: Path
    created_at: dt.datetime
    database: str
    tables: list[TableEntry]
    chunks: int
    size: int
    raw_bytes: int
    sha256: str
    seconds: float
    compress: str
    encrypted: bool
    removed: list[Path] = field(default_factory=list)
    title: str = "pgsafe backup"

    def summary(self) -> str:
        return (
            f"{self.path} : {len(self.tables)} tables, {sum(t.rows for t in self.tables):,} "
            f"rows, {human_bytes(self.size)} ({self.compress}"
            f"{', encrypted' if self.encrypted else ''}) in {self.seconds:.2f}s"
        )

    def sections(self) -> list[Section]:
        rows = [(t.table, t.rows, t.chunks, human_bytes(t.bytes), t.digest) for t in self.tables]
        parts: list[Text | Table] = [
            Text(f"database: {self.database}"),
            Text(f"manifest: {self.manifest_path}"),
            Text(f"sha256: {self.sha256}"),
        ]
        secs = [
            Section("Backup", parts),
            Section("Tables", [Table(["table", "rows", "chunks", "COPY text", "digest"], rows)]),
        ]
        if self.removed:
            secs.append(Section("Retention", [Text(f"removed {p}") for p in self.removed]))
        return secs

    def to_dict(self) -> dict[str, Any]:
        return _report_json(self, {"manifest_path": "manifest"})


@dataclass
class RestoreResult(Report):
    path: Path
    database: str
    tables: int
    rows: int
    chunks: int
    seconds: float
    dropped: list[str] = field(default_factory=list)
    title: str = "pgsafe restore"

    def summary(self) -> str:
        return (
            f"restored {self.path} into {self.database}: {self.tables} tables, {self.rows:,} rows "
            f"from {self.chunks} chunks in {self.seconds:.2f}s"
        )

    def sections(self) -> list[Section]:
        secs = [Section("Restore", [Text(self.summary())])]
        if self.dropped:
            secs.append(Section("Dropped first (--force)", [Text(d) for d in self.dropped]))
        return secs

    def to_dict(self) -> dict[str, Any]:
        return _report_json(self)


@dataclass
class Problem:
    chunk: int | None
    table: str
    offset: int | None
    reason: str

    def line(self) -> str:
        if self.chunk is None:
            return self.reason
        return f"chunk {self.chunk} ({self.table}, offset {self.offset}): {self.reason}"


@dataclass
class TableCheck:
    table: str
    rows_expected: int
    rows_restored: int
    digest_expected: str
    digest_restored: str

    @property
    def ok(self) -> bool:
        return (
            self.rows_expected == self.rows_restored
            and self.digest_expected == self.digest_restored
        )


@dataclass
class VerifyReport(Report):
    path: Path
    problems: list[Problem]
    tables: list[TableCheck]
    chunks: int
    sha256: str
    seconds: float
    verified_at: dt.datetime | None = None
    title: str = "pgsafe verify-backup"

    @property
    def ok(self) -> bool:
        return not self.problems and all(t.ok for t in self.tables)

    def summary(self) -> str:
        if self.ok:
            return (
                f"OK: {self.path}: {self.chunks} chunks intact, restored and matched "
                f"{len(self.tables)} tables' row counts and data fingerprints"
            )
        bad = [p.line() for p in self.problems] + [
            f"{t.table}: restored {t.rows_restored} rows / {t.digest_restored[:12]}, manifest "
            f"{t.rows_expected} rows / {t.digest_expected[:12]}"
            for t in self.tables
            if not t.ok
        ]
        return f"FAILED: {self.path}: " + "; ".join(bad)

    def sections(self) -> list[Section]:
        probs = [(p.chunk, p.table, p.offset, p.reason) for p in self.problems]
        rows = [
            (t.table, t.rows_expected, t.rows_restored, "yes" if t.ok else "NO")
            for t in self.tables
        ]
        return [
            Section("Chunks", [Table(["chunk", "table", "offset", "problem"], probs)]),
            Section("Tables", [Table(["table", "manifest rows", "restored rows", "match"], rows)]),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "chunks": self.chunks,
            "sha256": self.sha256,
            "seconds": round(self.seconds, 6),
            "verified_at": _iso(self.verified_at) if self.verified_at else None,
            "problems": [
                {"chunk": p.chunk, "table": p.table, "offset": p.offset, "reason": p.reason}
                for p in self.problems
            ],
            "tables": [
                {
                    "table": t.table,
                    "rows_expected": t.rows_expected,
                    "rows_restored": t.rows_restored,
                    "digest_expected": t.digest_expected,
                    "digest_restored": t.digest_restored,
                    "ok": t.ok,
                }
                for t in self.tables
            ],
        }


@dataclass(frozen=True)
class BackupInfo:
    """The newest complete backup of a directory, as `latest-backup.txt` names it."""

    path: Path
    created_at: dt.datetime
    verified_at: dt.datetime | None
    tables: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# Backup


MAX_AGE_NO_ZERO = "0 would delete every backup but the one just written"


def _parse_age(max_age: float | dt.timedelta | str | None) -> dt.timedelta | None:
    """Retention's age limit: a timedelta, a number of seconds, or a duration ("7d", "12h"),
    read by pgsafe.config's one parser; more than 0."""
    if max_age is None or isinstance(max_age, dt.timedelta):
        if max_age is not None and max_age <= dt.timedelta(0):
            raise ConfigError(f"max age: must be more than 0 ({MAX_AGE_NO_ZERO})")
        return max_age
    ms = parse_duration(max_age, "max age", unit="s", no_zero=MAX_AGE_NO_ZERO)
    return dt.timedelta(milliseconds=ms)


def _new_name(out_dir: Path, created: dt.datetime, suffix: str) -> str:
    """``backup-<YYYYmmddTHHMMSS.fffZ>`` + `suffix` (pgsafe.stamps), not in use in `out_dir`."""

    def taken(name: str) -> bool:
        return (out_dir / name).exists() or manifest_path(out_dir / name).exists()

    return stamped_name("backup-", suffix, when=created, taken=taken)


def _complete_backups(out_dir: Path) -> list[tuple[dt.datetime, Path]]:
    out = []
    for m in out_dir.glob("backup-*.manifest.json"):
        data = m.with_name(m.name[: -len(".manifest.json")])
        if not data.exists():
            continue
        try:
            doc = json.loads(m.read_text())
            created = _parse_time(doc["created_at"])
        except (OSError, ValueError, KeyError):
            continue
        out.append((created, data))
    return sorted(out)


def _remove_stale_partials(out_dir: Path) -> None:
    """Deletes partial files whose writer process is gone (killed mid-backup)."""
    for p in out_dir.glob(".backup-*.partial-*"):
        pid = p.name.rpartition("-")[2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                p.unlink()
        except PermissionError:
            pass


def _retain(
    out_dir: Path, keep: int | None, max_age: dt.timedelta | None, newest: Path
) -> list[Path]:
    """Deletes complete backups beyond the newest `keep` or older than `max_age` (the one just
    written always stays); partial files of other runs are never touched."""
    if keep is None and max_age is None:
        return []
    found = _complete_backups(out_dir)
    now = _utcnow()
    removed = []
    for i, (created, path) in enumerate(reversed(found)):
        if path == newest:
            continue
        too_many = keep is not None and i >= keep
        too_old = max_age is not None and now - created > max_age
        if too_many or too_old:
            for p in (path, manifest_path(path), verified_path(path)):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            removed.append(path)
    if removed:
        _fsync_dir(out_dir)
    return removed[::-1]  # oldest first


def _roles(dsn: str) -> tuple[list[str], int]:
    """The roles of the target's cluster, and its major version."""
    with _core.Connection(dsn, application_name="pgsafe-backup") as conn:
        rows = conn.execute(
            "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname !~ '^pg_' "
            'ORDER BY rolname COLLATE "C"'
        ).rows
        major = conn.server_version // 10000
    return [str(r[0]) for r in rows], major


def backup(
    dsn: str,
    *,
    tables: Sequence[str] | None = None,
    out_dir: str | os.PathLike[str] = DEFAULT_OUT_DIR,
    compress: str = "zstd",
    level: int | None = None,
    workers: int = 2,
    key: bytes | None = None,
    keep: int | None = None,
    max_age: float | dt.timedelta | str | None = None,
    chunk_pages: int | None = None,
    exclude_schemas: Sequence[str] = (),
    progress: bool = True,
) -> BackupResult:
    """Backs up `tables` (default: the whole database) of `dsn` from one snapshot into
    ``out_dir/backup-<UTC YYYYmmddTHHMMSS.fffZ>.sql.zst`` (or ``.sql.gz``; ``.enc`` appended when
    `key` encrypts it) with its manifest, then names it in ``out_dir/latest-backup.txt`` and applies
    retention (`keep` newest, or younger than `max_age`). Raises BackupError (exit 2)."""
    if isinstance(tables, str):
        raise ConfigError("tables must be a list of names, not one string")
    if compress not in _SUFFIX:
        raise ConfigError(f"compress must be zstd or gzip, not {compress!r}")
    if workers < 1:
        raise ConfigError(f"workers must be 1 or more, not {workers}")
    if keep is not None and keep < 1:
        raise ConfigError(f"keep must be 1 or more, not {keep}")
    if key is not None and len(key) != 32:
        raise ConfigError("an AES-256 key is 32 bytes")
    age = _parse_age(max_age)
    names = [t.strip() for t in tables or []]
    if tables is not None and not names:
        raise ConfigError("tables is empty: name at least one table, or pass None for all")
    if any(not t for t in names):
        raise ConfigError("empty table name")
    for name in names:
        split_name(name)
    masked = mask_password(dsn)
    roles, major = _roles(dsn)  # connects first: a bad target creates nothing

    clients = pgbin.client_installation(major)  # nor does a missing pg_dump for its major
    directory = Path(out_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            f"{directory}: cannot create the backup directory: {exc.strerror}"
        ) from None

    _remove_stale_partials(directory)
    started = time.monotonic()
    created = _utcnow()
    suffix = _SUFFIX[compress] + (_ENCRYPTED_SUFFIX if key else "")
    name = _new_name(directory, created, suffix)
    final = directory / name
    partial = directory / f".{name}.partial-{os.getpid()}"
    file_id = secrets.token_hex(16)
    bar: Progress | None = None

    def on_progress(p: _core.BackupProgress) -> None:
        if bar is not None:
            bar.update(p.chunks_done, p.chunks_total)

    try:
        options = _core.BackupOptions()
        options.tables = names
        options.exclude_schemas = list(exclude_schemas)
        options.workers = workers
        options.chunk_pages = chunk_pages or 0
        options.compression = _COMPRESSION[compress]
        options.level = level or 0
        options.key = key or b""
        options.file_id = file_id
        options.on_progress = on_progress
        writer = _core.BackupWriter(dsn, str(partial), options)
        try:
            chosen = [t.table for t in writer.tables] if names else None
            if names and not chosen:
                raise ConfigError("no tables to back up")
            dumps = _pg_dump(clients, dsn, writer.snapshot, chosen)
            writer.add_section("pre-data", dumps["pre-data"])
            with Progress("backup", unit="chunks", mode="auto" if progress else "off") as bar:
                writer.copy_data()
            sequences = writer.sequence_values_sql().encode()
            post = b"-- sequence values\n" + sequences + b"\n" + dumps["post-data"]
            writer.add_section("post-data", post)
            chunks = writer.finish()
            infos = list(writer.tables)
            server_version = writer.server_version
            snapshot = writer.snapshot
        finally:
            del writer
        size = partial.stat().st_size
        sha = _core.sha256_file(str(partial))
        entries = [
            TableEntry(t.table, t.rows, t.digest, t.bytes, t.chunks, t.columns, t.has_generated)
            for t in infos
        ]
        doc: dict[str, Any] = {
            "format": "pgsafe-backup",
            "format_version": FORMAT_VERSION,
            "file": name,
            "file_id": file_id,
            "created_at": _iso(created),
            "database": masked,
            "server_version": server_version,
            "pg_dump_version": clients.version,
            "snapshot": snapshot,
            "scope": "tables" if names else "database",
            "compress": compress,
            "encrypted": key is not None,
            "key_check": _key_check(key, file_id) if key else None,
            "size": size,
            "sha256": sha,
            "tables": [e.to_json() for e in entries],
            "chunks": [_chunk_json(c) for c in chunks],
            # Not in the backup, but its ownership and grants name them: verify-backup creates
            # them on its throwaway server; a restore target must have them already.
            "roles": roles,
            "not_included": ["roles", "tablespaces", "large objects", "database settings"],
        }
        # The data file first, then its manifest: a manifest never names a missing file.
        os.replace(partial, final)
        _write_private(manifest_path(final), (json.dumps(doc, indent=2) + "\n").encode())
        _write_private(directory / LATEST_NAME, (name + "\n").encode())
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    removed = _retain(directory, keep, age, final)
    return BackupResult(
        path=final,
        manifest_path=manifest_path(final),
        created_at=created,
        database=masked,
        tables=entries,
        chunks=len(chunks),
        size=size,
        raw_bytes=sum(c.raw_bytes for c in chunks),
        sha256=sha,
        seconds=time.monotonic() - started,
        compress=compress,
        encrypted=key is not None,
        removed=removed,
    )


def latest_backup(out_dir: str | os.PathLike[str] = DEFAULT_OUT_DIR) -> BackupInfo | None:
    """The backup `out_dir/latest-backup.txt` names, if it and its manifest are there."""
    directory = Path(out_dir)
    try:
        name = (directory / LATEST_NAME).read_text().strip()
    except FileNotFoundError:
        return None
    if not name or "/" in name:
        return None
    path = directory / name
    try:
        doc = _load_manifest(path)
    except ConfigError:
        return None
    verified_at = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        v = json.loads(verified_path(path).read_text())
        if v.get("sha256") == doc.get("sha256"):
            verified_at = _parse_time(v["verified_at"])
    return BackupInfo(
        path=path,
        created_at=_parse_time(doc["created_at"]),
        verified_at=verified_at,
        tables=tuple(t["table"] for t in doc.get("tables", [])),
    )


# --------------------------------------------------------------------------------------------
# Restore


def _open_key(doc: dict[str, Any], key: bytes | None, path: Path) -> bytes:
    if not doc.get("encrypted"):
        return b""
    if key is None:
        raise ConfigError(
            f"{path} is encrypted: give its key with --encrypt-key-file or --encrypt-key-env"
        )
    if not hmac.compare_digest(_key_check(key, doc["file_id"]), str(doc.get("key_check"))):
        raise ConfigError(f"{path}: wrong key (it is not the key this backup was encrypted with)")
    return key


def _chunks(doc: dict[str, Any]) -> list[_core.BackupChunk]:
    try:
        return [_chunk_from(c) for c in doc["chunks"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"malformed manifest: chunk entry {exc}") from None


def _layout_problems(
    path: Path, doc: dict[str, Any], chunks: list[_core.BackupChunk]
) -> list[Problem]:
    """Truncation, extension and gaps, found from sizes alone."""
    problems = []
    size = path.stat().st_size
    start = 0
    if doc.get("encrypted"):
        start = len(_core.ENCRYPTED_MAGIC) + len(doc["file_id"]) + 1
    for c in sorted(chunks, key=lambda c: c.offset):
        if c.offset != start:
            problems.append(
                Problem(c.index, c.table or c.kind, c.offset, "not where the previous chunk ends")
            )
        if c.offset + c.length > size:
            problems.append(
                Problem(
                    c.index,
                    c.table or c.kind,
                    c.offset,
                    f"the file ends {c.offset + c.length - size} bytes before the chunk does "
                    "(truncated)",
                )
            )
        start = c.offset + c.length
    if size > start:
        problems.append(
            Problem(None, "", start, f"{size - start} unexpected bytes after the last chunk")
        )
    return problems


# pg_dump's post-data statements that build an index or key on one table (its INDEX and
# CONSTRAINT items): built as soon as that table is loaded, or in parallel after the data,
# like pg_restore -j. Foreign keys wait for every table (they need both ends).
_KEY_CONSTRAINTS = frozenset({"CONSTR_PRIMARY", "CONSTR_UNIQUE", "CONSTR_EXCLUSION"})


def _is_setting(stmt: Statement) -> bool:
    """SET name ... or pg_dump's ``SELECT pg_catalog.set_config(...)``."""
    if stmt.kind == "VariableSetStmt":
        return True
    if stmt.kind != "SelectStmt":
        return False
    targets = stmt.node.get("targetList") or []
    if len(targets) != 1 or stmt.node.get("fromClause"):
        return False
    call = ((targets[0].get("ResTarget") or {}).get("val") or {}).get("FuncCall") or {}
    names = [n.get("String", {}).get("sval") for n in call.get("funcname") or []]
    return names[-1:] == ["set_config"]


def _built_on(stmt: Statement) -> tuple[str, str] | None:
    """The (schema, table) an index or key build is on: CREATE INDEX, or ALTER TABLE that only
    adds primary key, unique or exclusion constraints; None for any other statement."""
    node = stmt.node
    if stmt.kind == "IndexStmt":
        if node.get("concurrent"):
            return None
    elif stmt.kind == "AlterTableStmt" and node.get("objtype") == "OBJECT_TABLE":
        cmds = [c.get("AlterTableCmd") or {} for c in node.get("cmds") or []]
        if not cmds:
            return None
        for cmd in cmds:
            constraint = (cmd.get("def") or {}).get("Constraint") or {}
            if cmd.get("subtype") != "AT_AddConstraint":
                return None
            if constraint.get("contype") not in _KEY_CONSTRAINTS:
                return None
    else:
        return None
    rel = node.get("relation") or {}
    return str(rel.get("schemaname") or ""), str(rel.get("relname") or "")


def _table_keys(tables: set[str]) -> dict[tuple[str, str], str]:
    """Qualified table names (as the manifest quotes them) by their (schema, table) parts."""
    keys = {}
    for table in tables:
        with contextlib.suppress(ConfigError):
            parts = split_name(table)
            if len(parts) == 2:
                keys[(parts[0], parts[1])] = table
    return keys


def _plan_post_data(
    sql: bytes, data_tables: set[str]
) -> tuple[dict[str, list[str]], list[bytes], bytes, bytes]:
    """Splits pg_dump's post-data, read by the parser, into: index and key builds per loaded
    table (run as soon as that table is loaded), other such builds (run in parallel after the
    data), everything else (foreign keys, triggers, rules, policies, comments, sequence
    values, grants: one psql transaction, in pg_dump's order), and the preamble's settings.
    Each build carries the settings in force at its place in the script (default_tablespace
    among them). A script the parser cannot read runs whole in the transaction."""
    try:
        stmts = split_statements(restore_force.without_meta_commands(sql), "the backup's post-data")
    except (Error, UnicodeDecodeError):
        return {}, [], sql, b""
    keys = _table_keys(data_tables)
    after: dict[str, list[str]] = {}
    parallel: list[bytes] = []
    rest: list[str] = []
    preamble: list[str] = []
    now: dict[str, str] = {}  # the settings in force at this point of the script, by name
    in_preamble = True
    for stmt in stmts:
        text = stmt.sql + ";\n"
        if _is_setting(stmt):
            if in_preamble:
                preamble.append(text)
            now[str(stmt.node.get("name") or stmt.sql)] = text
            rest.append(text)
            continue
        if stmt.kind != "SelectStmt":
            in_preamble = False  # sequence values (SELECT setval) come before pg_dump's SETs
        on = _built_on(stmt)
        if on is None:
            rest.append(text)
            continue
        # Builds run on shared connections in any order: each sets what it was written under.
        build = "".join(now.values()) + text
        table = keys.get(on)
        if table is not None:
            after.setdefault(table, []).append(build)
        else:
            parallel.append(build.encode())
    return after, parallel, "".join(rest).encode(), "".join(preamble).encode()


def _run_parallel(dsn: str, items: list[bytes], workers: int, settings: bytes) -> None:
    if not items:
        return
    queue = list(items)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work() -> None:
        try:
            with _core.Connection(dsn, application_name="pgsafe-restore") as conn:
                conn.execute(settings.decode() or "SELECT")
                conn.execute("SET maintenance_work_mem = '256MB'")
                while True:
                    with lock:
                        if not queue or failures:
                            return
                        text = queue.pop(0)
                    conn.execute(text.decode())
        except BaseException as exc:  # reported on the calling thread
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, len(items)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RollbackError(f"building indexes and constraints failed: {failures[0]}")


def _user_tables(dsn: str) -> list[str]:
    with _core.Connection(dsn, application_name="pgsafe-restore") as conn:
        rows = conn.execute(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname <> 'information_schema' "
            "AND n.nspname !~ '^pg_' ORDER BY 1"
        ).rows
    return [str(r[0]) for r in rows]


def _compression_of(doc: dict[str, Any]) -> _core.Compression:
    name = str(doc.get("compress", "zstd"))
    if name not in _COMPRESSION:
        raise ConfigError(f"compression must be zstd or gzip, not {name}")
    return _COMPRESSION[name]


def _section(
    file: Path, doc: dict[str, Any], chunks: list[_core.BackupChunk], kind: str, key: bytes
) -> bytes:
    compress = _compression_of(doc)
    file_id = str(doc.get("file_id", ""))
    return b"".join(
        _core.read_backup_chunk(str(file), c, compress, key, file_id)
        for c in chunks
        if c.kind == kind
    )


def _prepare_target(
    dsn: str,
    file: Path,
    doc: dict[str, Any],
    chunks: list[_core.BackupChunk],
    key: bytes,
    force: bool,
) -> list[str]:
    """restore()'s prologue: refuses a target that has any table, or any object the backup
    creates, unless `force`; with `force`, drops what the backup recreates (a chosen-tables
    backup: only its tables) in one transaction, refusing when anything the backup does not
    recreate depends on it (pgsafe.backup.force). Returns what was dropped."""
    if not restore_force.has_user_objects(dsn):
        return []
    tables = [str(t["table"]) for t in doc.get("tables", [])]
    whole = doc.get("scope") != "tables"
    pre = _section(file, doc, chunks, "pre-data", key)
    post = _section(file, doc, chunks, "post-data", key) if whole else b""
    created = restore_force.created_tables(tables)
    try:
        if not whole:
            created = restore_force.created_tables(tables, pre)
        else:
            created = restore_force.created_by_script(pre) + [
                c
                for c in restore_force.created_by_script(post)
                if c.kind in ("event trigger", "publication")
            ]
    except (Error, UnicodeDecodeError, ValueError) as exc:
        if force and whole:
            raise UnsafeError(
                f"--force cannot work out what {file} creates ({exc}); nothing dropped"
            ) from None
    present = _user_tables(dsn)
    in_way = restore_force.existing(dsn, created)
    if not present and not in_way:
        return []
    if not force:
        found = []
        if present:
            found.append(
                f"{len(present)} tables: "
                + ", ".join(present[:5])
                + (" ..." if len(present) > 5 else "")
            )
        if in_way:
            found.append(
                f"{len(in_way)} of the backup's objects exist there: "
                + ", ".join(in_way[:5])
                + (" ..." if len(in_way) > 5 else "")
            )
        raise UnsafeError(
            f"target {mask_password(dsn)} is not empty ({'; '.join(found)}); restore into an "
            "empty database, or pass --force to drop what the backup recreates there first"
        )
    return restore_force.clear(dsn, created, pre)


# A restore in progress (or one that was killed) is marked in the target: a small table written
# in its own transaction before anything else and dropped after everything (or after the undo).
# `pgsafe restore` refuses a marked target without --force, `pgsafe status` reports it.
MARKER_SCHEMA = "pgsafe_restore"
MARKER_TABLE = f"{MARKER_SCHEMA}.partial"


@dataclass(frozen=True)
class PartialRestore:
    """A restore that began on the target and neither finished nor was undone (killed)."""

    file: str
    started_at: str
    host: str
    pid: int

    def describe(self) -> str:
        return (
            f"the target holds a partial restore of {self.file} (started {self.started_at} by "
            f"pid {self.pid} on {self.host}; it neither finished nor was undone, e.g. killed)"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def partial_restore(dsn: str | _core.Connection) -> PartialRestore | None:
    """The partial-restore marker of the target, if a restore left one."""
    if not isinstance(dsn, _core.Connection):
        with _core.Connection(dsn, application_name="pgsafe-restore") as conn:
            return partial_restore(conn)
    found = dsn.execute(f"SELECT pg_catalog.to_regclass('{MARKER_TABLE}') IS NOT NULL").rows
    if found[0][0] != "t":
        return None
    rows = dsn.execute(
        f"SELECT file, started_at::text, host, pid FROM {MARKER_TABLE} ORDER BY started_at LIMIT 1"
    ).rows
    if not rows:
        return PartialRestore("an unknown backup", "?", "?", 0)
    file, started, host, pid = rows[0]
    return PartialRestore(str(file), str(started), str(host), int(str(pid)))


def _mark(dsn: str, file: Path) -> bool:
    """Writes the partial-restore marker (its own transaction); False when the role may not
    create a schema in the target (the restore still undoes itself on failure; only a kill -9
    would then go unmarked)."""
    try:
        _write_mark(dsn, file)
    except InsufficientPrivilege as exc:
        log.warning("restore: no partial-restore marker (%s); a killed restore goes unnoticed", exc)
        return False
    return True


def _write_mark(dsn: str, file: Path) -> None:
    with _core.Connection(dsn, application_name="pgsafe-restore") as conn:
        conn.execute("BEGIN")
        conn.execute(f"CREATE SCHEMA {MARKER_SCHEMA}")
        conn.execute(
            f"CREATE TABLE {MARKER_TABLE} (file text NOT NULL, started_at timestamptz NOT NULL "
            "DEFAULT pg_catalog.now(), host text NOT NULL, pid int NOT NULL)"
        )
        conn.execute(
            f"COMMENT ON SCHEMA {MARKER_SCHEMA} IS 'pgsafe restore in progress, or one that was "
            "killed: the database holds a partial restore (pgsafe restore --force clears it)'"
        )
        conn.execute(
            f"INSERT INTO {MARKER_TABLE} (file, host, pid) VALUES ($1, $2, $3)",
            [str(file), socket.gethostname(), str(os.getpid())],
        )
        conn.execute("COMMIT")


def _unmark(dsn: str) -> None:
    with _core.Connection(dsn, application_name="pgsafe-restore") as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {MARKER_SCHEMA} CASCADE")


def _stop_own_sessions(dsn: str) -> None:
    """Ends the restore's sessions that may outlive an interrupt (a psql whose process was
    killed mid-statement, a worker the core could not cancel): their locks would hold up the
    undo, their transactions are rolled back anyway."""
    with _core.Connection(dsn, application_name="pgsafe-restore-undo") as conn:
        sql = (
            "SELECT pg_catalog.count(pg_catalog.pg_terminate_backend(pid)) "
            "FROM pg_catalog.pg_stat_activity WHERE datname = pg_catalog.current_database() "
            "AND application_name = 'pgsafe-restore' AND pid <> pg_catalog.pg_backend_pid()"
        )
        conn.execute(sql)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = conn.execute(
                "SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity "
                "WHERE datname = pg_catalog.current_database() "
                "AND application_name = 'pgsafe-restore' AND pid <> pg_catalog.pg_backend_pid()"
            ).rows[0][0]
            if str(left) == "0":
                return
            time.sleep(0.1)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM during the restore raises KeyboardInterrupt (as Ctrl-C does), so the restore is
    undone rather than left half-done; only on the main thread, where signals are handled."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """While the undo runs, SIGINT and SIGTERM are noted, not acted on: a second Ctrl-C must
    not leave the undo half-done. Yields the signals that arrived."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    previous = {
        sig: signal.signal(sig, lambda signum, frame: got.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield got
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _created_by_backup(
    file: Path, doc: dict[str, Any], chunks: list[_core.BackupChunk], key: bytes
) -> list[restore_force.Created]:
    """What the backup's DDL creates: everything its pre-data makes (and event triggers and
    publications from its post-data), or for a chosen-tables backup its tables and sequences."""
    pre = _section(file, doc, chunks, "pre-data", key)
    if doc.get("scope") == "tables":
        created = restore_force.created_tables(
            [str(t["table"]) for t in doc.get("tables", [])], pre
        )
        for c in created:
            c.optional = False  # undo drops the sequences it created too
        return created
    post = _section(file, doc, chunks, "post-data", key)
    return restore_force.created_by_script(pre) + [
        c
        for c in restore_force.created_by_script(post)
        if c.kind in ("event trigger", "publication")
    ]


def _undo_restore(
    dsn: str,
    file: Path,
    doc: dict[str, Any],
    chunks: list[_core.BackupChunk],
    key: bytes,
    before: set[tuple[int, int]],
    dropped_first: list[str],
) -> str:
    """Removes what the failed restore created; returns the clause of the failure line that
    says what the target was left as."""
    forced = ""
    if dropped_first:
        shown = ", ".join(dropped_first[:3]) + (" ..." if len(dropped_first) > 3 else "")
        forced = (
            f"; what --force dropped first ({len(dropped_first)} objects: {shown}) is not back: "
            "restore it from a sound backup"
        )
    try:
        _stop_own_sessions(dsn)
        removed = restore_force.undo(dsn, _created_by_backup(file, doc, chunks, key), before)
        count, names = restore_force.leftover(dsn, before)
        if count:
            raise RollbackError(f"{count} objects it created are still there ({', '.join(names)})")
        _unmark(dsn)
    except (Error, UnicodeDecodeError, ValueError) as exc:
        return (
            f"; undoing it failed ({mask_password(str(exc))}): the target holds a partial "
            f"restore, marked in {MARKER_TABLE}; `pgsafe restore {file} --force` clears it and "
            f"restores again{forced}"
        )
    what = f"its {len(removed)} objects dropped again" if removed else "nothing of it was kept"
    return f"; the restore was undone ({what}): the target is as it was before{forced}"


def _failed(exc: BaseException, note: str) -> BaseException:
    """The error a failed restore raises: the original kind (CorruptChunk, ConfigError, ...)
    with the line saying what the target was left as."""
    if isinstance(exc, KeyboardInterrupt):
        why = "terminated (SIGTERM)" if str(exc) == "SIGTERM" else "interrupted"
        return RollbackError(f"restore {why}{note}")
    if isinstance(exc, CorruptChunk):
        return CorruptChunk(exc.index, exc.table, exc.offset, exc.reason, f"{exc}{note}")
    if isinstance(exc, ConfigError):
        return ConfigError(f"{exc}{note}")
    if isinstance(exc, RollbackError):
        return RollbackError(f"{exc}{note}")
    if isinstance(exc, Error):
        return RollbackError(f"restoring failed: {exc}{note}")
    return exc


def restore(
    path: str | os.PathLike[str],
    dsn: str,
    *,
    workers: int = 2,
    force: bool = False,
    key: bytes | None = None,
    progress: bool = True,
) -> RestoreResult:
    """Restores a backup into `dsn`: pre-data DDL (one transaction), data chunks in parallel on
    `workers` connections (each checked against its SHA-256 first), then post-data and sequence
    values (one transaction). Refuses a target that has any user table, or any object the
    backup creates, or a partial restore (see `partial_restore`), unless `force`, which first
    drops what the backup recreates (only its tables for a chosen-tables backup; see
    _prepare_target and docs/backup.md).

    All or nothing: if any step fails, or Ctrl-C / SIGTERM stops it, every object the restore
    created (and so every row it loaded) is dropped again and the error says so; a marker
    table (MARKER_TABLE) written first and dropped last tells the next restore and `pgsafe
    status` about a restore that was killed (kill -9) before it could finish or undo itself.
    Raises UnsafeError (exit 1) when refused, RollbackError (exit 4) when loading fails or is
    interrupted (CorruptChunk for a damaged chunk), each saying what the target was left as."""
    if workers < 1:
        raise ConfigError(f"workers must be 1 or more, not {workers}")
    file = Path(path)
    doc = _load_manifest(file)
    opened = _open_key(doc, key, file)
    chunks = _chunks(doc)
    if problems := _layout_problems(file, doc, chunks):
        p = problems[0]
        raise CorruptChunk(p.chunk if p.chunk is not None else -1, p.table, p.offset or 0, p.reason)
    started = time.monotonic()
    table_names = [t["table"] for t in doc.get("tables", [])]
    psql = _tool("psql", server_major(dsn))  # before anything is dropped
    partial = partial_restore(dsn)
    if partial is not None and not force:
        raise UnsafeError(
            f"{partial.describe()}; nothing changed: `pgsafe restore {file} --force` drops what "
            "the backup recreates there and restores again"
        )
    with _terminate_as_interrupt():
        if partial is not None:
            # The killed restore's sessions may still run (the server notices a dead client
            # only when it next writes to it): they hold locks on what --force drops.
            _stop_own_sessions(dsn)
        dropped = _prepare_target(dsn, file, doc, chunks, opened, force)
        if partial is not None:
            _unmark(dsn)
        marked = _mark(dsn, file)
        before = restore_force.user_object_keys(dsn)
        try:
            rows = _load(psql, dsn, file, doc, chunks, opened, workers, progress)
        except BaseException as exc:
            with _signals_held():
                note = _undo_restore(dsn, file, doc, chunks, opened, before, dropped)
            raise _failed(exc, note) from exc
        if marked:
            _unmark(dsn)
    return RestoreResult(
        path=file,
        database=mask_password(dsn),
        tables=len(table_names),
        rows=rows,
        chunks=len(chunks),
        seconds=time.monotonic() - started,
        dropped=dropped,
    )


def _load(
    psql: str,
    dsn: str,
    file: Path,
    doc: dict[str, Any],
    chunks: list[_core.BackupChunk],
    opened: bytes,
    workers: int,
    progress: bool,
) -> int:
    """restore()'s steps once the target is ready: pre-data, data (with each table's index
    builds), the other index and key builds, the rest of post-data. Returns the rows loaded."""
    compress = _compression_of(doc)
    file_id = str(doc.get("file_id", ""))
    pre = [c for c in chunks if c.kind == "pre-data"]
    post = [c for c in chunks if c.kind == "post-data"]
    data = [c for c in chunks if c.kind == "data"]
    for c in pre:
        _psql(
            psql,
            dsn,
            _core.read_backup_chunk(str(file), c, compress, opened, file_id),
            "schema (pre-data)",
        )
    bar: Progress | None = None

    def on_progress(p: _core.RestoreProgress) -> None:
        if bar is not None:
            bar.update(p.chunks_done, p.chunks_total)

    post_sql = b"".join(
        _core.read_backup_chunk(str(file), c, compress, opened, file_id) for c in post
    )
    after, parallel, rest, settings = _plan_post_data(post_sql, {c.table for c in data})
    rows = 0
    if data:
        try:
            mode = "auto" if progress else "off"
            with Progress("restore", total=len(data), unit="chunks", mode=mode) as bar:
                options = _core.RestoreOptions()
                options.workers = workers
                options.compression = compress
                options.key = opened
                options.file_id = file_id
                options.on_progress = on_progress
                options.after_table = after
                rows = _core.restore_backup_chunks(dsn, str(file), data, options)
        except (CorruptChunk, ConfigError):
            raise
        except Error as exc:
            raise RollbackError(f"loading the data failed: {exc}") from exc
    _run_parallel(dsn, parallel, workers, settings)
    if post:
        _psql(psql, dsn, rest, "indexes, constraints, triggers and sequence values (post-data)")
    return rows


# --------------------------------------------------------------------------------------------
# Verify


def _source_major(doc: dict[str, Any]) -> int | None:
    """The major of the server the backup was taken from (its manifest's server_version_num)."""
    version = doc.get("server_version")
    if isinstance(version, int) and not isinstance(version, bool) and version >= 100000:
        return version // 10000
    return None


@contextlib.contextmanager
def _throwaway(roles: Sequence[str], major: int | None) -> Iterator[str]:
    """A database on a throwaway server of the backup's own major (`major`; None: the default
    major), with the backup's roles."""

    with TemporaryServer(pg_version=major) as server:
        server.create_database("pgsafe_verify")
        for role in roles:
            server.execute(
                "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = "
                + quote_literal(role)
                + ") THEN EXECUTE pg_catalog.format('CREATE ROLE %I', "
                + quote_literal(role)
                + "); END IF; END$$"
            )
        yield server.dsn("pgsafe_verify")


def _restored_fingerprints(dsn: str, tables: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    names = [t["table"] for t in tables]
    return {f.table: f for f in fingerprint(dsn, names, workers)} if names else {}


def verify_backup(
    path: str | os.PathLike[str],
    *,
    key: bytes | None = None,
    workers: int = 2,
    target_dsn: str | None = None,
    progress: bool = True,
) -> VerifyReport:
    """Checks every chunk's SHA-256 and the file's, restores the backup into a throwaway server
    (or the empty database `target_dsn`), and compares every table's row count and data
    fingerprint with the manifest. On success records ``<file>.verified.json``. The report's
    ``ok`` says whether it passed; problems name the chunk (table, index, offset)."""
    started = time.monotonic()
    file = Path(path)
    doc = _load_manifest(file)
    opened = _open_key(doc, key, file)
    chunks = _chunks(doc)
    problems = _layout_problems(file, doc, chunks)
    size = file.stat().st_size
    for c in chunks:
        if c.offset + c.length > size:
            continue  # reported as truncated
        try:
            _core.check_backup_chunk(str(file), c)
        except CorruptChunk as exc:
            problems.append(Problem(exc.index, exc.table, exc.offset, exc.reason))
    sha = _core.sha256_file(str(file))
    if sha != doc.get("sha256"):
        problems.append(Problem(None, "", None, "the file's SHA-256 differs from the manifest's"))

    def report(checks: list[TableCheck]) -> VerifyReport:
        return VerifyReport(file, problems, checks, len(chunks), sha, time.monotonic() - started)

    if problems:
        return report([])
    tables = list(doc.get("tables", []))
    checks: list[TableCheck] = []
    with contextlib.ExitStack() as stack:
        dsn = (
            target_dsn
            if target_dsn is not None
            else stack.enter_context(_throwaway(doc.get("roles") or [], _source_major(doc)))
        )
        try:
            restore(file, dsn, workers=workers, key=opened or None, progress=progress)
        except CorruptChunk as exc:
            problems.append(Problem(exc.index, exc.table, exc.offset, exc.reason))
            return report([])
        except Error as exc:
            problems.append(Problem(None, "", None, f"restore failed: {exc}"))
            return report([])
        found = _restored_fingerprints(dsn, tables, workers)
        for t in tables:
            f = found.get(t["table"])
            checks.append(
                TableCheck(
                    t["table"],
                    int(t["rows"]),
                    f.rows if f else -1,
                    str(t["digest"]),
                    f.digest if f else "",
                )
            )
    result = report(checks)
    if result.ok:
        result.verified_at = _utcnow()
        record = {
            "file": file.name,
            "sha256": sha,
            "verified_at": _iso(result.verified_at),
            "tables": [c.table for c in checks],
            "rows": sum(c.rows_restored for c in checks),
        }
        _write_private(verified_path(file), (json.dumps(record, indent=2) + "\n").encode())
    return result
