"""Alembic projects as teams keep them: docs/alembic.md's walk-through followed step by step on
a fresh project, revision ids of any form (digits, hashes, `0001_x`) with branches and a merge,
a Flask-Migrate project (Flask-Migrate's own env.py, the application loaded as `flask db`
does) whose revision imports a missing module, revisions that import the application from
another folder, and where findings and failures point (the `op.` call's line, told once)."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("alembic")

from helpers import alembic_revision as revision
from helpers import cli_env, pgsafe, query

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "alembic.md"
ALEMBIC = Path(sys.executable).parent / "alembic"


# -- docs/alembic.md, followed as written -----------------------------------------------------


@dataclass
class Command:
    line: str
    exit: int = 0
    expect: list[str] = field(default_factory=list)  # output lines, `...` matches anything


@dataclass
class FileBlock:
    path: str
    edit: bool
    text: str


def walkthrough() -> list[Command | FileBlock]:
    """The steps of the doc's "Getting started" section, in order."""
    text = DOC.read_text()
    start = text.index("## Getting started")
    section = text[start : text.index("\n## ", start + 1)]
    steps: list[Command | FileBlock] = []
    for lang, body in re.findall(r"```(console|python)\n(.*?)```", section, re.S):
        if lang == "python":
            first, _, rest = body.partition("\n")
            target = first.removeprefix("# ")
            edit = target.endswith(": edit")
            steps.append(FileBlock(target.removesuffix(": edit"), edit, rest))
            continue
        for raw in body.splitlines():
            if raw.startswith("$ "):
                line, _, comment = raw[2:].partition("  # ")
                code = int(comment.removeprefix("exit ")) if comment.startswith("exit ") else 0
                steps.append(Command(line.strip(), code))
            elif raw.strip() and raw.strip() != "...":
                steps[-1].expect.append(raw)  # type: ignore[union-attr]
    return steps


def edit_python(path: Path, block: str) -> None:
    """The doc's "edit" block: each top-level function replaces the file's function of that
    name; its imports are added after the file's last top-level import."""
    source = path.read_text()
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    new = ast.parse(block)
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    block_lines = block.splitlines(keepends=True)
    # Replace from the bottom up so earlier line numbers stay valid.
    for node in sorted(
        (n for n in new.body if isinstance(n, ast.FunctionDef)),
        key=lambda n: defs[n.name].lineno,
        reverse=True,
    ):
        old = defs[node.name]
        assert old.end_lineno is not None and node.end_lineno is not None
        lines[old.lineno - 1 : old.end_lineno] = block_lines[node.lineno - 1 : node.end_lineno]
    imports = [
        "".join(block_lines[n.lineno - 1 : n.end_lineno])
        for n in new.body
        if isinstance(n, (ast.Import, ast.ImportFrom))
    ]
    last = max(n.end_lineno or 0 for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))
    missing = [i for i in imports if i not in source]
    lines[last:last] = missing
    path.write_text("".join(lines))


def matches(pattern: str, output: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.strip().split("..."))
    return any(re.fullmatch(regex, line.strip()) for line in output.splitlines())


def test_the_docs_walkthrough_on_a_fresh_six_revision_project(tmp_path, pgsafe_db):
    project = tmp_path / "shop"
    project.mkdir()
    steps = walkthrough()
    assert sum(isinstance(s, Command) and s.line.startswith("pgsafe") for s in steps) >= 6
    for step in steps:
        if isinstance(step, FileBlock):
            target = project / step.path
            if step.edit:
                edit_python(target, step.text)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(step.text)
            continue
        argv = shlex.split(step.line.replace('"$DATABASE_URL"', pgsafe_db.url))
        if argv[0] == "alembic":
            res = subprocess.run(
                [str(ALEMBIC), *argv[1:]],
                cwd=project,
                capture_output=True,
                text=True,
                env=cli_env(),
                check=False,
            )
        else:
            assert argv[0] == "pgsafe", step.line
            res = pgsafe(*argv[1:], cwd=project)
        output = res.stdout + res.stderr
        assert res.returncode == step.exit, f"$ {step.line}\n{output}"
        assert "Traceback" not in output
        assert "Generating static SQL" not in output  # Alembic's INFO lines only with -v
        for pattern in step.expect:
            assert matches(pattern, output), f"$ {step.line}: no line like\n{pattern}\nin\n{output}"
    # Alembic agrees with what pgsafe left.
    assert query(pgsafe_db, "SELECT version_num FROM alembic_version") == [("202511121301",)]


# -- small projects ---------------------------------------------------------------------------


