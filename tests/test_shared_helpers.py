"""The helpers several modules share since the restructuring (issue 12): the one `Check` of
preflight and postflight, the one reader of pgsafe's config table, and the one password masker
naming a target. Pure Python: no server needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgsafe.config import describe_target
from pgsafe.errors import ConfigError, mask_password
from pgsafe.lifecycle.checks import Check
from pgsafe.lifecycle.policy import load_policy
from pgsafe.lint.config import load_config
from pgsafe.pgbin import configured_major, find_config_table


def test_check_writes_each_reports_json() -> None:
    check = Check("ledger", "warn", "2 pending", ["001_a", "002_b"], seconds=0.1234567)
    assert check.to_dict("preflight") == {
        "name": "ledger",
        "status": "warn",
        "summary": "2 pending",
        "evidence": ["001_a", "002_b"],
    }
    assert check.to_dict() == {
        "name": "ledger",
        "status": "warn",
        "message": "2 pending",
        "evidence": ["001_a", "002_b"],
        "seconds": 0.123457,
    }
    assert Check.outcome("x", "1 bad", "all good", []).status == "fail"
    passed = Check.outcome("x", None, "all good", [])
    assert (passed.status, passed.message) == ("pass", "all good")


def test_one_config_table_for_lint_policy_and_the_server_major(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.pgsafe]\npg_version = 14\n[tool.pgsafe.policy.production]\napprovals = 3\n"
    )
    sub = tmp_path / "a"
    sub.mkdir()
    table, source = find_config_table(sub) or ({}, "")
    assert source == str(tmp_path / "pyproject.toml") and table["pg_version"] == 14
    assert load_config(sub).pg_version == 14
    assert load_policy("production", sub).approvals == 3
    (sub / "pgsafe.toml").write_text("pg_version = 16\n")  # the nearer file wins
    assert load_config(sub).pg_version == 16
    assert load_policy("production", sub).approvals != 3


def test_config_table_errors_name_the_file_and_every_unknown_key(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool]\npgsafe = "x"\n')
    with pytest.raises(ConfigError, match=r"pyproject.toml: tool.pgsafe must be a table"):
        find_config_table(tmp_path)
    (tmp_path / "pgsafe.toml").write_bytes(b"pg_version = '\xff'\n")
    with pytest.raises(ConfigError, match=r"pgsafe.toml: "):
        find_config_table(tmp_path)
    (tmp_path / "pgsafe.toml").write_text("[lint]\nenabel = []\ndisabel = []\n")
    with pytest.raises(ConfigError, match="unknown lint setting disabel, enabel"):
        load_config(tmp_path)


def test_configured_major_reads_the_same_table(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PGSAFE_PG_VERSION", raising=False)
    monkeypatch.chdir(tmp_path)
    assert configured_major() is None
    (tmp_path / "pgsafe.toml").write_text("pg_version = 15\n")
    assert configured_major() == 15


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app:pa/ss99word@db.example/prod",
        "postgresql://app:pa?ss99word@/t1?host=/tmp",
        "postgres://app:pa#ss99word@db:5432/prod?sslmode=require",
        "host=h password='a b ss99word' user=u",
        "postgresql://u@h/db?sslpassword=ss99word",
    ],
)
def test_a_target_is_named_without_its_password(dsn: str) -> None:
    label = describe_target(dsn)
    assert "ss99word" not in label and "****" in label, label
    assert "ss99word" not in mask_password(f"could not connect to {dsn}: refused")
    assert describe_target(dsn, "the CLI's label") == "the CLI's label"
    assert describe_target("") == "libpq defaults"
