"""The gate in every pull request (issue 17, parts 2-5): `pgsafe lint --since/--staged`, the
GitLab and Markdown outputs, seed 002's file checks (require-down-migration, migration-naming),
the GitHub Action (action.yml: its steps' scripts run here as the runner runs them, against a
fake GitHub API for the comment) and the pre-commit hook (.pre-commit-hooks.yaml's entry)."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import cli_env, pgsafe, write
from pgsafe import _core
from pgsafe.lint import RULES, LintConfig, lint_paths
from pgsafe.lint.output import gitlab, markdown, render
from pgsafe.sources.git import changed_files

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

UNSAFE = "ALTER TABLE accounts ADD COLUMN plan text NOT NULL;\n"
SAFE_UP = "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY);\n"
SAFE_DOWN = "DROP TABLE IF EXISTS accounts;\n"


def git(repo: Path, *args: str) -> str:
    res = subprocess.run(
        ["git", "-c", "user.email=gate@example.com", "-c", "user.name=gate", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout.strip()


def repo_with_main(tmp_path: Path) -> Path:
    """A git repository whose main branch holds migrations 001 (a pair) and 002 (an unsafe
    lone file, irreversible on purpose), then a branch `feature` checked out."""
    repo = tmp_path / "repo"
    write(
        repo / "migrations",
        {
            "001_accounts.up.sql": SAFE_UP,
            "001_accounts.down.sql": SAFE_DOWN,
            "002_plan.sql": "-- pgsafe: irreversible reason: backfilled by hand\n" + UNSAFE,
        },
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "main")
    git(repo, "checkout", "-qb", "feature")
    return repo


def findings(res: subprocess.CompletedProcess[str]) -> set[tuple[str, str]]:
    return {(Path(f["file"]).name, f["rule"]) for f in json.loads(res.stdout)["findings"]}


# -- lint --since / --staged ------------------------------------------------------------------


def test_since_reports_only_what_the_branch_changed(tmp_path: Path) -> None:
    repo = repo_with_main(tmp_path)
    # Unchanged 002 has an error: not reported. A committed 003, an edited 001 and an untracked
    # 004 are.
    write(repo / "migrations", {"003_drop.up.sql": "DROP TABLE accounts;\n"})
    write(repo / "migrations", {"003_drop.down.sql": SAFE_UP})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "003")
    (repo / "migrations" / "001_accounts.up.sql").write_text(SAFE_UP + "CREATE INDEX i ON t (a);\n")
    write(repo / "migrations", {"004_more.up.sql": UNSAFE, "004_more.down.sql": "SELECT 1;\n"})

    res = pgsafe("lint", "migrations", "--since", "main", "--format", "json", cwd=repo)
    assert res.returncode == 1, res.stderr
    got = findings(res)
    assert {f for f, _ in got} == {"001_accounts.up.sql", "003_drop.up.sql", "004_more.up.sql"}
    assert ("003_drop.up.sql", "ban-drop-table") in got
    assert ("004_more.up.sql", "adding-required-field") in got
    assert ("001_accounts.up.sql", "require-concurrent-index") in got
    assert not any(f == "002_plan.sql" for f, _ in got)

    # The whole directory, for comparison: 002's finding is there.
    res = pgsafe("lint", "migrations", "--format", "json", cwd=repo)
    assert ("002_plan.sql", "adding-required-field") in findings(res)


def test_since_counts_from_where_the_branch_left(tmp_path: Path) -> None:
    """What main gained after the branch point is not this branch's change."""
    repo = repo_with_main(tmp_path)
    git(repo, "checkout", "-q", "main")
    write(repo / "migrations", {"003_main.up.sql": UNSAFE, "003_main.down.sql": SAFE_DOWN})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "main moves on")
    git(repo, "checkout", "-q", "feature")
    res = pgsafe("lint", "migrations", "--since", "main", cwd=repo)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "migrations: no migration changed since main; nothing to lint"


def test_nothing_changed_passes_in_every_format(tmp_path: Path) -> None:
    repo = repo_with_main(tmp_path)
    (repo / "README").write_text("not a migration\n")  # a change outside PATH
    res = pgsafe("lint", "migrations", "--since", "HEAD", cwd=repo)
    assert (res.returncode, res.stdout.count("\n")) == (0, 1)
    assert "no migration changed since HEAD" in res.stdout
    res = pgsafe("lint", "migrations", "--since", "HEAD", "--format", "json", cwd=repo)
    assert res.returncode == 0 and json.loads(res.stdout) == {"findings": []}
    assert "no migration changed" in res.stderr
    res = pgsafe("lint", "migrations", "--since", "HEAD", "--format", "gitlab", cwd=repo)
    assert res.returncode == 0 and json.loads(res.stdout) == []


