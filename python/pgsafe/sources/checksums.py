"""The migration directory's checksum manifest, ``checksum.txt``: one ``<sha256>  <file>`` line
per up and down file, in the format ``sha256sum -c`` and ``shasum -a 256 -c`` read when run
from that directory. Written atomically; checked file by file with the core's SHA-256."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pgsafe import _core
from pgsafe.errors import ConfigError
from pgsafe.sources.layouts import discover

MANIFEST = "checksum.txt"

# GNU coreutils' line: 64 hex digits, a space, then ' ' (text) or '*' (binary), then the name.
# sha256sum escapes names holding '\\' or a newline with a leading '\\'; migration names never
# hold either, so such a line is refused rather than unescaped.
_LINE = re.compile(r"^(?P<digest>[0-9a-fA-F]{64}) [ *](?P<name>[^\\\n]+)$")


@dataclass
class CheckResult:
    """What ``--check`` found; ``ok`` when nothing changed, went missing or appeared."""

    manifest: Path
    verified: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra)

    def lines(self) -> list[str]:
        """One line per problem file, in the manifest's order, then the files it lacks."""
        out = [f"changed: {name}" for name in self.changed]
        out += [f"missing: {name}" for name in self.missing]
        out += [f"extra: {name} (not in {self.manifest.name})" for name in self.extra]
        return out


def migration_files(directory: str | Path) -> list[Path]:
    """Every up and down file, in migration order (up before its down), each once (a dbmate
    file holds both), with sqitch's verify scripts."""
    files: dict[Path, None] = {}
    for mig in discover(directory):
        files[mig.up_path] = None
        if mig.down_path is not None:
            files[mig.down_path] = None
        verify = getattr(mig, "verify_path", None)
        if verify is not None:
            files[verify] = None
    return list(files)


def _relative(path: Path, root: Path) -> str:
    """`path` as the manifest names it: relative to the migrations directory, '/'-separated
    (diesel's up.sql files are told apart by their directory)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def manifest_lines(directory: str | Path) -> list[str]:
    """The manifest's lines for the files on disk now, names relative to `directory`."""
    root = Path(directory)
    return [
        f"{_core.sha256_file(path)}  {_relative(path, root)}" for path in migration_files(directory)
    ]


def write_manifest(directory: str | Path) -> Path:
    """Writes ``directory/checksum.txt`` through a temporary file renamed over it, so a reader
    sees the old manifest or the new one, never half of one. Returns its path."""
    root = Path(directory)
    target = root / MANIFEST
    text = "".join(line + "\n" for line in manifest_lines(root))
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    except OSError as exc:
        raise ConfigError(f"{target}: {exc.strerror or exc}") from None
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", suffix=".tmp", dir=root)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, target)
        tmp = None
        _fsync_directory(root)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return target


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is.
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(path: Path) -> list[tuple[str, str]]:
    """(digest, name) pairs of a manifest; ConfigError naming file and line when malformed."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{where}: not valid UTF-8") from None
    entries: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise ConfigError(
                f"{path}:{number}: not a sha256sum line (want '<64 hex digits>  <file name>')"
            )
        name = m["name"]
        if name in seen:
            raise ConfigError(f"{path}:{number}: {name} is already listed on line {seen[name]}")
        seen[name] = number
        entries.append((m["digest"].lower(), name))
    return entries


def check_manifest(directory: str | Path) -> CheckResult:
    """Compares ``directory/checksum.txt`` with the files on disk. A listed file that changed or
    is gone, and a ``*.sql`` file the manifest does not list, are each reported; an unreadable
    manifest or file raises ConfigError."""
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(f"{root}: migrations directory not found")
    manifest = root / MANIFEST
    # Any *.sql beside the manifest counts (even a name no layout reads), and every file of the
    # layout's migrations (diesel's and sqitch's are in subdirectories). No migration at all
    # is an error of its own, whatever the manifest says.
    on_disk = {p.name for p in root.iterdir() if p.suffix == ".sql" and p.is_file()}
    try:
        on_disk |= {_relative(p, root) for p in migration_files(root)}
    except ConfigError:
        if not on_disk:
            raise
    if not manifest.exists():
        raise ConfigError(f"{manifest}: not found; write it with `pgsafe checksum --write`")
    result = CheckResult(manifest)
    listed = set()
    for digest, name in read_manifest(manifest):
        listed.add(name)
        path = root / name
        if not path.exists():
            result.missing.append(name)
            continue
        if _core.sha256_file(path) == digest:
            result.verified.append(name)
        else:
            result.changed.append(name)
    result.extra = [name for name in sorted(on_disk) if name not in listed]
    return result
