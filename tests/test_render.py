"""Report rendering and progress output: escaping of identifiers, empty tables, modes."""

from __future__ import annotations

import io
from typing import Any

from pgsafe.progress import Progress, human_bytes
from pgsafe.render import Report, Section, Table, Text


class _Sample(Report):
    title = "Sample <report>"

    def sections(self) -> list[Section]:
        return [
            Section(
                "Tables",
                [
                    Text("table *a|b* <script>"),
                    Table(["name", "rows"], [["public.a|b", 3], ["<script>", None]]),
                    Table(["x"], [], empty="nothing here"),
                ],
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True}


def test_html_escapes_identifiers_and_markup() -> None:
    out = _Sample()._repr_html_()
    assert "<script>" not in out
    assert "&lt;script&gt;" in out
    assert "<td>public.a|b</td>" in out
    assert "<i>nothing here</i>" in out


def test_markdown_escapes_pipes_so_table_columns_stay_aligned() -> None:
    md = _Sample()._repr_markdown_()
    row = next(line for line in md.splitlines() if "public" in line)
    assert row.count("|") - row.count("\\|") == 3  # two cells, three separators
    assert "\\*a\\|b\\*" in md
    assert "_nothing here_" in md


def test_text_aligns_columns() -> None:
    lines = _Sample().to_text().splitlines()
    header = next(line for line in lines if line.startswith("name"))
    first = next(line for line in lines if line.startswith("public.a|b"))
    assert header.index("rows") == first.index("3")


def test_progress_off_for_pipes_and_bar_on_tty() -> None:
    pipe = io.StringIO()
    with Progress("copy", 10, stream=pipe) as p:
        p.advance(5)
    assert pipe.getvalue() == ""
    tty = io.StringIO()
    with Progress("copy", 200, unit="bytes", stream=tty, mode="tty") as p:
        p.advance(100)
    assert "50.0%" in tty.getvalue() and tty.getvalue().endswith("\n")


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 kB"
    assert human_bytes(3 * 1024**3) == "3.0 GB"
