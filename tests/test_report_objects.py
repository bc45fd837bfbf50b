"""The lint result and the runner's status are report objects: they render as text, Markdown
and HTML (what a notebook shows), with identifiers from the files and the database escaped."""

from __future__ import annotations

from pathlib import Path

from helpers import write
from pgsafe.lifecycle.runner import Runner
from pgsafe.lint import lint_text
from pgsafe.server import TemporaryDatabase

HOSTILE = "<b>x|y</b>"


def test_lint_result_renders_escaped() -> None:
    result = lint_text(f'CREATE INDEX i ON "{HOSTILE}" (a);\n', file="001_idx.sql")
    assert result.failed
    html = result._repr_html_()
    assert HOSTILE not in html and "&lt;b&gt;x|y&lt;/b&gt;" in html
    assert "require-concurrent-index" in html and "001_idx.sql:1:1" in html
    md = result._repr_markdown_()
    assert HOSTILE not in md and "\\<b\\>x\\|y\\</b\\>" in md
    assert result.summary().startswith("FAILED: 1 file(s), 1 error(s)")
    assert result.to_dict() == result.to_json()


def test_status_report_renders(tmp_path: Path, pgsafe_db: TemporaryDatabase) -> None:
    src = write(tmp_path / "m", {f"001_{'a' * 3}.up.sql": f'CREATE TABLE "{HOSTILE}" (a int);\n'})
    runner = Runner(src, pgsafe_db.dsn)
    runner.apply()
    report = runner.status()
    text = report.to_text()
    assert "1 applied, 0 pending" in text and "001" in text
    html = report.to_html()
    assert "<td>applied</td>" in html
    assert report.to_dict()["applied"] == 1