def test_since_bad_input_is_one_line_exit_5(tmp_path: Path) -> None:
    repo = repo_with_main(tmp_path)
    res = pgsafe("lint", "migrations", "--since", "no-such-branch", cwd=repo)
    assert res.returncode == 5
    assert res.stderr.strip().splitlines() == [
        f"pgsafe: error: --since no-such-branch: no such commit, branch or tag in {repo.resolve()}"
    ]
    res = pgsafe("lint", "migrations", "--since", "--output=x", cwd=repo)
    assert res.returncode == 5 and "Traceback" not in res.stderr
    res = pgsafe("lint", "migrations", "--since", "main", "--staged", cwd=repo)
    assert res.returncode == 5  # one or the other
    plain = write(tmp_path / "plain" / "migrations", {"001_a.sql": SAFE_UP}).parent
    res = pgsafe("lint", "migrations", "--since", "main", cwd=plain)
    assert res.returncode == 5
    assert "not in a git repository" in res.stderr and len(res.stderr.splitlines()) == 1


def test_since_on_a_path_without_migrations_stays_an_error(tmp_path: Path) -> None:
    repo = repo_with_main(tmp_path)
    write(repo / "docs", {"notes.txt": "nothing here\n"})
    res = pgsafe("lint", "docs", "--since", "main", cwd=repo)
    assert res.returncode == 5, res.stdout
    assert "no migration pgsafe can read" in res.stderr


def test_staged_reports_the_index_only(tmp_path: Path) -> None:
    repo = repo_with_main(tmp_path)
    write(repo / "migrations", {"003_a.up.sql": UNSAFE, "004_b.up.sql": "DROP TABLE accounts;\n"})
    git(repo, "add", "migrations/003_a.up.sql")
    res = pgsafe("lint", "migrations", "--staged", "--format", "json", cwd=repo)
    assert res.returncode == 1
    assert findings(res) == {
        ("003_a.up.sql", "adding-required-field"),
        ("003_a.up.sql", "require-down-migration"),
    }
    # Deleting a down file is a change to its migration: the up now has no down.
    git(repo, "reset", "-q")
    (repo / "migrations" / "004_b.up.sql").unlink()
    (repo / "migrations" / "003_a.up.sql").unlink()
    git(repo, "rm", "-q", "migrations/001_accounts.down.sql")
    res = pgsafe("lint", "migrations", "--staged", "--format", "json", cwd=repo)
    assert findings(res) == {("001_accounts.up.sql", "require-down-migration")}
    git(repo, "reset", "-q", "--hard")
    res = pgsafe("lint", "migrations", "--staged", cwd=repo)
    assert (res.returncode, res.stdout.strip()) == (
        0,
        "migrations: no migration changed in the git index (staged); nothing to lint",
    )


def test_staged_alembic_revision(tmp_path: Path) -> None:
    """An Alembic project: the staged revision file's findings, not the others'."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "alembic_project", repo / "proj")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "alembic")
    res = pgsafe("lint", "proj", "--staged", cwd=repo)
    assert (res.returncode, "nothing to lint" in res.stdout) == (0, True), res.stderr
    revision = repo / "proj" / "versions" / "0003_rls_policies.py"
    revision.write_text(revision.read_text() + "\n# reviewed\n")
    git(repo, "add", "proj/versions/0003_rls_policies.py")
    res = pgsafe("lint", "proj", "--staged", "--format", "json", cwd=repo)
    whole = pgsafe("lint", "proj", "--format", "json", cwd=repo)
    files = {Path(f["file"]).name for f in json.loads(whole.stdout)["findings"]}
    assert len(files) > 1 and "0003_rls_policies.py" in files
    assert {Path(f["file"]).name for f in json.loads(res.stdout)["findings"]} == {
        "0003_rls_policies.py"
    }


def test_untouched_files_are_read_but_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files before a changed one are linted as its context; their findings (even a
    syntax error) are not this change's."""
    repo = repo_with_main(tmp_path)
    (repo / "migrations" / "002_plan.sql").write_text("-- pgsafe: irreversible reason: x\nSELEC;\n")
    git(repo, "commit", "-qam", "broken 002 on the branch's base")
    base = git(repo, "rev-parse", "HEAD")
    write(repo / "migrations", {"003_ok.up.sql": SAFE_UP, "003_ok.down.sql": SAFE_DOWN})
    monkeypatch.chdir(repo)
    changes = changed_files(Path("migrations"), since=base)
    result = lint_paths(["migrations"], LintConfig(), changes)
    assert [Path(f).name for f in result.files] == ["003_ok.up.sql"]
    assert result.findings == []


