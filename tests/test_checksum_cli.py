"""`pgsafe checksum --write | --check`: a manifest that the real `sha256sum -c` and
`shasum -a 256 -c` accept, written atomically, and a check that names every changed, missing
and unlisted file (exit 1) and refuses unreadable input (exit 5)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from helpers import pgsafe, write
from pgsafe.sources import checksums

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


@pytest.fixture
def mig_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, copy)
    (copy / "checksum.txt").unlink(missing_ok=True)
    return copy


def tool(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_write_lists_every_up_and_down_file_in_order(mig_dir: Path) -> None:
    res = pgsafe("checksum", str(mig_dir), "--write")
    assert res.returncode == 0, res.stderr
    assert "6 files" in res.stdout
    lines = (mig_dir / "checksum.txt").read_text().splitlines()
    names = [line.split("  ", 1)[1] for line in lines]
    assert names == [
        "000_baseline.up.sql",
        "000_baseline.down.sql",
        "001_create_job_dlq.up.sql",
        "001_create_job_dlq.down.sql",
        "002_add_heartbeat_column.up.sql",
        "002_add_heartbeat_column.down.sql",
    ]
    expected = tool(["sha256sum", *names], mig_dir).stdout.splitlines()
    assert lines == expected  # byte for byte what sha256sum itself prints


@pytest.mark.parametrize("verifier", [["sha256sum", "-c"], ["shasum", "-a", "256", "-c"]])
def test_manifest_is_accepted_by_the_standard_tools(mig_dir: Path, verifier: list[str]) -> None:
    if shutil.which(verifier[0]) is None:
        pytest.skip(f"{verifier[0]} not installed")
    assert pgsafe("checksum", str(mig_dir), "--write").returncode == 0
    ok = tool([*verifier, "checksum.txt"], mig_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(": OK") == 6
    (mig_dir / "001_create_job_dlq.down.sql").write_text("-- tampered\n")
    bad = tool([*verifier, "checksum.txt"], mig_dir)
    assert bad.returncode == 1
    assert "001_create_job_dlq.down.sql: FAILED" in bad.stdout


def test_check_passes_on_an_untouched_directory(mig_dir: Path) -> None:
    assert pgsafe("checksum", str(mig_dir), "--write").returncode == 0
    res = pgsafe("checksum", str(mig_dir), "--check")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "6 files OK" in res.stdout


def test_check_names_each_changed_missing_and_extra_file(mig_dir: Path) -> None:
    assert pgsafe("checksum", str(mig_dir), "--write").returncode == 0
    (mig_dir / "001_create_job_dlq.up.sql").write_text("DROP TABLE job_dlq;\n")
    (mig_dir / "002_add_heartbeat_column.up.sql").write_bytes(
        (mig_dir / "002_add_heartbeat_column.up.sql").read_bytes() + b" "
    )
    (mig_dir / "000_baseline.down.sql").unlink()
    write(mig_dir, {"003_new.up.sql": "SELECT 1;\n", "003_new.down.sql": "SELECT 1;\n"})
    res = pgsafe("checksum", str(mig_dir), "--check")
    assert res.returncode == 1
    out = res.stdout.splitlines()
    assert "changed: 001_create_job_dlq.up.sql" in out
    assert "changed: 002_add_heartbeat_column.up.sql" in out
    assert "missing: 000_baseline.down.sql" in out
    assert "extra: 003_new.down.sql (not in checksum.txt)" in out
    assert "extra: 003_new.up.sql (not in checksum.txt)" in out
    assert not any("OK" in line for line in out)
    assert "2 changed, 1 missing, 2 not listed" in res.stderr
    # The manifest itself is untouched by a check.
    assert tool(["sha256sum", "-c", "--quiet", "checksum.txt"], mig_dir).returncode == 1


def test_only_a_new_file_fails_the_check(mig_dir: Path) -> None:
    assert pgsafe("checksum", str(mig_dir), "--write").returncode == 0
    write(mig_dir, {"004_sneaky.sql": "DROP TABLE users;\n"})
    res = pgsafe("checksum", str(mig_dir), "--check")
    assert res.returncode == 1
    assert "extra: 004_sneaky.sql (not in checksum.txt)" in res.stdout


def test_default_path_is_migrations_in_the_working_directory(mig_dir: Path) -> None:
    res = pgsafe("checksum", "--write", cwd=mig_dir.parent)
    assert res.returncode == 0, res.stderr
    assert (mig_dir / "checksum.txt").exists()
    assert pgsafe("checksum", "--check", cwd=mig_dir.parent).returncode == 0


def test_write_replaces_atomically_and_keeps_the_mode(mig_dir: Path) -> None:
    manifest = mig_dir / "checksum.txt"
    manifest.write_text("stale\n")
    manifest.chmod(0o640)
    inode = manifest.stat().st_ino
    assert pgsafe("checksum", str(mig_dir), "--write").returncode == 0
    st = manifest.stat()
    assert st.st_ino != inode  # renamed over, never rewritten in place
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert sorted(p.name for p in mig_dir.iterdir() if p.name.startswith(".")) == []
    assert pgsafe("checksum", str(mig_dir), "--check").returncode == 0


def test_new_manifest_follows_the_umask(mig_dir: Path) -> None:
    old = os.umask(0o027)
    try:
        checksums.write_manifest(mig_dir)
    finally:
        os.umask(old)
    assert stat.S_IMODE((mig_dir / "checksum.txt").stat().st_mode) == 0o640


def test_failed_write_leaves_the_old_manifest_and_no_temp_file(
    mig_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checksums.write_manifest(mig_dir)
    before = (mig_dir / "checksum.txt").read_bytes()

    def boom(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checksums.os, "fsync", boom)
    (mig_dir / "001_create_job_dlq.up.sql").write_text("-- changed\n")
    with pytest.raises(checksums.ConfigError, match="No space left on device"):
        checksums.write_manifest(mig_dir)
    assert (mig_dir / "checksum.txt").read_bytes() == before
    assert [p.name for p in mig_dir.iterdir() if p.name.startswith(".")] == []


def test_check_without_a_manifest_is_a_config_error(mig_dir: Path) -> None:
    res = pgsafe("checksum", str(mig_dir), "--check")
    assert res.returncode == 5
    assert "checksum.txt: not found" in res.stderr
    assert "pgsafe checksum --write" in res.stderr


def test_malformed_manifest_line_is_a_config_error_naming_the_line(mig_dir: Path) -> None:
    checksums.write_manifest(mig_dir)
    manifest = mig_dir / "checksum.txt"
    lines = manifest.read_text().splitlines()
    lines.insert(2, "not a checksum line")
    manifest.write_text("\n".join(lines) + "\n")
    res = pgsafe("checksum", str(mig_dir), "--check")
    assert res.returncode == 5
    assert f"{manifest}:3: not a sha256sum line" in res.stderr


def test_unreadable_migration_file_is_a_config_error(mig_dir: Path) -> None:
    checksums.write_manifest(mig_dir)
    # A directory where a listed file was: unreadable even for root.
    target = mig_dir / "001_create_job_dlq.up.sql"
    target.unlink()
    target.mkdir()
    res = pgsafe("checksum", str(mig_dir), "--check")
    assert res.returncode == 5
    assert str(target) in res.stderr


def test_unreadable_manifest_is_a_config_error(mig_dir: Path) -> None:
    (mig_dir / "checksum.txt").mkdir()
    res = pgsafe("checksum", str(mig_dir), "--check")
    assert res.returncode == 5
    assert "checksum.txt: cannot read" in res.stderr


def test_missing_directory_and_bad_names_are_config_errors(tmp_path: Path) -> None:
    res = pgsafe("checksum", str(tmp_path / "nope"), "--write")
    assert res.returncode == 5 and "not found" in res.stderr
    d = write(tmp_path / "m", {"001_a.up.sql": "SELECT 1;\n", "notes.sql": "SELECT 2;\n"})
    res = pgsafe("checksum", str(d), "--write")
    assert res.returncode == 5 and "notes.sql" in res.stderr
    assert not (d / "checksum.txt").exists()


def test_write_or_check_is_required(mig_dir: Path) -> None:
    assert pgsafe("checksum", str(mig_dir)).returncode == 5
    assert pgsafe("checksum", str(mig_dir), "--write", "--check").returncode == 5


def test_binary_mode_lines_from_sha256sum_b_are_accepted(mig_dir: Path) -> None:
    names = [p.name for p in checksums.migration_files(mig_dir)]
    out = tool(["sha256sum", "-b", *names], mig_dir).stdout
    (mig_dir / "checksum.txt").write_text(out)
    res = pgsafe("checksum", str(mig_dir), "--check")
    assert res.returncode == 0, res.stdout + res.stderr


def test_dry_run_write_checksums_covers_every_file(mig_dir: Path) -> None:
    res = pgsafe("dry-run", str(mig_dir), "--write-checksums", "--out", str(mig_dir.parent / "r"))
    assert res.returncode in (0, 1), res.stderr
    assert pgsafe("checksum", str(mig_dir), "--check").returncode == 0
