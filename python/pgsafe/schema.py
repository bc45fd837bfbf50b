"""Schema fingerprints and schema diffs. The core reads the catalog into canonical objects
(kind, name, definition) and hashes them; this module turns them into values that can be saved,
loaded and compared object by object, so drift is named precisely rather than just detected."""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pgsafe import _core
from pgsafe.config import Settings
from pgsafe.db import connect
from pgsafe.errors import ConfigError

FORMAT = "pgsafe-schema-fingerprint"
FORMAT_VERSION = 1
DEFAULT_EXCLUDE: tuple[str, ...] = (Settings().ledger_schema,)

Change = Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class SchemaObject:
    """One catalog object: `kind` ("table", "column", "index", ...), its quoted schema-qualified
    `name`, and its canonical `definition` (one property per line)."""

    kind: str
    name: str
    definition: str

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class SchemaFingerprint:
    """The canonical description of one database's schema and its SHA-256. Two fingerprints are
    equal when their objects are; where they came from does not count."""

    objects: tuple[SchemaObject, ...]
    sha256: str
    server_version: int = field(default=0, compare=False)
    exclude: tuple[str, ...] = field(default=DEFAULT_EXCLUDE, compare=False)
    source: str = field(default="", compare=False)  # masked DSN or file name, for messages

    @property
    def server_major(self) -> int:
        return self.server_version // 10000

    def get(self, kind: str, name: str) -> SchemaObject | None:
        for o in self.objects:
            if o.kind == kind and o.name == name:
                return o
        return None

    def counts(self) -> dict[str, int]:
        """Objects per kind, kinds in alphabetical order."""
        return dict(sorted(Counter(o.kind for o in self.objects).items()))

    def canonical_text(self) -> str:
        """Exactly the bytes whose SHA-256 is `sha256`."""
        return _core.schema_canonical_text(_to_core(self.objects))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "sha256": self.sha256,
            "server_version": self.server_version,
            "database": self.source,
            "exclude": list(self.exclude),
            "objects": [
                {"kind": o.kind, "name": o.name, "definition": o.definition} for o in self.objects
            ],
        }

    @classmethod
    def from_json(cls, doc: Any, source: str = "") -> SchemaFingerprint:
        """Loads what `to_json` wrote; the digest is recomputed, so an edited file is refused."""
        where = source or "fingerprint"
        if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
            raise ConfigError(f'{where}: not a pgsafe schema fingerprint (no "format": {FORMAT!r})')
        if doc.get("version") != FORMAT_VERSION:
            raise ConfigError(
                f"{where}: fingerprint format version {doc.get('version')!r}; this pgsafe reads "
                f"version {FORMAT_VERSION}"
            )
        try:
            objects = tuple(
                SchemaObject(str(o["kind"]), str(o["name"]), str(o["definition"]))
                for o in doc["objects"]
            )
            sha = str(doc["sha256"])
            exclude = tuple(str(s) for s in doc.get("exclude", DEFAULT_EXCLUDE))
            server_version = int(doc.get("server_version", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: malformed fingerprint: {exc}") from None
        actual = _core.schema_digest(_to_core(objects))
        if actual != sha:
            raise ConfigError(
                f"{where}: its objects do not match its sha256 (recorded {sha[:12]}, "
                f"computed {actual[:12]}): the file was edited or damaged"
            )
        return cls(
            _sorted(objects), sha, server_version, exclude, source or str(doc.get("database", ""))
        )

    @classmethod
    def load(cls, path: str | Path) -> SchemaFingerprint:
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{p}: not JSON: {exc}") from None
        return cls.from_json(doc, str(p))

    def save(self, path: str | Path) -> None:
        p = Path(path)
        try:
            p.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot write: {exc.strerror or exc}") from None

    def render_text(self) -> str:
        """The digest and its source (as `sha256sum` prints them), then objects per kind."""
        lines = [f"{self.sha256}  {self.source}".rstrip()]
        counts = self.counts()
        width = max((len(k) for k in counts), default=0)
        lines.append(f"{len(self.objects)} objects")
        lines += [f"  {kind:<{width}}  {n}" for kind, n in counts.items()]
        lines.append("excluded schemas: " + (", ".join(self.exclude) or "none"))
        return "\n".join(lines)


@dataclass(frozen=True)
class Difference:
    """One object that differs: `added` is only in the second fingerprint, `removed` only in the
    first, `changed` in both with different definitions (`before` is the first's)."""

    change: Change
    kind: str
    name: str
    before: str | None
    after: str | None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "kind": self.kind,
            "name": self.name,
            "before": self.before,
            "after": self.after,
        }

    def render(self, context: int = 3) -> str:
        """A header naming the object, then its definition as a line diff (`context` unchanged
        lines around each change; "..." where more are left out)."""
        before = (self.before or "").splitlines()
        after = (self.after or "").splitlines()
        lines = [f"{self.change} {self.label}"]
        for line in difflib.unified_diff(before, after, lineterm="", n=context):
            if line.startswith(("---", "+++")):
                continue  # the header already names the object
            if line.startswith("@@"):
                if len(lines) > 1:
                    lines.append("    ...")
                continue
            lines.append(f"    {line}")
        return "\n".join(lines)


def _sorted(objects: Iterable[SchemaObject]) -> tuple[SchemaObject, ...]:
    # Bytewise, like the core: Python compares str by code point, which orders UTF-8 the same.
    return tuple(sorted(objects, key=lambda o: (o.kind, o.name)))


def _to_core(objects: Iterable[SchemaObject]) -> list[_core.SchemaObject]:
    return [_core.SchemaObject(o.kind, o.name, o.definition) for o in objects]


def fingerprint(
    conn_or_dsn: _core.Connection | str,
    exclude: Iterable[str] = DEFAULT_EXCLUDE,
    *,
    settings: Settings | None = None,
) -> SchemaFingerprint:
    """Fingerprints the schema of a database: a DSN (connected and closed here) or an open, idle
    connection. `exclude` names schemas left out besides the system ones; by default the
    ledger schema."""
    excluded = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    if isinstance(conn_or_dsn, str):
        with connect(conn_or_dsn, settings or Settings(), "schema fingerprint") as conn:
            return fingerprint(conn, excluded)
    core = _core.schema_fingerprint(conn_or_dsn, list(excluded))
    objects = tuple(SchemaObject(o.kind, o.name, o.definition) for o in core.objects)
    return SchemaFingerprint(objects, core.sha256, core.server_version, excluded, conn_or_dsn.dsn)


def diff(a: SchemaFingerprint, b: SchemaFingerprint) -> list[Difference]:
    """What changed from `a` to `b`, object by object, in (kind, name) order."""
    before = {(o.kind, o.name): o.definition for o in a.objects}
    after = {(o.kind, o.name): o.definition for o in b.objects}
    out: list[Difference] = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        change: Change = "added" if old is None else "removed" if new is None else "changed"
        out.append(Difference(change, key[0], key[1], old, new))
    return out


def render_diff(differences: list[Difference], a_label: str = "a", b_label: str = "b") -> str:
    """The differences as readable text: a header, one block per object, a summary line."""
    if not differences:
        return f"no differences between {a_label} and {b_label}"
    counts = Counter(d.change for d in differences)
    summary = ", ".join(f"{counts[c]} {c}" for c in ("added", "removed", "changed") if counts[c])
    lines = [f"--- {a_label}", f"+++ {b_label}"]
    lines += [d.render() for d in differences]
    lines.append(f"{len(differences)} objects differ: {summary}")
    return "\n".join(lines)
