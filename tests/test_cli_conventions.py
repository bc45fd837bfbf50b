"""Command-line conventions a user expects from any tool (issue 19, point 6): `python -m
pgsafe`, a suggestion for a mistyped command or flag, the command's own usage on its errors,
and a quiet end when the reader of the output goes away."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from helpers import cli_env
from helpers import pgsafe as run


def test_python_dash_m_is_the_same_command_line():
    res = subprocess.run(
        [sys.executable, "-m", "pgsafe", "--version"],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("pgsafe ")
    assert res.stdout == run("--version").stdout


def test_mistyped_command_gets_a_suggestion_and_exit_5():
    res = run("aply", "migrations")
    assert res.returncode == 5
    assert "unknown command 'aply' (did you mean 'apply'?)" in res.stderr
    assert "Traceback" not in res.stderr
    # a top-level option with a value before the command is not taken for the command
    res = run("--app-path", "/tmp", "stauts")
    assert res.returncode == 5
    assert "unknown command 'stauts' (did you mean 'status'?)" in res.stderr
    # nothing close: no suggestion, still one line and exit 5
    res = run("zzzzzz")
    assert res.returncode == 5
    assert "unknown command 'zzzzzz'" in res.stderr
    assert "did you mean" not in res.stderr


def test_mistyped_flag_gets_the_commands_usage_and_a_suggestion():
    res = run("apply", "--dbb", "postgresql://u:pw@localhost/x", "migrations")
    assert res.returncode == 5
    assert res.stderr.startswith("usage: pgsafe apply ")
    assert "unrecognized arguments:" in res.stderr
    assert "(did you mean '--db'?)" in res.stderr
    res = run("lint", "--formt", "json", "migrations")
    assert res.returncode == 5
    assert res.stderr.startswith("usage: pgsafe lint ")
    assert "(did you mean '--format'?)" in res.stderr


def test_a_closed_pipe_ends_quietly():
    """`pgsafe rules | head`: the reader is gone before pgsafe writes; no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = subprocess.run(
            [sys.executable, "-m", "pgsafe", "rules"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
            check=False,
        )
    finally:
        os.close(write_end)
    assert res.stderr == ""
    assert res.returncode == 141


def test_every_environment_variable_pgsafe_reads_is_documented():
    """Each PGSAFE_* (and DATABASE_URL) variable the code reads has a row in the README's
    environment table: a new variable without documentation fails here."""
    root = Path(__file__).resolve().parent.parent
    read: set[str] = set()
    for path in (root / "python" / "pgsafe").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value
                plain = name.replace("_", "").isalnum() and name.isupper()
                if name == "DATABASE_URL" or (name.startswith("PGSAFE_") and plain):
                    read.add(name)
    assert "PGSAFE_NO_PROGRESS" in read and "DATABASE_URL" in read
    readme = (root / "README.md").read_text()
    table = readme.split("### Environment variables", 1)[1].split("\n## ", 1)[0]
    missing = sorted(v for v in read if f"`{v}`" not in table)
    assert not missing, f"not in README's environment table: {missing}"


def test_commands_on_a_users_database_refuse_to_run_on_nothing(tmp_path: Path):
    """No --db, DATABASE_URL or PG* variables: a command that reads or writes a user's database
    exits 5 saying how to give one, instead of silently using an empty throwaway server
    (`pgsafe backup` of it exiting 0 would look like a backup)."""
    migs = tmp_path / "migrations"
    migs.mkdir()
    (migs / "001_t.up.sql").write_text("CREATE TABLE t (id int);\n")
    (migs / "001_t.down.sql").write_text("DROP TABLE t;\n")
    commands = [
        ("backup", "--out", str(tmp_path / "backups")),
        ("restore", str(tmp_path / "none.pgsafe")),
        ("status", str(migs)),
        ("rollback", str(migs)),
        ("preflight", str(migs)),
        ("postflight", str(migs)),
        ("locks",),
        ("fingerprint",),
        ("schema", "fingerprint"),
    ]
    for command in commands:
        res = run(*command, cwd=tmp_path)
        assert res.returncode == 5, (command, res.stdout, res.stderr)
        assert "no target database" in res.stderr and "--embedded" in res.stderr, command
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "backups").exists()
    # both targets at once is a usage error too
    res = run("status", str(migs), "--embedded", "--db", "postgresql://u:s3cret@h/x")
    assert res.returncode == 5 and "give one" in res.stderr and "s3cret" not in res.stderr
