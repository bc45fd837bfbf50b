"""Environment policies (seed 003) and the approvals file: defaults, PGSAFE_ENV, overrides from
pgsafe.toml / pyproject.toml, malformed files named precisely, and how approvals are counted."""

from __future__ import annotations

import hashlib

import pytest

from helpers import pgsafe as run
from pgsafe.errors import ConfigError
from pgsafe.lifecycle.policy import Approvals, evaluate, load_approvals, load_policy


def test_built_in_policies_follow_seed_003(tmp_path, monkeypatch):
    monkeypatch.delenv("PGSAFE_ENV", raising=False)
    local = load_policy(start=tmp_path)
    assert local.name == "local" and local.backup == "off" and local.approvals == 0
    assert not local.confirm_rollback and local.allow_skip_backup
    ci = load_policy("ci", start=tmp_path)
    assert ci.approvals == 0 and ci.timeouts == "recommended"
    staging = load_policy("staging", start=tmp_path)
    assert staging.approvals == 1 and staging.backup == "recommended"
    assert staging.timeouts == "required" and staging.confirm_rollback
    prod = load_policy("production", start=tmp_path)
    assert prod.backup == "required" and prod.max_backup_age_hours == 24
    assert prod.approvals == 2 and not prod.allow_skip_backup and prod.confirm_rollback
    assert prod.long_transaction_s == 30 and prod.slow_migration_s == 300


def test_environment_variable_and_unknown_names(tmp_path, monkeypatch):
    monkeypatch.setenv("PGSAFE_ENV", "staging")
    assert load_policy(start=tmp_path).name == "staging"
    assert load_policy("production", start=tmp_path).name == "production"  # --env wins
    monkeypatch.setenv("PGSAFE_ENV", "prod")
    with pytest.raises(ConfigError, match="PGSAFE_ENV 'prod': unknown environment"):
        load_policy(start=tmp_path)


def test_overrides_from_pgsafe_toml_and_pyproject(tmp_path):
    (tmp_path / "pgsafe.toml").write_text(
        "[policy.production]\napprovals = 3\nmax_backup_age_hours = 6\n"
        "[policy.local]\nlong_transaction_s = 1.5\n"
    )
    prod = load_policy("production", start=tmp_path)
    assert prod.approvals == 3 and prod.max_backup_age_hours == 6
    assert prod.source.endswith("pgsafe.toml") and prod.backup == "required"
    assert load_policy("local", start=tmp_path).long_transaction_s == 1.5
    assert load_policy("staging", start=tmp_path).approvals == 1

    other = tmp_path / "proj"
    (other / "sub").mkdir(parents=True)
    (other / "pyproject.toml").write_text("[tool.pgsafe.policy.ci]\nbackup = 'required'\n")
    assert load_policy("ci", start=other / "sub").backup == "required"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[policy.prod]\napprovals = 1\n", "unknown environment policy.prod"),
        (
            "[policy.production]\napprovers = 1\n",
            "unknown policy setting policy.production.approvers",
        ),
        (
            "[policy.production]\napprovals = 'two'\n",
            "policy.production.approvals must be a number",
        ),
        ("[policy.production]\nbackup = 'maybe'\n", "policy.production.backup must be one of"),
        ("[policy.production]\nconfirm_rollback = 1\n", "must be true or false"),
    ],
)
def test_bad_policy_settings_are_config_errors(tmp_path, text, message):
    (tmp_path / "pgsafe.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_policy("production", start=tmp_path)


SUM = hashlib.sha256(b"x").hexdigest()


def _entry(**kw: str) -> str:
    fields = {
        "migration": "002",
        "rule": "DROP COLUMN",
        "approver": "alice",
        "reason": "unused since v2",
        "date": "2026-11-20",
        "checksum": SUM,
        **kw,
    }
    body = "\n".join(f'{k} = "{v}"' for k, v in fields.items() if v is not None)
    return f"[[approval]]\n{body}\n"


def test_approvals_file_is_parsed_and_checked(tmp_path):
    path = tmp_path / "approvals.toml"
    assert load_approvals(path).entries == [] and not load_approvals(path).exists
    path.write_text(
        _entry() + "[[approval]]\nmigration = '002_x'\nrule = '*'\napprover = 'bob'\n"
        f"reason = 'ok'\ndate = 2026-11-21\nchecksum = '{SUM.upper()}'\nrole = 'PO'\n"
    )
    got = load_approvals(path)
    assert [a.approver for a in got.entries] == ["alice", "bob"]
    assert got.entries[1].date == "2026-11-21" and got.entries[1].checksum == SUM
    assert got.entries[1].role == "PO"

    path.write_text(_entry(reason=None))
    with pytest.raises(ConfigError, match=r"approvals.toml: approval #1: missing reason"):
        load_approvals(path)
    path.write_text(_entry() + _entry(checksum="abc"))
    with pytest.raises(ConfigError, match=r"approval #2: checksum must be the file's SHA-256"):
        load_approvals(path)
    path.write_text(_entry() + 'approver_note = "x"\n')
    with pytest.raises(ConfigError, match="unknown field 'approver_note'"):
        load_approvals(path)
    path.write_text("[[approval]\n")
    with pytest.raises(ConfigError, match=r"approvals\.toml"):
        load_approvals(path)


def test_approvals_count_distinct_people_for_the_current_file(tmp_path):
    path = tmp_path / "approvals.toml"
    other = hashlib.sha256(b"older").hexdigest()
    path.write_text(
        _entry()
        + _entry(approver="Alice")  # the same person twice counts once
        + _entry(approver="carol", rule="ban-drop-column")
        + _entry(approver="dave", checksum=other)  # approved an older version of the file
        + _entry(approver="erin", migration="003")  # another migration
        + _entry(approver="frank", rule="DROP TABLE")  # another change
    )
    approvals = load_approvals(path)
    need = [("002", "002_x", "002_x.up.sql", 3, "DROP COLUMN", {"DROP COLUMN", "ban-drop-column"})]
    (st,) = evaluate(need, {"002": SUM}, approvals, 2)
    assert st.approvers == ["alice", "carol"] and st.satisfied
    assert st.stale == ["dave"]
    (st,) = evaluate(need, {"002": other}, approvals, 2)
    assert st.approvers == ["dave"] and not st.satisfied
    (st,) = evaluate(need, {"002": SUM}, Approvals(path), 1)
    assert st.approvers == [] and not st.satisfied


def test_cli_rejects_unknown_environment(tmp_path):
    res = run("preflight", str(tmp_path), "--env", "prod")
    assert res.returncode == 5 and "invalid choice: 'prod'" in res.stderr
    (tmp_path / "m").mkdir()
    res = run("preflight", str(tmp_path / "m"), env={"PGSAFE_ENV": "qa"}, cwd=tmp_path)
    assert res.returncode == 5
    assert res.stderr.strip() == (
        "pgsafe: error: PGSAFE_ENV 'qa': unknown environment "
        "(one of local, ci, staging, production)"
    )
