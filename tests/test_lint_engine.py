"""The lint engine around the rules: suppression comments, configuration, output formats and
the `pgsafe lint` / `pgsafe rules` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgsafe.errors import ConfigError
from pgsafe.lint import RULES, LintConfig, lint_text, load_config
from pgsafe.lint.engine import read_directive
from pgsafe.lint.output import render

PGSAFE = str(Path(sys.executable).parent / "pgsafe")


def rules_of(text: str, config: LintConfig | None = None) -> list[tuple[str, int]]:
    return [(f.rule, f.line) for f in lint_text(text, "m.sql", config).findings]


def only(found: list[tuple[str, int]], *ids: str) -> list[tuple[str, int]]:
    return [f for f in found if f[0] in ids]


def test_statement_suppression_needs_a_reason_and_reports_unused():
    text = (
        "-- pgsafe: ignore ban-drop-table reason: emptied and unused since 2023\n"
        "DROP TABLE old_a;\n"
        "DROP TABLE old_b;\n"
        "/* pgsafe: ignore ban-drop-table */\n"
        "DROP TABLE old_c;\n"
        "-- pgsafe: ignore ban-truncate reason: nothing to truncate here\n"
        "SELECT 1;\n"
    )
    found = rules_of(text)
    assert only(found, "ban-drop-table") == [("ban-drop-table", 3), ("ban-drop-table", 5)]
    assert ("invalid-suppression", 4) in found  # no reason: not honoured, and reported
    assert ("unused-suppression", 6) in found


def test_trailing_suppression_belongs_to_its_own_line():
    text = (
        "ALTER TABLE users DROP COLUMN a; -- pgsafe: ignore ban-drop-column reason: unused\n"
        "ALTER TABLE users DROP COLUMN b;\n"
        "DROP TABLE c; /* pgsafe: ignore ban-drop-table reason: retired */\n"
    )
    found = rules_of(text)
    assert only(found, "ban-drop-column", "ban-drop-table") == [("ban-drop-column", 2)]
    assert not any(r == "unused-suppression" for r, _ in found)


def test_file_wide_suppression_and_unknown_rule():
    text = (
        "-- pgsafe: ignore-file ban-drop-table reason: this migration retires the v1 tables\n"
        "DROP TABLE v1_a;\nDROP TABLE v1_b;\n"
        "-- pgsafe: ignore no-such-rule reason: typo\n"
        "SELECT 1;\n"
    )
    found = rules_of(text)
    assert only(found, "ban-drop-table") == []
    assert ("invalid-suppression", 4) in found


def test_irreversible_marker_and_directory_rule_suppressions_in_a_file():
    """`-- pgsafe: irreversible reason: ...` is read by require-down-migration, not a
    suppression: the engine only checks its reason. Suppressions naming a directory rule are
    never reported unused by the statements (the directory check reads them)."""
    text = (
        "-- pgsafe: irreversible reason: a data fix, undone by hand\n"
        "-- pgsafe: ignore-file migration-naming reason: named by the vendor\n"
        "UPDATE t SET a = 1 WHERE id = 2;\n"
        "/* pgsafe: irreversible */\n"
        "-- pgsafe: irreversible because\n"
        "SELECT 1;\n"
    )
    assert rules_of(text) == [("invalid-suppression", 4), ("invalid-suppression", 5)]
    messages = [f.message for f in lint_text(text, "m.sql").findings]
    assert "an irreversible marker needs a reason" in messages[0]
    assert "cannot read this pgsafe comment" in messages[1]
    assert read_directive("pgsafe: irreversible reason: x") == ("irreversible", [], "x")
    assert read_directive("pgsafe: irreversible") == ("irreversible", [], "")
    assert read_directive("pgsafe: ignore a reason: b") == ("ignore", ["a"], "b")


def test_suppression_inside_a_string_is_not_a_suppression():
    text = "SELECT '-- pgsafe: ignore ban-drop-table reason: no';\nDROP TABLE t;\n"
    assert only(rules_of(text), "ban-drop-table") == [("ban-drop-table", 2)]


def test_syntax_error_is_a_finding_with_position():
    result = lint_text("CREATE TABLE ok (id int);\nALTER TABL x;\n", "bad.sql")
    assert [(f.rule, f.line, f.column) for f in result.findings] == [("syntax-error", 2, 7)]
    assert result.failed


def test_config_from_pyproject_and_pgsafe_toml(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text(
        "[tool.pgsafe]\npg_version = 12\n[tool.pgsafe.lint]\n"
        'disable = ["ban-truncate"]\nseverity = { "ban-drop-table" = "warning" }\n'
    )
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    cfg = load_config(sub)
    assert cfg.pg_version == 12 and cfg.source == str(tmp_path / "pyproject.toml")
    result = lint_text("TRUNCATE t;\nDROP TABLE t;\n", "m.sql", cfg)
    assert [f.severity for f in result.findings if f.rule == "ban-drop-table"] == ["warning"]
    assert not any(f.rule == "ban-truncate" for f in result.findings)
    (sub / "pgsafe.toml").write_text('[lint]\ndisable = ["no-such-rule"]\n')
    with pytest.raises(ConfigError, match="unknown rule 'no-such-rule'"):
        load_config(sub)
    for bad, message in (
        ('pg_version = "fifteen"\n', "pg_version must be"),
        ('lint = "x"\n', "lint must be a table"),
        ('[lint]\ndisable = "ban-drop-column"\n', "must be a list"),
        ('[lint]\ndisabel = ["ban-drop-column"]\n', "unknown lint setting"),
    ):
        (sub / "pgsafe.toml").write_text(bad)
        with pytest.raises(ConfigError, match=message):
            load_config(sub)


def test_json_contract_fields():
    out = json.loads(render(lint_text("DROP TABLE t;\n", "m.sql"), "json"))
    f = next(f for f in out["findings"] if f["rule"] == "ban-drop-table")
    assert set(f) >= {
        "rule",
        "hazards",
        "severity",
        "file",
        "line",
        "column",
        "statement",
        "lock",
        "message",
        "fix",
    }
    assert f["lock"] == "AccessExclusiveLock"
    assert {"deletes-data", "blocks-reads", "blocks-writes"} <= set(f["hazards"])
    assert f["statement"] == "DROP TABLE t"


def test_sarif_2_1_0_shape():
    doc = json.loads(render(lint_text("CREATE INDEX i ON t (a);\n", "m.sql"), "sarif"))
    assert doc["version"] == "2.1.0" and "sarif-2.1.0" in doc["$schema"]
    run = doc["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert "require-concurrent-index" in ids
    res = next(r for r in run["results"] if r["ruleId"] == "require-concurrent-index")
    assert run["tool"]["driver"]["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
    assert res["level"] == "error"
    region = res["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 1, "startColumn": 1}
    assert res["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "m.sql",
        "uriBaseId": "%SRCROOT%",
    }
    odd = json.loads(render(lint_text("DROP TABLE t;\n", "odd dir/a,b%.sql"), "sarif"))
    where = odd["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert where["uri"] == "odd%20dir/a%2Cb%25.sql"


def test_github_annotations():
    out = render(lint_text("\n  DROP TABLE t;\n", "db/m.sql"), "github")
    line = next(x for x in out.splitlines() if "ban-drop-table" in x)
    assert line.startswith("::error file=db/m.sql,line=2,col=3,title=ban-drop-table::")


def run(*args: str, stdin: str | None = None, cwd: Path | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(
        [PGSAFE, *args], input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def test_lint_command_exit_codes_and_stdin(tmp_path: Path):
    safe = tmp_path / "safe.sql"
    safe.write_text("CREATE TABLE IF NOT EXISTS t (id bigint GENERATED ALWAYS AS IDENTITY);\n")
    res = run("lint", str(safe), cwd=tmp_path)
    assert res.returncode == 0, res.stdout
    res = run("lint", "-", "--format", "json", stdin="DROP TABLE accounts;\n", cwd=tmp_path)
    assert res.returncode == 1
    assert any(f["rule"] == "ban-drop-table" for f in json.loads(res.stdout)["findings"])
    res = run("lint", str(tmp_path / "missing.sql"), cwd=tmp_path)
    assert res.returncode == 5 and "no such file" in res.stderr


def test_lint_directory_skips_down_files(tmp_path: Path):
    (tmp_path / "001_a.up.sql").write_text("CREATE TABLE IF NOT EXISTS a (id bigint);\n")
    (tmp_path / "001_a.down.sql").write_text("DROP TABLE a;\n")
    res = run("lint", str(tmp_path), "--format", "json", cwd=tmp_path)
    files = {f["file"] for f in json.loads(res.stdout)["findings"]}
    assert not any(f.endswith(".down.sql") for f in files)
    res = run("lint", str(tmp_path / "001_a.down.sql"), "--format", "json", cwd=tmp_path)
    assert any(f["rule"] == "ban-drop-table" for f in json.loads(res.stdout)["findings"])


def test_rules_command():
    res = run("rules")
    assert res.returncode == 0
    assert len(res.stdout.splitlines()) == len(RULES)
    res = run("rules", "require-concurrent-index")
    assert res.returncode == 0
    assert "ShareLock" in res.stdout and "CONCURRENTLY" in res.stdout
    assert "pgsafe: ignore require-concurrent-index reason:" in res.stdout
    assert run("rules", "nope").returncode == 5


def test_every_rule_is_documented_completely():
    for r in RULES.values():
        assert r.summary and r.why and r.fix, r.id
        assert r.id == r.id.lower() and " " not in r.id