def alembic_project(root: Path, revisions: dict[str, str]) -> Path:
    """`alembic init` (Alembic's own template and alembic.ini) with these revision files."""
    root.mkdir(parents=True)
    res = subprocess.run(
        [str(ALEMBIC), "init", "migrations"], cwd=root, capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    for name, body in revisions.items():
        (root / "migrations" / "versions" / name).write_text(body)
    return root / "alembic.ini"


def line_of(path: Path, needle: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


USERS = 'op.create_table("users", sa.Column("id", sa.BigInteger, primary_key=True),\n' + (
    '                sa.Column("email", sa.Text, nullable=False))'
)


def test_revision_ids_of_digits_hashes_and_names_across_a_branch_and_a_merge(tmp_path, pgsafe_db):
    ini = alembic_project(
        tmp_path / "ids",
        {
            "202511121302_users.py": revision(
                "202511121302", None, USERS, 'op.drop_table("users")'
            ),
            "ae1027a6acf_a.py": revision(
                "ae1027a6acf",
                "202511121302",
                'op.execute("CREATE TABLE a (id int)")',
                'op.drop_table("a")',
            ),
            "0001_x_b.py": revision(
                "0001_x",
                "202511121302",
                'op.execute("CREATE TABLE b (id int)")',
                'op.drop_table("b")',
            ),
            "9f_merge.py": revision("9f", ("ae1027a6acf", "0001_x"), "pass", "pass"),
        },
    )
    test = pgsafe("test", str(ini), "--format", "json")
    assert test.returncode == 0, test.stdout + test.stderr
    doc = json.loads(test.stdout)
    assert doc["passed"] and len(doc["migrations"]) == 4
    order = [m.split("_", 1)[0] for m in doc["migrations"]]
    assert order[0] == "202511121302" and order[-1] == "9f"
    # --to takes each id as written, in graph order.
    up = pgsafe("apply", str(ini), "--db", pgsafe_db.url, "--apply", "--to", "202511121302")
    assert up.returncode == 0, up.stderr
    assert query(pgsafe_db, "SELECT version_num FROM alembic_version") == [("202511121302",)]
    up = pgsafe("apply", str(ini), "--db", pgsafe_db.url, "--apply", "--to", "9f")
    assert up.returncode == 0, up.stderr
    assert query(pgsafe_db, "SELECT version_num FROM alembic_version") == [("9f",)]
    status = pgsafe("status", str(ini), "--db", pgsafe_db.url, "--json")
    rows = json.loads(status.stdout)["migrations"]
    assert [r["version"] for r in rows] == [
        m.split("_", 1)[0] if m[0] != "0" else "0001_x" for m in doc["migrations"]
    ]
    down = pgsafe("rollback", str(ini), "--db", pgsafe_db.url, "--apply", "--to", "202511121302")
    assert down.returncode == 0, down.stderr
    assert query(pgsafe_db, "SELECT version_num FROM alembic_version") == [("202511121302",)]
    assert query(pgsafe_db, "SELECT to_regclass('a'), to_regclass('b')") == [(None, None)]
    missing = pgsafe("apply", str(ini), "--db", pgsafe_db.url, "--to", "feedbeef")
    assert missing.returncode == 5
    assert "--to feedbeef: no migration with that version" in missing.stderr


def test_findings_and_failures_point_at_the_op_call_and_are_told_once(tmp_path, pgsafe_db):
    broken = revision(
        "b2",
        "a1",
        """
        op.create_index("ix_users_email", "users", ["email"])
        op.execute("INSERT INTO users (id) VALUES (1)")
        """,
        'op.drop_index("ix_users_email", table_name="users")',
    )
    ini = alembic_project(
        tmp_path / "lines",
        {
            "a1_users.py": revision("a1", None, USERS, 'op.drop_table("users")'),
            "b2_broken.py": revision("b2", "a1", "pass", "pass"),
        },
    )
    path = ini.parent / "migrations" / "versions" / "b2_broken.py"
    path.write_text(broken)
    index_line = line_of(path, "op.create_index")
    insert_line = line_of(path, "INSERT INTO users")
    # lint and dry-run: the finding at the op.create_index line.
    lint = pgsafe("lint", str(ini), "--format", "json")
    found = [
        f for f in json.loads(lint.stdout)["findings"] if f["rule"] == "require-concurrent-index"
    ]
    assert [(Path(f["file"]).name, f["line"]) for f in found] == [("b2_broken.py", index_line)]
    dry = pgsafe("dry-run", str(ini), "--format", "json", "--no-trace")
    mig = json.loads(dry.stdout)["migrations"][1]
    assert [(f["rule"], f["line"]) for f in mig["findings"]] == [
        ("require-concurrent-index", index_line)
    ]
    assert [s["line"] for s in mig["statements"]] == [index_line, insert_line]
    # pgsafe test: the failure at the op.execute line, printed once per failed check (the
    # round trip's and the stairway's).
    test = pgsafe("test", str(ini))
    assert test.returncode == 1
    output = test.stdout + test.stderr
    where = f'{path}:{insert_line}:1: null value in column "email"'
    assert output.count(where) == 2, output
    once = pgsafe("test", str(ini), "--no-stairway")
    assert (once.stdout + once.stderr).count(where) == 1, once.stdout + once.stderr
    assert "down_revision" not in output
    # apply: the same line.
    up = pgsafe("apply", str(ini), "--db", pgsafe_db.url, "--apply", "--log-dir", "")
    assert up.returncode == 2
    assert f"{path}:{insert_line}:1:" in up.stdout + up.stderr


def test_pgsafe_own_preamble_and_alembic_bookkeeping_are_never_linted(tmp_path):
    example = ROOT / "examples" / "alembic_project"
    # An env.py with pgsafe.alembic.configure, emitting a statement of its own before BEGIN.
    root = tmp_path / "example"
    subprocess.run(["cp", "-r", str(example), str(root)], check=True)
    env = root / "env.py"
    env.write_text(
        env.read_text().replace(
            '    pgsafe.alembic.configure(context, url=config.get_main_option("sqlalchemy.url"))\n',
            '    pgsafe.alembic.configure(context, url=config.get_main_option("sqlalchemy.url"))\n'
            '    context.execute("SET search_path TO public")\n',
        )
    )
    assert "SET search_path" in env.read_text()
    dry = pgsafe("dry-run", str(root / "alembic.ini"), "--format", "json", "--no-trace")
    doc = json.loads(dry.stdout)
    rules = {f["rule"] for m in doc["migrations"] for f in m["findings"]}
    assert "transaction-nesting" not in rules, rules
    assert all(m["status"] != "Unsafe" for m in doc["migrations"]), [
        (m["version"], m["findings"]) for m in doc["migrations"]
    ]
    operations = [op for m in doc["migrations"] for op in m["operations"]]
    assert not [op for op in operations if "alembic_version" in op or op.startswith("SET")]
    # What pgsafe renders to run: no SET preamble from pgsafe.alembic.configure.
    from pgsafe.sources.alembic import discover_alembic

    first = discover_alembic(root / "alembic.ini")[0]
    assert "lock_timeout" not in first.up_text()


def test_revisions_import_the_application_from_any_folder(tmp_path):
    body = revision(
        "c3",
        None,
        """
        from myapp.models import TABLE
        op.create_table(TABLE, sa.Column("id", sa.Integer, primary_key=True))
        """,
        'op.drop_table("widgets")',
    )
    ini = alembic_project(tmp_path / "proj", {"c3_widgets.py": body})
    app = tmp_path / "proj" / "myapp"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text('TABLE = "widgets"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # prepend_sys_path = . is the ini's folder, from whatever folder pgsafe runs in.
    ok = pgsafe("lint", str(ini), cwd=elsewhere)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The application moved away: one line naming the revision and the import, exit 5.
    moved = tmp_path / "src"
    moved.mkdir()
    app.rename(moved / "myapp")
    bad = pgsafe("lint", str(ini), cwd=elsewhere)
    assert bad.returncode == 5
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in bad.stderr, bad.stderr
    path = ini.parent / "migrations" / "versions" / "c3_widgets.py"
    assert lines[0].startswith(f"pgsafe: error: {path}:{line_of(path, 'from myapp')}:")
    assert "No module named 'myapp'" in lines[0] and "--app-path" in lines[0]
    # --app-path or PYTHONPATH bring it back.
    assert pgsafe("lint", str(ini), "--app-path", str(moved), cwd=elsewhere).returncode == 0
    assert pgsafe("lint", str(ini), env={"PYTHONPATH": str(moved)}, cwd=elsewhere).returncode == 0


def test_alembic_logging_is_quiet_unless_verbose(tmp_path):
    ini = alembic_project(
        tmp_path / "log",
        {"a1_users.py": revision("a1", None, USERS, 'op.drop_table("users")')},
    )
    assert "level = INFO" in ini.read_text()  # Alembic's template logs INFO for alembic
    quiet = pgsafe("lint", str(ini))
    assert quiet.returncode == 0 and "Generating static SQL" not in quiet.stderr, quiet.stderr
    loud = pgsafe("-v", "lint", str(ini))
    assert loud.returncode == 0 and "Generating static SQL" in loud.stderr, loud.stderr


# -- Flask-Migrate ----------------------------------------------------------------------------

FLASK_APP = """from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


def create_app():
    app = Flask(__name__)
    # Production's URL, never connected to: pgsafe renders offline with its dialect.
    app.config["SQLALCHEMY_DATABASE_URI"] = "postgresql://app@db.example.invalid/prod"
    db.init_app(app)
    migrate.init_app(app, db)
    return app
"""

FLASK_MODELS = """from myapp import db


class User(db.Model):
    __tablename__ = "users"
    id = db.Column(db.BigInteger, primary_key=True)
    email = db.Column(db.Text, nullable=False)
"""


def test_a_flask_migrate_project_and_a_revision_that_imports_a_missing_module(tmp_path):
    pytest.importorskip("flask_migrate")
    root = tmp_path / "flaskshop"
    (root / "myapp").mkdir(parents=True)
    (root / "myapp" / "__init__.py").write_text(FLASK_APP)
    (root / "myapp" / "models.py").write_text(FLASK_MODELS)
    flask = Path(sys.executable).parent / "flask"
    made = subprocess.run(
        [str(flask), "db", "init"],
        cwd=root,
        capture_output=True,
        text=True,
        env=cli_env({"FLASK_APP": "myapp"}),
        check=False,
    )
    assert made.returncode == 0, made.stderr
    ini = root / "migrations" / "alembic.ini"
    assert "script_location" not in ini.read_text()  # Flask-Migrate's own ini
    assert "current_app" in (root / "migrations" / "env.py").read_text()
    versions = root / "migrations" / "versions"
    (versions / "4f2e9c1a7b3d_users.py").write_text(
        revision(
            "4f2e9c1a7b3d",
            None,
            """
            from myapp.models import User
            op.create_table(User.__tablename__,
                            sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
                            sa.Column("email", sa.Text, nullable=False))
            """,
            'op.drop_table("users")',
        )
    )
    (versions / "9a8b7c6d5e4f_email.py").write_text(
        revision(
            "9a8b7c6d5e4f",
            "4f2e9c1a7b3d",
            'op.create_index("ix_users_email", "users", ["email"])',
            'op.drop_index("ix_users_email", table_name="users")',
        )
    )
    app = {"FLASK_APP": "myapp:create_app"}
    lint = pgsafe("lint", "migrations", "--format", "json", env=app, cwd=root)
    assert lint.returncode == 1, lint.stdout + lint.stderr
    [finding] = [f for f in json.loads(lint.stdout)["findings"] if f["severity"] == "error"]
    email = versions / "9a8b7c6d5e4f_email.py"
    assert (finding["rule"], finding["file"], finding["line"]) == (
        "require-concurrent-index",
        str(email),
        line_of(email, "op.create_index"),
    )
    assert "Generating static SQL" not in lint.stderr
    test = pgsafe("test", str(root / "migrations"), env=app, cwd=tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "passed;" in test.stdout and "2 migration(s)" in test.stdout
    # FLASK_APP in .flaskenv works as for `flask db`; without any, one line saying so.
    (root / ".flaskenv").write_text("FLASK_APP=myapp\n")
    assert pgsafe("lint", "migrations", cwd=root).returncode == 1
    (root / ".flaskenv").unlink()
    none = pgsafe("lint", "migrations", cwd=root)
    assert none.returncode == 5 and "FLASK_APP" in none.stderr
    assert len(none.stderr.strip().splitlines()) == 1, none.stderr
    # A revision importing a module that is not there: one line, the file and the error.
    audit = versions / "1c2d3e4f5a6b_audit.py"
    audit.write_text(
        revision(
            "1c2d3e4f5a6b",
            "9a8b7c6d5e4f",
            """
            from myapp.audit import audited
            op.execute(audited("users"))
            """,
            "pass",
        )
    )
    bad = pgsafe("lint", "migrations", env=app, cwd=root)
    assert bad.returncode == 5, bad.stdout + bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert lines[0].startswith(f"pgsafe: error: {audit}:{line_of(audit, 'from myapp.audit')}:")
    assert "ModuleNotFoundError: No module named 'myapp.audit'" in lines[0]
    for command in ("test", "dry-run", "status"):
        other = pgsafe(command, "migrations", env=app, cwd=root)
        assert other.returncode == 5 and "No module named 'myapp.audit'" in other.stderr
        assert "Traceback" not in other.stderr
