"""One timestamp format for every file name pgsafe writes (pgsafe.stamps): UTC, fixed width so
names sort by time, unique within a run; and the backup, preflight and postflight files of one
`apply --apply` all use it."""

from __future__ import annotations

import datetime as dt
import re

from helpers import pgsafe as run
from helpers import write
from pgsafe.stamps import STAMP_PATTERN, Stamper, file_stamp, parse_file_stamp

NAME = re.compile(rf"(backup|preflight-report|postflight-report)-({STAMP_PATTERN})(\.\S+)")


def test_stamp_is_utc_basic_iso_with_milliseconds():
    cet = dt.timezone(dt.timedelta(hours=1))
    when = dt.datetime(2026, 11, 21, 10, 15, 43, 886_999, tzinfo=cet)
    assert file_stamp(when) == "20261121T091543.886Z"
    assert parse_file_stamp("logs/preflight-report-20261121T091543.886Z.json") == dt.datetime(
        2026, 11, 21, 9, 15, 43, 886_000, tzinfo=dt.UTC
    )
    try:
        file_stamp(dt.datetime(2026, 11, 21))  # naive: which zone? refused
    except ValueError as exc:
        assert "UTC" in str(exc)
    else:
        raise AssertionError("a naive datetime was accepted")


def test_names_are_unique_and_sort_in_time_order():
    stamped_name = Stamper().name
    when = dt.datetime(2026, 1, 1, 23, 59, 59, 998_000, tzinfo=dt.UTC)
    # Many names asked for at one instant (and a clock going backwards) never repeat, and
    # sorting them as strings keeps the order they were made in, across a second and a day.
    names = [stamped_name("r-", ".json", when=when) for _ in range(50)]
    names.append(stamped_name("r-", ".json", when=when - dt.timedelta(hours=1)))
    assert len(set(names)) == len(names) and sorted(names) == names
    assert any(n.startswith("r-20260102T000000.") for n in names)
    times = [parse_file_stamp(n) for n in names]
    assert times == sorted(times) and times[0] == when
    # A name in use (another process's file) is skipped, not suffixed.
    later = dt.datetime(2030, 5, 5, 5, 5, 5, tzinfo=dt.UTC)
    used = {"r-20300505T050505.000Z.json", "r-20300505T050505.001Z.json"}
    assert stamped_name("r-", ".json", when=later, taken=used.__contains__) == (
        "r-20300505T050505.002Z.json"
    )


ITEMS = {
    "001_items.up.sql": "CREATE TABLE items (id int PRIMARY KEY);\n",
    "001_items.down.sql": "DROP TABLE items;\n",
    "002_note.up.sql": "ALTER TABLE items ADD COLUMN note text;\n",
    "002_note.down.sql": "ALTER TABLE items DROP COLUMN note;\n",
}


def test_every_file_of_a_run_uses_the_one_format(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", ITEMS)
    for to in ("001", "002"):
        res = run(
            "apply", str(migs), "--db", pgsafe_db.dsn, "--apply", "--backup", "--to", to,
            cwd=tmp_path,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr
    files = sorted(
        p.name
        for p in [*(tmp_path / "logs").iterdir(), *(tmp_path / "backups/migrations").iterdir()]
        if p.name.startswith(("backup-", "preflight-report-", "postflight-report-"))
        and not p.name.endswith((".manifest.json", ".verified.json"))
    )
    kinds = {}
    for name in files:
        m = NAME.fullmatch(name)
        assert m, f"{name} does not use the YYYYmmddTHHMMSS.fffZ stamp"
        kinds.setdefault(m[1], []).append(parse_file_stamp(m[2]))
    assert {k: len(v) for k, v in kinds.items()} == {
        "backup": 2,
        "preflight-report": 2,
        "postflight-report": 2,
    }
    # Within a run: preflight report, then backup, then postflight report, in time order.
    for i in range(2):
        assert kinds["preflight-report"][i] < kinds["backup"][i] < kinds["postflight-report"][i]
    now = dt.datetime.now(dt.UTC)
    assert all(abs(now - t) < dt.timedelta(minutes=5) for v in kinds.values() for t in v)
