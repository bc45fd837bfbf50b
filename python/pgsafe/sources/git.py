"""Which files changed, from git: for `pgsafe lint --since REF` (added or changed since the
branch left REF, uncommitted and untracked files included) and `--staged` (what the index
holds for the next commit). git is run as a program; its output is read with -z (no quoting)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pgsafe.errors import ConfigError


@dataclass(frozen=True)
class Changes:
    """The files a change set touches (absolute, resolved; deleted ones included, so a deleted
    down file still counts as a change to its migration) and how it was chosen, for messages."""

    files: frozenset[Path]
    what: str  # "since origin/main", "in the git index (staged)"

    def under(self, path: Path) -> list[Path]:
        """The changed files at or below `path`."""
        root = path.resolve()
        return [f for f in self.files if f == root or root in f.parents]


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    git = shutil.which("git")
    if git is None:
        raise ConfigError("git: not found on PATH (--since and --staged run git)")
    try:
        return subprocess.run([git, *args], cwd=cwd, capture_output=True, check=False)
    except OSError as exc:
        raise ConfigError(f"git: cannot run: {exc.strerror or exc}") from None


def _names(out: bytes, top: Path) -> set[Path]:
    return {(top / n.decode("utf-8", "surrogateescape")).resolve() for n in out.split(b"\0") if n}


def _first_line(err: bytes) -> str:
    lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[0] if lines else "failed"


def _toplevel(where: Path) -> Path:
    cwd = where if where.is_dir() else where.parent
    if not cwd.is_dir():
        raise ConfigError(f"{where}: no such file or directory")
    res = _git(["rev-parse", "--show-toplevel"], cwd)
    if res.returncode != 0:
        raise ConfigError(f"{where}: not in a git repository (--since and --staged need one)")
    return Path(res.stdout.decode().strip()).resolve()


def changed_files(where: Path, since: str | None = None, staged: bool = False) -> Changes:
    """The files of `where`'s repository changed since `since` (a commit, branch or tag: from
    the point where HEAD's history left it, as a pull request's diff counts, plus uncommitted
    and untracked files), or staged in the index (`staged`). A ref git does not know, or a
    path outside a repository, is a ConfigError of one line."""
    top = _toplevel(where)
    if staged:
        res = _git(["diff", "--cached", "--name-only", "-z", "--no-renames"], top)
        if res.returncode != 0:
            raise ConfigError(f"git diff --cached: {_first_line(res.stderr)}")
        return Changes(frozenset(_names(res.stdout, top)), "in the git index (staged)")
    assert since is not None
    if not since or since.startswith("-"):
        raise ConfigError(f"--since {since!r}: not a git revision")
    res = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{since}^{{commit}}"], top)
    if res.returncode != 0:
        raise ConfigError(f"--since {since}: no such commit, branch or tag in {top}")
    commit = res.stdout.decode().strip()
    # Where HEAD's history left `since`: what main gained after the branch point is not a
    # change of this branch. Without a common ancestor (a shallow clone), `since` itself.
    base = _git(["merge-base", commit, "HEAD"], top)
    if base.returncode == 0 and base.stdout.strip():
        commit = base.stdout.decode().strip()
    diff = _git(["diff", "--name-only", "-z", "--no-renames", commit, "--"], top)
    if diff.returncode != 0:
        raise ConfigError(f"git diff {since}: {_first_line(diff.stderr)}")
    untracked = _git(["ls-files", "--others", "--exclude-standard", "-z", "--full-name"], top)
    if untracked.returncode != 0:
        raise ConfigError(f"git ls-files: {_first_line(untracked.stderr)}")
    files = _names(diff.stdout, top) | _names(untracked.stdout, top)
    return Changes(frozenset(files), f"since {since}")
