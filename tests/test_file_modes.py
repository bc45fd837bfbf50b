"""The log directory and the files pgsafe writes there hold queries, table and host names: like
backups, a directory pgsafe creates is 0700 and a file it creates 0600, whatever the umask lets
through (the default 022 would give 0755 and 0644)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from helpers import pgsafe, write


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_log_dir_event_log_and_reports_are_private(pgsafe_db, tmp_path: Path) -> None:
    migs = write(tmp_path / "m", {"001_t.sql": "CREATE TABLE t (id int PRIMARY KEY);\n"})
    logs = tmp_path / "deep" / "logs"
    old = os.umask(0o022)
    try:
        res = pgsafe(
            "apply", str(migs), "--db", pgsafe_db.dsn, "--apply", "--log-dir", str(logs),
            "--no-backup",
        )  # fmt: skip
        assert res.returncode == 0, (res.stdout, res.stderr)
        pre = pgsafe("preflight", str(migs), "--db", pgsafe_db.dsn, "--log-dir", str(logs))
        assert pre.returncode == 0, (pre.stdout, pre.stderr)
        post = pgsafe("postflight", str(migs), "--db", pgsafe_db.dsn, "--log-dir", str(logs))
        assert post.returncode == 0, (post.stdout, post.stderr)
    finally:
        os.umask(old)
    assert _mode(logs) == 0o700
    files = sorted(p.name for p in logs.iterdir())
    assert "migrations.jsonl" in files
    assert sum(n.startswith("preflight-report-") for n in files) == 2, files
    assert sum(n.startswith("postflight-report-") for n in files) == 2, files
    modes = {p.name: oct(_mode(p)) for p in logs.iterdir()}
    assert set(modes.values()) == {"0o600"}, modes


def test_an_existing_log_dir_keeps_its_mode(pgsafe_db, tmp_path: Path) -> None:
    """A directory the user made (say 0750 for a log shipper's group) is not changed; the files
    pgsafe creates in it are still 0600."""
    migs = write(tmp_path / "m", {"001_t.sql": "CREATE TABLE t (id int PRIMARY KEY);\n"})
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o750)
    os.chmod(logs, 0o750)
    res = pgsafe("preflight", str(migs), "--db", pgsafe_db.dsn, "--log-dir", str(logs))
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert _mode(logs) == 0o750
    [report] = list(logs.glob("preflight-report-*.json"))
    assert _mode(report) == 0o600
