"""`pgsafe apply --format json`: the run as one JSON document on stdout (steps, outcomes, exit
code, timings, migrations), progress and logs on stderr only; for the read-only plan, a
successful --apply and a failing step."""

from __future__ import annotations

import json

from helpers import pgsafe as run
from helpers import query, write
from pgsafe.schema import fingerprint

ITEMS = {
    "001_items.up.sql": "CREATE TABLE items (id int PRIMARY KEY, label text);\n"
    "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 3) g;\n",
    "001_items.down.sql": "DROP TABLE items;\n",
    "002_items_note.up.sql": "ALTER TABLE items ADD COLUMN note text;\n",
    "002_items_note.down.sql": "ALTER TABLE items DROP COLUMN note;\n",
}
STEPS = ["preflight", "backup", "apply", "postflight"]


def apply_json(db, migs, cwd, *extra: str):
    res = run("apply", str(migs), "--db", db.dsn, "--format", "json", *extra, cwd=cwd)
    doc = json.loads(res.stdout)  # stdout is the document and nothing else
    return res, doc


def test_plan_as_json_writes_nothing(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", ITEMS)
    before = fingerprint(pgsafe_db.dsn, exclude=())
    res, doc = apply_json(pgsafe_db, migs, tmp_path)
    assert res.returncode == 0, res.stderr
    assert doc["dry_run"] is True and doc["exit_code"] == 0 and doc["error"] is None
    assert [s["step"] for s in doc["steps"]] == STEPS
    assert doc["steps"][0]["status"] in ("ok", "warn") and doc["steps"][0]["seconds"] > 0
    assert {s["status"] for s in doc["steps"][1:]} == {"not-run"}
    assert [(p["version"], p["name"], p["statements"]) for p in doc["plan"]] == [
        ("001", "items", 2),
        ("002", "items_note", 1),
    ]
    assert doc["preflight"]["passed"] is True and doc["migrations"] == []
    assert doc["started_at"].endswith("Z") and doc["seconds"] > 0
    assert fingerprint(pgsafe_db.dsn, exclude=()) == before
    assert list(tmp_path.iterdir()) == [migs]  # no log, no report

    # A plan whose preflight fails (drift): exit 1, the document says why, one error line.
    res = run(
        "apply", str(migs), "--db", pgsafe_db.dsn, "--apply", "--to", "001", "--log-dir", "",
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    with pgsafe_db.connect() as conn:
        conn.execute("CREATE INDEX items_label_idx ON items (label)")
    res, doc = apply_json(pgsafe_db, migs, tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert doc["exit_code"] == 1 and doc["steps"][0]["status"] == "failed"
    assert "schema-drift" in doc["error"]
    assert [p["version"] for p in doc["plan"]] == ["002"]
    assert doc["error"] and doc["error"] in res.stderr
    assert res.stderr.strip().splitlines()[-1].endswith("(apply --apply would stop here)")


def test_successful_apply_as_json(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", ITEMS)
    res, doc = apply_json(pgsafe_db, migs, tmp_path, "--apply", "--backup")
    assert res.returncode == 0, res.stderr
    assert doc["dry_run"] is False and doc["exit_code"] == 0 and doc["error"] is None
    assert [(s["step"], s["status"]) for s in doc["steps"]] == [
        ("preflight", doc["steps"][0]["status"]),
        ("backup", "ok"),
        ("apply", "ok"),
        ("postflight", "ok"),
    ]
    assert doc["steps"][0]["status"] in ("ok", "warn")
    assert all(s["seconds"] >= 0 for s in doc["steps"]) and doc["seconds"] > 0
    migrations = [(m["version"], m["name"], m["status"]) for m in doc["migrations"]]
    assert migrations == [("001", "items", "applied"), ("002", "items_note", "applied")]
    assert all(m["duration_s"] > 0 and m["statements"] >= 1 for m in doc["migrations"])
    assert (tmp_path / doc["backup"]).is_file()
    assert (tmp_path / doc["postflight_report"]).is_file()
    assert (tmp_path / doc["preflight_report"]).is_file()
    # Progress and the status table went to stderr.
    assert "applying 001_items" in res.stderr and "2 applied, 0 pending" in res.stderr
    assert query(pgsafe_db, "SELECT version FROM pgsafe.migrations ORDER BY 1") == [
        ("001",),
        ("002",),
    ]


def test_failing_step_as_json(pgsafe_db, tmp_path):
    migs = write(
        tmp_path / "m",
        {
            "001_t.sql": "CREATE TABLE t (id int);\n",
            "002_broken.sql": "INSERT INTO t VALUES (1);\nSELECT 1 / 0;\n",
        },
    )
    res, doc = apply_json(pgsafe_db, migs, tmp_path, "--apply")
    assert res.returncode == 2, res.stdout + res.stderr
    assert doc["exit_code"] == 2 and "002_broken" in doc["error"] and "22012" in doc["error"]
    steps = {s["step"]: s for s in doc["steps"]}
    assert [s["step"] for s in doc["steps"]] == STEPS
    assert steps["apply"]["status"] == "failed" and "002_broken" in steps["apply"]["detail"]
    assert steps["postflight"]["status"] == "not-run"
    assert [(m["version"], m["status"]) for m in doc["migrations"]] == [("001", "applied")]
    # The error line is the last thing on stderr, as for text output.
    assert res.stderr.strip().splitlines()[-1].startswith("pgsafe: error: ")
    assert query(pgsafe_db, "SELECT version, status FROM pgsafe.migrations ORDER BY 1") == [
        ("001", "applied")
    ]