# -- outputs: GitLab Code Quality and Markdown ------------------------------------------------


def _lint(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(directory.parent)
    return lint_paths([directory.name], LintConfig())


def test_gitlab_code_quality(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    migs = write(
        tmp_path / "migrations",
        {
            "001_a.up.sql": "DROP TABLE a;\nDROP TABLE a;\nCREATE INDEX i ON t (c);\n",
            "001_a.down.sql": SAFE_UP,
            "002_b.sql": "-- pgsafe: irreversible reason: x\nSELEC 1;\n",
            "003_c.up.sql": "-- pgsafe: ignore ban-drop-table reason: nothing there\nSELECT 1;\n",
            "003_c.down.sql": "SELECT 1;\n",
        },
    )
    issues = gitlab(_lint(migs, monkeypatch))
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for issue in issues:
        assert set(issue) >= {"description", "check_name", "fingerprint", "severity", "location"}
        by_rule.setdefault(issue["check_name"], []).append(issue)
    assert {i["location"]["path"] for i in issues} == {
        "migrations/001_a.up.sql",
        "migrations/002_b.sql",
        "migrations/003_c.up.sql",
    }
    assert [i["severity"] for i in by_rule["ban-drop-table"]] == ["critical", "critical"]
    assert by_rule["require-concurrent-index"][0]["severity"] == "major"
    assert by_rule["syntax-error"][0]["severity"] == "blocker"
    assert by_rule["unused-suppression"][0]["severity"] == "info"
    assert [i["location"]["lines"]["begin"] for i in by_rule["ban-drop-table"]] == [1, 2]
    assert "Fix: " in by_rule["ban-drop-table"][0]["description"]
    prints = [i["fingerprint"] for i in issues]
    assert len(set(prints)) == len(prints), "two equal statements need two fingerprints"

    # Lines move (a comment on top): every fingerprint stays.
    up = migs / "001_a.up.sql"
    up.write_text("-- a header\n\n" + up.read_text())
    moved = gitlab(_lint(migs, monkeypatch))
    assert sorted(i["fingerprint"] for i in moved) == sorted(prints)
    drops = [i["location"]["lines"]["begin"] for i in moved if i["check_name"] == "ban-drop-table"]
    assert drops == [3, 4]
    assert json.loads(render(_lint(migs, monkeypatch), "gitlab")) == moved


def test_markdown_for_a_pull_request_comment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migs = write(
        tmp_path / "migrations",
        {
            "001_ok.up.sql": SAFE_UP,
            "001_ok.down.sql": SAFE_DOWN,
            "002_col.up.sql": 'ALTER TABLE accounts ADD COLUMN "a`b|c" int NOT NULL;\n',
            "002_col.down.sql": "SELECT 1;\n",
        },
    )
    text = markdown(_lint(migs, monkeypatch))
    lines = text.splitlines()
    assert lines[0] == "### pgsafe lint failed"
    assert "2 migration file(s): " in text
    table = [ln for ln in lines if ln.startswith("| ")]
    assert table[0] == "| migration | result | errors | warnings | strongest lock |"
    assert table[1].startswith("| `migrations/001_ok.up.sql` | ✅ passed | 0 | 0 |")
    assert table[2].startswith("| `migrations/002_col.up.sql` | ❌ failed | 1 |")
    assert table[2].endswith("| `AccessExclusiveLock` |")
    # Per migration: the finding, its lock, the fix, and the statement in a fence that the
    # statement's own backticks cannot close.
    assert "#### `migrations/002_col.up.sql`" in lines
    assert "#### `migrations/001_ok.up.sql`" not in lines
    at = lines.index("#### `migrations/002_col.up.sql`")
    section = "\n".join(lines[at:])
    assert "**error** `adding-required-field` at line 1" in section
    assert "  - Lock: `AccessExclusiveLock`: blocks reads and writes" in section
    assert "  - Fix: " in section
    assert "<details><summary>statement</summary>" in section
    assert "  ```sql" in section and 'ADD COLUMN "a`b|c" int NOT NULL' in section
    # No finding: a passed verdict, the table still lists what was checked.
    (migs / "002_col.up.sql").write_text(SAFE_UP)
    clean = markdown(_lint(migs, monkeypatch))
    assert clean.startswith("### pgsafe lint passed\n") and "####" not in clean


def test_lint_cli_formats(tmp_path: Path) -> None:
    write(tmp_path / "migrations", {"001_a.up.sql": "DROP TABLE a;\n", "001_a.down.sql": SAFE_UP})
    res = pgsafe("lint", "migrations", "--format", "gitlab", cwd=tmp_path)
    assert res.returncode == 1
    assert [i["check_name"] for i in json.loads(res.stdout)] == ["ban-drop-table"]
    res = pgsafe("lint", "migrations", "--format", "markdown", cwd=tmp_path)
    assert res.returncode == 1 and res.stdout.startswith("### pgsafe lint failed")


# -- seed 002's file checks -------------------------------------------------------------------


def _pyproject(directory: Path, body: str) -> None:
    (directory / "pyproject.toml").write_text(f"[tool.pgsafe]\n{body}")


def test_pairs_and_names_in_a_mixed_directory(tmp_path: Path) -> None:
    """Historical migrations without downs (older than irreversible_before), pairs, a lone file
    marked irreversible, a lone file without a marker, a down without its up, a down named
    differently, and names breaking the convention."""
    _pyproject(tmp_path, 'irreversible_before = "004"\nnaming = "^[0-9]{3}_[a-z0-9_]+$"\n')
    write(
        tmp_path / "migrations",
        {
            "001_init.sql": SAFE_UP,
            "002_seed.sql": "SELECT 1;\n",
            "003_more.up.sql": "SELECT 1;\n",
            "004_pair.up.sql": "SELECT 1;\n",
            "004_pair.down.sql": "SELECT 1;\n",
            "005_backfill.sql": "-- pgsafe: irreversible reason: a data fix, undone by hand\n"
            "SELECT 1;\n",
            "006_nodown.up.sql": "SELECT 1;\n",
            "007_orphan.down.sql": "SELECT 1;\n",
            "008_left.up.sql": "SELECT 1;\n",
            "008_right.down.sql": "SELECT 1;\n",
            "009_AddThing.up.sql": "SELECT 1;\n",
            "009_AddThing.down.sql": "SELECT 1;\n",
            "010_empty.up.sql": "SELECT 1;\n",
            "010_empty.down.sql": "-- nothing to undo\n",
            "1_short.up.sql": "SELECT 1;\n",
            "1_short.down.sql": "SELECT 1;\n",
            "cleanup.sql": "SELECT 1;\n",
        },
    )
    res = pgsafe("lint", "migrations", "--format", "json", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    got = {
        (Path(f["file"]).name, f["rule"], f["severity"])
        for f in json.loads(res.stdout)["findings"]
        if f["rule"] in ("require-down-migration", "migration-naming")
    }
    assert got == {
        ("006_nodown.up.sql", "require-down-migration", "error"),
        ("007_orphan.down.sql", "require-down-migration", "error"),
        ("008_right.down.sql", "require-down-migration", "error"),
        ("010_empty.up.sql", "require-down-migration", "error"),
        ("009_AddThing.up.sql", "migration-naming", "error"),
        ("009_AddThing.down.sql", "migration-naming", "error"),
        ("1_short.up.sql", "migration-naming", "error"),
        ("1_short.down.sql", "migration-naming", "error"),
        ("cleanup.sql", "migration-naming", "error"),
    }
    messages = {Path(f["file"]).name: f["message"] for f in json.loads(res.stdout)["findings"]}
    assert "006_nodown has no down migration (006_nodown.down.sql)" in messages["006_nodown.up.sql"]
    assert "does not match the naming convention" in messages["009_AddThing.up.sql"]
    assert "`pgsafe apply` refuses the directory" in messages["cleanup.sql"]

    # A file named alone is not a directory: no pair or name checks.
    res = pgsafe("lint", "migrations/006_nodown.up.sql", "--format", "json", cwd=tmp_path)
    assert (res.returncode, json.loads(res.stdout)["findings"]) == (0, [])


def test_irreversible_marker_needs_a_reason(tmp_path: Path) -> None:
    write(
        tmp_path / "migrations",
        {"001_a.sql": "-- pgsafe: irreversible\nSELECT 1;\n", "002_b.sql": "SELECT 1;\n"},
    )
    res = pgsafe("lint", "migrations", "--format", "json", cwd=tmp_path)
    got = {(Path(f["file"]).name, f["rule"], f["line"]) for f in json.loads(res.stdout)["findings"]}
    assert got == {
        ("001_a.sql", "invalid-suppression", 1),
        ("001_a.sql", "require-down-migration", 1),
        ("002_b.sql", "require-down-migration", 1),
    }


def test_file_checks_follow_the_config(tmp_path: Path) -> None:
    write(tmp_path / "migrations", {"001_a.sql": "SELECT 1;\n"})
    _pyproject(
        tmp_path, '[tool.pgsafe.lint]\nseverity = { "require-down-migration" = "warning" }\n'
    )
    res = pgsafe("lint", "migrations", "--format", "json", cwd=tmp_path)
    assert res.returncode == 0
    assert [f["severity"] for f in json.loads(res.stdout)["findings"]] == ["warning"]
    _pyproject(tmp_path, '[tool.pgsafe.lint]\ndisable = ["require-down-migration"]\n')
    res = pgsafe("lint", "migrations", "--format", "json", cwd=tmp_path)
    assert (res.returncode, json.loads(res.stdout)["findings"]) == (0, [])
    for bad, says in (
        ('naming = "([a-z"', "naming '([a-z' is not a regular expression"),
        ("naming = 3", "naming must be a regular expression"),
        ('irreversible_before = "v2"', "irreversible_before = 'v2'"),
    ):
        _pyproject(tmp_path, bad + "\n")
        res = pgsafe("lint", "migrations", cwd=tmp_path)
        assert res.returncode == 5, (bad, res.stdout)
        assert says in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


def test_layouts_with_and_without_downs(tmp_path: Path) -> None:
    # Prisma and Supabase have no downs: nothing required.
    write(tmp_path / "prisma" / "20240101000000_init", {"migration.sql": SAFE_UP})
    (tmp_path / "prisma" / "migration_lock.toml").write_text('provider = "postgresql"\n')
    write(tmp_path / "supa" / "supabase" / "migrations", {"20240101000000_init.sql": SAFE_UP})
    for project in ("prisma", "supa"):
        res = pgsafe("lint", project, "--format", "json", cwd=tmp_path)
        assert (res.returncode, json.loads(res.stdout)["findings"]) == (0, []), project
    # diesel: a migration directory without down.sql; dbmate: a file without a down section
    # and one with an empty one; a stray file either tool would never run.
    write(tmp_path / "diesel" / "2024-01-01-000000_a", {"up.sql": SAFE_UP, "down.sql": SAFE_DOWN})
    write(tmp_path / "diesel" / "2024-01-02-000000_b", {"up.sql": "SELECT 1;\n"})
    write(tmp_path / "diesel", {"notes.sql": "SELECT 1;\n"})
    res = pgsafe("lint", "diesel", "--format", "json", cwd=tmp_path)
    assert {
        (str(Path(f["file"]).relative_to("diesel")), f["rule"])
        for f in json.loads(res.stdout)["findings"]
    } == {
        ("2024-01-02-000000_b/up.sql", "require-down-migration"),
        ("notes.sql", "migration-naming"),
    }
    write(
        tmp_path / "dbmate",
        {
            "20240101_a.sql": "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n",
            "20240102_b.sql": "-- migrate:up\nSELECT 1;\n",
            "20240103_c.sql": "-- migrate:up\nSELECT 1;\n-- migrate:down\n",
        },
    )
    res = pgsafe("lint", "dbmate", "--format", "json", cwd=tmp_path)
    got = {(Path(f["file"]).name, f["rule"]) for f in json.loads(res.stdout)["findings"]}
    assert got == {
        ("20240102_b.sql", "require-down-migration"),
        ("20240103_c.sql", "require-down-migration"),
    }
    # irreversible_before reads the layout's versions (diesel's dashes removed).
    _pyproject(tmp_path, 'irreversible_before = "2024-01-03-000000"\n')
    res = pgsafe("lint", "diesel", "--format", "json", cwd=tmp_path)
    assert {f["rule"] for f in json.loads(res.stdout)["findings"]} == {"migration-naming"}


def test_rule_pages_say_how_to_mark_an_exception() -> None:
    page = RULES["require-down-migration"].doc()
    assert "-- pgsafe: irreversible reason:" in page and "irreversible_before" in page
    assert "over a migration directory's files" in page
    assert "-- pgsafe: ignore require-down-migration" not in page
    res = pgsafe("rules", "migration-naming")
    assert res.returncode == 0 and "naming" in res.stdout


# -- the GitHub Action ------------------------------------------------------------------------

ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
_EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


@dataclass
class FakeGitHub:
    """The part of GitHub's REST API the comment step calls: list, create, update comments."""

    comments: dict[int, str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    state = FakeGitHub()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            state.requests.append((self.command, self.path))
            if self.headers.get("Authorization") != "Bearer t0ken":
                return self._reply(401, {"message": "Bad credentials"})
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            path = self.path.split("?")[0]
            if self.command == "GET" and path == "/repos/o/r/issues/7/comments":
                page = int(re.search(r"[?&]page=(\d+)", self.path).group(1))  # type: ignore[union-attr]
                items = [{"id": i, "body": b} for i, b in sorted(state.comments.items())]
                return self._reply(200, items[(page - 1) * 100 : page * 100])
            if self.command == "POST" and path == "/repos/o/r/issues/7/comments":
                new = max(state.comments, default=100) + 1
                state.comments[new] = body["body"]
                return self._reply(201, {"id": new})
            m = re.fullmatch(r"/repos/o/r/issues/comments/(\d+)", path)
            if self.command == "PATCH" and m and int(m[1]) in state.comments:
                state.comments[int(m[1])] = body["body"]
                return self._reply(200, {"id": int(m[1])})
            return self._reply(404, {"message": "Not Found"})

        do_GET = do_POST = do_PATCH = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class ActionRun:
    steps: list[tuple[str, int, str, str]]  # (name, exit code, stdout, stderr)
    outputs: dict[str, str]
    summary: str

    @property
    def exit(self) -> int:
        return next((code for _, code, _, _ in self.steps if code != 0), 0)

    def stdout(self, name: str) -> str:
        return next(out for n, _, out, _ in self.steps if n == name)


def run_action(
    workspace: Path,
    tmp_path: Path,
    inputs: dict[str, str],
    event: dict[str, Any] | None = None,
    api: str = "http://127.0.0.1:9",
    extra_env: dict[str, str] | None = None,
) -> ActionRun:
    """Runs action.yml's steps as the runner runs a composite action: each `run:` script with
    `bash --noprofile --norc -eo pipefail`, its `env:` expressions evaluated, GITHUB_ENV and
    GITHUB_PATH carried to the next steps, GITHUB_OUTPUT read per step, stopping at the first
    failing step."""
    assert ACTION["runs"]["using"] == "composite"
    for name in inputs:
        assert name in ACTION["inputs"], f"no input {name}"
    values = {k: str(v.get("default", "")) for k, v in ACTION["inputs"].items()} | inputs
    temp = tmp_path / "runner-temp"
    temp.mkdir(exist_ok=True)
    files = {n: temp / n for n in ("env", "output", "summary", "path")}
    for f in files.values():
        f.write_text("")
    context: dict[str, Any] = {
        "inputs": values,
        "github": {"action_path": str(ROOT), "event": event or {}},
        "steps": {},
    }

    def evaluate(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            root, *rest = m[1].split(".")
            assert root in context, f"cannot evaluate {m[0]}"
            if root == "inputs":
                assert rest[0] in context["inputs"], f"no input {m[0]}"
            value: Any = context[root]
            for part in rest:
                value = value.get(part) if isinstance(value, dict) else None
            return "" if value is None else str(value)

        return _EXPR.sub(one, text)

    env = cli_env(
        {
            "GITHUB_ENV": str(files["env"]),
            "GITHUB_OUTPUT": str(files["output"]),
            "GITHUB_STEP_SUMMARY": str(files["summary"]),
            "GITHUB_PATH": str(files["path"]),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_API_URL": api,
            "GITHUB_EVENT_NAME": "pull_request" if event else "push",
            "RUNNER_TEMP": str(temp),
            **(extra_env or {}),
        }
    )
    steps: list[tuple[str, int, str, str]] = []
    for step in ACTION["runs"]["steps"]:
        assert step["shell"] == "bash" and "run" in step and "if" not in step
        assert "${{" not in step["run"], f"{step['name']}: an expression inside the script"
        step_env = {**env, **{k: evaluate(str(v)) for k, v in step.get("env", {}).items()}}
        files["output"].write_text("")
        script = temp / "step.sh"
        script.write_text(step["run"])
        res = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace,
            env=step_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        steps.append((step["name"], res.returncode, res.stdout, res.stderr))
        outputs = dict(
            line.split("=", 1) for line in files["output"].read_text().splitlines() if line
        )
        if "id" in step:
            context["steps"][step["id"]] = {"outputs": outputs}
        for line in files["env"].read_text().splitlines():
            assert "<<" not in line
            key, value = line.split("=", 1)
            env[key] = value
        files["env"].write_text("")
        for line in files["path"].read_text().splitlines():
            env["PATH"] = f"{line}:{env['PATH']}"
        if res.returncode != 0:
            break
    outputs = {k: evaluate(v["value"]) for k, v in ACTION.get("outputs", {}).items()}
    return ActionRun(steps, outputs, files["summary"].read_text())


def _on_path() -> dict[str, str]:
    """The pgsafe under test on PATH, for install: path."""
    return {"PATH": f"{VENV_BIN}:{os.environ['PATH']}"}


def test_action_inputs_and_steps_are_declared() -> None:
    assert set(ACTION["inputs"]) == {
        "path",
        "checks",
        "since",
        "target",
        "pg-version",
        "install",
        "python",
        "github-token",
        "fail-on-findings",
    }
    assert all(v.get("description") for v in ACTION["inputs"].values())
    assert "no release is published" in ACTION["inputs"]["install"]["description"].lower()


def test_action_on_a_pull_request(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = repo_with_main(tmp_path)
    base = git(repo, "rev-parse", "main")
    write(repo / "migrations", {"003_plan_default.up.sql": UNSAFE})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "unsafe migration")
    event = {"pull_request": {"number": 7, "base": {"sha": base}}}
    inputs = {"install": "path", "github-token": "t0ken"}
    # Others talked first: the action's comment lands on the second page of the list.
    fake_github.comments.update({i: f"comment {i}" for i in range(1, 121)})
    run = run_action(repo, tmp_path, inputs, event, fake_github.url, _on_path())
    names = [s[0] for s in run.steps]
    assert names[-1] == "Verdict" and run.exit == 1, run.steps
    # Annotations: workflow commands for the changed migration only.
    annotations = [ln for ln in run.stdout("Run the checks").splitlines() if ln.startswith("::")]
    assert annotations and all("003_plan_default.up.sql" in a for a in annotations)
    assert any("title=adding-required-field" in a for a in annotations)
    assert any("title=require-down-migration" in a for a in annotations)
    # The job summary: marker, the checks table, the lint report.
    assert run.summary.startswith("<!-- pgsafe-report path=migrations -->\n## pgsafe: `migrations`")
    assert "| lint | ❌ failed |" in run.summary
    assert "#### `migrations/003_plan_default.up.sql`" in run.summary
    assert "002_plan.sql" not in run.summary
    assert run.outputs == {
        "result": "failed",
        "report": str(tmp_path / "runner-temp" / "pgsafe-action" / "report.md"),
    }
    # One comment, posted once and then updated in place.
    ours = [i for i, body in fake_github.comments.items() if body.startswith("<!-- pgsafe")]
    assert len(ours) == 1 and fake_github.comments[ours[0]] == run.summary
    (repo / "migrations" / "003_plan_default.up.sql").write_text(SAFE_UP)
    write(repo / "migrations", {"003_plan_default.down.sql": SAFE_DOWN})
    again = run_action(repo, tmp_path, inputs, event, fake_github.url, _on_path())
    assert again.exit == 0 and again.outputs["result"] == "passed"
    assert len(fake_github.comments) == 121
    assert fake_github.comments[ours[0]] == again.summary
    assert "| lint | ✅ passed |" in again.summary
    methods = [m for m, _ in fake_github.requests]
    assert methods.count("POST") == 1 and methods.count("PATCH") == 1
    # A token the API refuses: a warning, not a failed gate.
    bad = run_action(
        repo, tmp_path, inputs | {"github-token": "wrong"}, event, fake_github.url, _on_path()
    )
    assert bad.exit == 0
    assert "::warning title=pgsafe::cannot read" in bad.stdout("Comment on the pull request")


def test_action_runs_every_check_on_a_push(tmp_path: Path) -> None:
    """No pull request: everything is linted, dry-run and test run on throwaway servers, no
    comment is attempted."""
    repo = tmp_path / "repo"
    write(repo / "db", {"001_accounts.up.sql": SAFE_UP, "001_accounts.down.sql": SAFE_DOWN})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    run = run_action(
        repo,
        tmp_path,
        {"install": "path", "path": "db", "checks": "lint, dry-run,test"},
        extra_env=_on_path(),
    )
    assert run.exit == 0, run.steps
    for check in ("lint", "dry-run", "test"):
        assert f"| {check} | ✅ passed |" in run.summary
    assert "<details><summary>dry-run report</summary>" in run.summary
    assert "<details><summary>pgsafe test (up, down, up)</summary>" in run.summary
    assert "001_accounts" in run.summary
    assert "no pull-request comment" in run.stdout("Comment on the pull request")


def test_action_reports_what_could_not_run(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(repo / "migrations", {"README.txt": "no migrations yet\n"})
    git(repo, "init", "-q", "-b", "main")
    run = run_action(repo, tmp_path, {"install": "path"}, extra_env=_on_path())
    assert run.exit == 5
    assert "| lint | ⚠️ could not run (exit 5) |" in run.summary
    assert "**lint**: pgsafe: error: migrations: no migration pgsafe can read" in run.summary
    assert run.outputs["result"] == "failed"
    # report only: the job passes, the summary still says it failed
    run = run_action(
        repo, tmp_path, {"install": "path", "fail-on-findings": "false"}, extra_env=_on_path()
    )
    assert run.exit == 0 and run.outputs["result"] == "failed"


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ({"install": "path", "checks": "lint,deploy"}, "unknown check 'deploy'"),
        ({"install": "nowhere/pgsafe-0.1.0.whl"}, "no wheel file nowhere/pgsafe-0.1.0.whl"),
        ({"install": "brew"}, "install must be checkout, path, a .whl file or pgsafe==VERSION"),
    ],
)
def test_action_bad_inputs(tmp_path: Path, inputs: dict[str, str], says: str) -> None:
    run = run_action(tmp_path, tmp_path, inputs, extra_env=_on_path())
    assert run.exit == 5
    assert any(says in out for _, _, out, _ in run.steps), run.steps


def test_action_installs_from_its_own_checkout(tmp_path: Path) -> None:
    """install: checkout runs scripts/bootstrap.sh in the action's directory (here: this
    checkout, already built, so it only checks) and uses the pgsafe it built."""
    run = run_action(
        tmp_path, tmp_path, {"install": "checkout"}, extra_env={"PGSAFE_SKIP_APT": "1"}
    )
    name, code, out, err = run.steps[0]
    assert (name, code) == ("Install pgsafe", 0), err
    assert "bootstrap: pgsafe (editable, with C++ core)" in out
    assert f"pgsafe {_core.__version__}" in out


# -- the pre-commit hook ----------------------------------------------------------------------


def test_pre_commit_hook(tmp_path: Path) -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = hooks
    assert hook["id"] == "pgsafe-lint" and hook["pass_filenames"] is False
    files = re.compile(hook["files"])
    for name in ("migrations/001_a.up.sql", "db/x.sql", "alembic/versions/1a2b_add.py"):
        assert files.search(name), name
    for name in ("src/app.py", "versions.txt", "alembic/env.py"):
        assert not files.search(name), name

    repo = repo_with_main(tmp_path)
    write(repo / "migrations", {"003_a.up.sql": UNSAFE, "004_b.up.sql": "DROP TABLE t;\n"})
    git(repo, "add", "migrations/003_a.up.sql")
    entry = [*hook["entry"].split(), "migrations"]  # the project's `args: [migrations]`
    env = cli_env({"PATH": f"{VENV_BIN}:{os.environ['PATH']}"})
    res = subprocess.run(entry, cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 1
    assert "003_a.up.sql" in res.stdout and "004_b.up.sql" not in res.stdout
    git(repo, "reset", "-q")
    res = subprocess.run(entry, cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 0 and "nothing to lint" in res.stdout
