"""Every command, walked through each exit code it can give (README, "Exit codes"; DESIGN.md):
0 ok, 1 unsafe, 2 migration/backup failed, 3 postflight failed, 4 rollback/restore failed,
5 config or usage. One function decides the code of an error (pgsafe.errors.exit_code), so the
process status, the `pgsafe: error:` line and apply's JSON report agree, and the same bad input
gets the same code in every command."""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import pgsafe, write
from pgsafe.backup import core as bk
from pgsafe.cli.main import build_parser
from pgsafe.server import TemporaryDatabase

TABLE = {
    "001_items.up.sql": "CREATE TABLE items (id bigint PRIMARY KEY, qty bigint);\n",
    "001_items.down.sql": "DROP TABLE items;\n",
}
BAD_DSN = "postgresql://nobody@127.0.0.1:1/none"

# Each command and the codes this module makes it give; test_every_command_is_walked keeps the
# list complete when a command is added.
WALKED: dict[str, set[int]] = {}


def walked(command: str, code: int, res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode == code, (command, code, res.stdout[-2000:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    if code == 5:  # config or usage: one `pgsafe: error:` line says what (after any usage)
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("pgsafe: error:")]
        assert len(errors) == 1, (command, res.stderr)
    WALKED.setdefault(command, set()).add(code)


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return pgsafe(*args, cwd=cwd, timeout=180)


def apply(db: TemporaryDatabase, migs: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("apply", str(migs), "--db", db.dsn, "--log-dir", "", *extra)


def change(migs: Path) -> None:
    path = migs / "001_items.up.sql"
    path.write_text(path.read_text() + "-- edited after it was applied\n")


@pytest.fixture
def items(pgsafe_db: TemporaryDatabase, tmp_path: Path) -> TemporaryDatabase:
    migs = write(tmp_path / "items", TABLE)
    assert apply(pgsafe_db, migs, "--apply").returncode == 0
    with pgsafe_db.connect(application_name="pgsafe-test") as conn:
        conn.execute("INSERT INTO items SELECT g, g FROM generate_series(1, 500) g")
    return pgsafe_db


def test_lint_and_dry_run(tmp_path: Path) -> None:
    good = write(
        tmp_path / "good",
        {
            "001_a.up.sql": "CREATE TABLE a (id bigint PRIMARY KEY);\n",
            "001_a.down.sql": "DROP TABLE a;\n",
        },
    )
    bad = write(tmp_path / "bad", {"001_a.sql": "ALTER TABLE a ADD COLUMN c bigint NOT NULL;\n"})
    for command, extra in (("lint", []), ("dry-run", ["--no-trace"])):
        walked(command, 0, cli(command, str(good), *extra))
        walked(command, 1, cli(command, str(bad), *extra))
        walked(command, 5, cli(command, str(tmp_path / "missing"), *extra))


def test_fix(tmp_path: Path) -> None:
    """pgsafe fix: 0 when nothing unsafe is left, 1 when a statement cannot be fixed, 5 on bad
    input."""
    fixable = write(tmp_path / "fixable", {"001_a.sql": "CREATE INDEX i ON a (c);\n"})
    walked("fix", 0, cli("fix", str(fixable)))
    unfixable = write(
        tmp_path / "unfixable", {"001_a.sql": "ALTER TABLE a ALTER COLUMN c TYPE text;\n"}
    )
    walked("fix", 1, cli("fix", str(unfixable)))
    walked("fix", 5, cli("fix", str(tmp_path / "missing")))


def test_apply_preflight_status_repair(pgsafe_db: TemporaryDatabase, tmp_path: Path) -> None:
    migs = write(tmp_path / "m", TABLE)
    walked("apply", 0, apply(pgsafe_db, migs))  # the plan
    walked("status", 0, cli("status", str(migs), "--db", pgsafe_db.dsn))
    walked("preflight", 0, cli("preflight", str(migs), "--db", pgsafe_db.dsn, "--log-dir", ""))
    walked("apply", 0, apply(pgsafe_db, migs, "--apply"))
    walked("apply", 5, apply(pgsafe_db, migs, "--apply", "--lock-timeout", "0"))
    walked("status", 5, cli("status", str(tmp_path / "missing"), "--db", pgsafe_db.dsn))
    walked("preflight", 5, cli("preflight", str(migs), "--db", pgsafe_db.dsn, "--env", "moon"))
    walked("repair", 5, cli("repair", "009", str(migs), "--db", pgsafe_db.dsn, "--rebaseline",
                            "--reason", "none"))  # fmt: skip

    # A changed applied file: unsafe (1) in status, preflight and apply alike.
    change(migs)
    write(migs, {"002_more.sql": "ALTER TABLE items ADD COLUMN note text;\n"})
    status = cli("status", str(migs), "--db", pgsafe_db.dsn, "--json")
    walked("status", 1, status)
    assert json.loads(status.stdout)["changed"] == 1 and "001_items changed" in status.stderr
    walked("preflight", 1, cli("preflight", str(migs), "--db", pgsafe_db.dsn, "--log-dir", ""))
    walked("apply", 1, apply(pgsafe_db, migs, "--apply"))
    # The case: --force --format json used to report 2 while the process exited 1.
    forced = apply(pgsafe_db, migs, "--apply", "--force", "--format", "json")
    walked("apply", 1, forced)
    doc = json.loads(forced.stdout)
    assert doc["exit_code"] == forced.returncode == 1, doc
    text = apply(pgsafe_db, migs, "--apply", "--force")
    assert text.returncode == 1 and "stopped (exit 1)" in text.stdout, text.stdout
    walked("repair", 0, cli("repair", "001", str(migs), "--db", pgsafe_db.dsn, "--rebaseline",
                            "--reason", "reviewed"))  # fmt: skip

    # A migration that fails: 2, in the JSON report too.
    write(migs, {"003_broken.sql": "ALTER TABLE nowhere ADD COLUMN x int;\n"})
    broken = apply(pgsafe_db, migs, "--apply", "--format", "json")
    walked("apply", 2, broken)
    assert json.loads(broken.stdout)["exit_code"] == 2


def test_apply_and_postflight_failing_postflight(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    migs = write(
        tmp_path / "m",
        {
            "001_items.sql": "CREATE TABLE items (id bigint PRIMARY KEY, qty bigint);\n"
            "INSERT INTO items VALUES (1, -5);\n",
            "002_check.sql": "ALTER TABLE items ADD CONSTRAINT qty_positive CHECK (qty > 0) "
            "NOT VALID;\n",
        },
    )
    walked("postflight", 5, cli("postflight", str(migs), "--db", pgsafe_db.dsn, "--timeout", "0"))
    res = apply(pgsafe_db, migs, "--apply", "--to", "001")
    walked("apply", 0, res)
    walked("postflight", 0, cli("postflight", str(migs), "--db", pgsafe_db.dsn, "--log-dir", ""))
    res = apply(pgsafe_db, migs, "--apply", "--format", "json")
    walked("apply", 3, res)
    assert json.loads(res.stdout)["exit_code"] == 3
    walked("postflight", 3, cli("postflight", str(migs), "--db", pgsafe_db.dsn, "--log-dir", ""))


def test_rollback(pgsafe_db: TemporaryDatabase, tmp_path: Path) -> None:
    migs = write(tmp_path / "m", TABLE)
    assert apply(pgsafe_db, migs, "--apply").returncode == 0
    rollback = ("rollback", str(migs), "--db", pgsafe_db.dsn, "--log-dir", "")
    walked("rollback", 0, cli(*rollback))  # the plan
    walked("rollback", 5, cli(*rollback, "--steps", "0"))
    write(migs, {"002_idx.sql": "CREATE INDEX items_qty ON items (qty);\n"})
    assert apply(pgsafe_db, migs, "--apply").returncode == 0
    walked("rollback", 4, cli(*rollback, "--apply"))  # 002 has no down file: irreversible


def test_locks(pgsafe_db: TemporaryDatabase, tmp_path: Path) -> None:
    migs = write(tmp_path / "m", TABLE)
    assert apply(pgsafe_db, migs, "--apply", "--to", "001").returncode == 0
    write(migs, {"002_qty.sql": "ALTER TABLE items ALTER COLUMN qty SET NOT NULL;\n"})
    walked("locks", 0, cli("locks", str(migs), "--db", pgsafe_db.dsn))
    walked("locks", 5, cli("locks", str(migs), "--db", pgsafe_db.dsn, "--long-tx", "soon"))
    walked("locks", 5, cli("locks", "--db", pgsafe_db.dsn, "--tables", "a b"))


def test_locks_blocked(items: TemporaryDatabase) -> None:
    holder = items.connect(application_name="app-holder")
    waiter = items.connect(application_name="app-waiter")
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE items IN SHARE MODE")
    t = threading.Thread(target=waiter.execute, args=("UPDATE items SET qty = 1",))
    t.start()
    try:
        time.sleep(0.3)
        res = cli("locks", "--db", items.dsn, "--tables", "items")
        walked("locks", 1, res)
        assert f"pid {waiter.backend_pid}" in res.stdout
    finally:
        holder.execute("COMMIT")
        t.join(10)
        holder.close()
        waiter.close()


def test_checksum_fingerprint_schema(items: TemporaryDatabase, tmp_path: Path) -> None:
    migs = tmp_path / "items"
    walked("checksum", 0, cli("checksum", str(migs), "--write"))
    walked("checksum", 0, cli("checksum", str(migs), "--check"))
    change(migs)
    walked("checksum", 1, cli("checksum", str(migs), "--check"))
    walked("checksum", 5, cli("checksum", str(tmp_path / "missing"), "--check"))

    walked("fingerprint", 0, cli("fingerprint", "--db", items.dsn))
    # The same bad names get the same code (5) wherever a command takes --tables.
    for bad in ("a b", "x.y.z.w", '"open'):
        for command in ("fingerprint", "backup", "locks"):
            walked(command, 5, cli(command, "--db", items.dsn, "--tables", bad, cwd=tmp_path))
    walked("fingerprint", 5, cli("fingerprint", "--db", items.dsn, "--tables", "nosuch"))
    walked("backup", 5, cli("backup", "--db", items.dsn, "--tables", "nosuch", cwd=tmp_path))

    saved = tmp_path / "fp.json"
    res = cli("schema", "fingerprint", "--db", items.dsn, "--json")
    walked("schema fingerprint", 0, res)
    saved.write_text(res.stdout)
    walked("schema fingerprint", 5, cli("schema", "fingerprint", "--db", BAD_DSN))
    walked("schema diff", 0, cli("schema", "diff", str(saved), items.dsn))
    with items.connect(application_name="pgsafe-test") as conn:
        conn.execute("CREATE TABLE extra (id bigint)")
    walked("schema diff", 1, cli("schema", "diff", str(saved), items.dsn))
    walked("schema diff", 5, cli("schema", "diff", str(tmp_path / "missing.json"), items.dsn))


def test_backup_restore_verify(
    items: TemporaryDatabase, target: TemporaryDatabase, tmp_path: Path
) -> None:
    out = tmp_path / "bk"
    walked("backup", 0, cli("backup", "--db", items.dsn, "--out", str(out), "--json"))
    [file] = out.glob("backup-*.sql.zst")
    walked("backup", 5, cli("backup", "--db", items.dsn, "--max-age", "7", "--out", str(out)))
    # A role that may not read what it backs up: the backup fails (2).
    items.server.execute("DROP ROLE IF EXISTS exit_codes_noread")
    items.server.execute("CREATE ROLE exit_codes_noread LOGIN")
    noread = items.dsn.replace(f"user={items.server.user}", "user=exit_codes_noread")
    assert noread != items.dsn
    walked("backup", 2, cli("backup", "--db", noread, "--out", str(out)))

    walked("verify-backup", 0, cli("verify-backup", str(file)))
    walked("verify-backup", 5, cli("verify-backup", str(tmp_path / "missing.sql.zst")))
    walked("restore", 5, cli("restore", str(tmp_path / "missing.sql.zst"), "--db", target.dsn))
    walked("restore", 1, cli("restore", str(file), "--db", items.dsn))  # not empty: refused

    doc = json.loads(bk.manifest_path(file).read_text())
    chunk = next(c for c in doc["chunks"] if c["kind"] == "data")
    with file.open("r+b") as f:
        f.seek(chunk["offset"] + 3)
        byte = f.read(1)
        f.seek(chunk["offset"] + 3)
        f.write(bytes([byte[0] ^ 1]))
    walked("verify-backup", 2, cli("verify-backup", str(file)))
    walked("restore", 4, cli("restore", str(file), "--db", target.dsn))
    with file.open("r+b") as f:
        f.seek(chunk["offset"] + 3)
        f.write(byte)
    walked("restore", 0, cli("restore", str(file), "--db", target.dsn))


def test_rules() -> None:
    walked("rules", 0, cli("rules"))
    walked("rules", 5, cli("rules", "no-such-rule"))


def test_pgsafe_test(tmp_path: Path) -> None:
    good = write(tmp_path / "good", TABLE)
    walked("test", 0, cli("test", str(good)))
    bad = write(tmp_path / "bad", {**TABLE, "001_items.down.sql": "SELECT 1;\n"})
    walked("test", 1, cli("test", str(bad)))
    walked("test", 5, cli("test", str(tmp_path / "missing")))


# What each command can give, as its help and the README document it.
EXPECTED = {
    "lint": {0, 1, 5},
    "fix": {0, 1, 5},
    "dry-run": {0, 1, 5},
    "preflight": {0, 1, 5},
    "backup": {0, 2, 5},
    "restore": {0, 1, 4, 5},
    "verify-backup": {0, 2, 5},
    "apply": {0, 1, 2, 3, 5},
    "postflight": {0, 3, 5},
    "rollback": {0, 4, 5},
    "status": {0, 1, 5},
    "repair": {0, 5},
    "locks": {0, 1, 5},
    "test": {0, 1, 5},
    "checksum": {0, 1, 5},
    "fingerprint": {0, 5},
    "schema fingerprint": {0, 5},
    "schema diff": {0, 1, 5},
    "rules": {0, 5},
}


def test_every_command_is_walked() -> None:
    """Runs last in this module (pytest keeps file order): every command of the CLI was walked
    through each code it documents."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = set()
    for name, p in sub.choices.items():
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        commands |= {f"{name} {n}" for n in nested[0].choices} if nested else {name}
    assert commands == set(EXPECTED), commands ^ set(EXPECTED)
    if len(WALKED) < len(EXPECTED):
        pytest.skip("run with the whole module: the other tests walk the commands")
    assert WALKED == EXPECTED
