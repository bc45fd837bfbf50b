"""One structure, three renderings: every report object (lint result, dry-run, preflight,
postflight, backup, test) describes itself as titled sections of prose and tables, and this
module turns that into terminal text, Markdown and HTML (notebooks call ``_repr_html_`` and
``_repr_markdown_``). Identifiers from the database are escaped in every rendering."""

from __future__ import annotations

import html
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Report", "Section", "Table", "Text", "escape_markdown"]


@dataclass(frozen=True)
class Text:
    """A paragraph. Plain text: it is escaped in Markdown and HTML, never interpreted."""

    text: str


@dataclass(frozen=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[object]]
    empty: str = "none"  # what to say when there are no rows


@dataclass(frozen=True)
class Section:
    title: str
    parts: Sequence[Text | Table] = field(default_factory=list)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]<>()#+-.!|~"})


def escape_markdown(text: str) -> str:
    """Escape Markdown syntax so a table name like ``a|b`` or ``*x*`` shows as written."""
    return text.translate(_MD_SPECIAL).replace("\n", " ")


def _md_cell(value: object) -> str:
    return escape_markdown(_cell(value)) if value is not None else ""


class Report(ABC):
    """Base class of pgsafe's report objects: subclasses say what they contain
    (:meth:`sections`, :meth:`to_dict`) and inherit every rendering."""

    title: str = "pgsafe report"

    @abstractmethod
    def sections(self) -> list[Section]:
        """The report as titled sections of text and tables, in reading order."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-serialisable data (the ``--format json`` output)."""

    def summary(self) -> str:
        """One line under the title; subclasses say pass/fail and counts here."""
        return ""

    # -- renderings --------------------------------------------------------------------

    def to_text(self) -> str:
        out = [self.title]
        if s := self.summary():
            out.append(s)
        for sec in self.sections():
            out += ["", sec.title, "-" * len(sec.title)]
            for part in sec.parts:
                out += _text_part(part)
        return "\n".join(out) + "\n"

    def to_markdown(self) -> str:
        out = [f"# {escape_markdown(self.title)}"]
        if s := self.summary():
            out += ["", escape_markdown(s)]
        for sec in self.sections():
            out += ["", f"## {escape_markdown(sec.title)}", ""]
            for part in sec.parts:
                if isinstance(part, Text):
                    out += [escape_markdown(part.text), ""]
                elif not part.rows:
                    out += [f"_{escape_markdown(part.empty)}_", ""]
                else:
                    out.append("| " + " | ".join(escape_markdown(c) for c in part.columns) + " |")
                    out.append("|" + "---|" * len(part.columns))
                    for row in part.rows:
                        out.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
                    out.append("")
        return "\n".join(out).rstrip() + "\n"

    def to_html(self) -> str:
        e = html.escape
        out = [f"<div class='pgsafe-report'><h3>{e(self.title)}</h3>"]
        if s := self.summary():
            out.append(f"<p><b>{e(s)}</b></p>")
        for sec in self.sections():
            out.append(f"<h4>{e(sec.title)}</h4>")
            for part in sec.parts:
                if isinstance(part, Text):
                    out.append(f"<p>{e(part.text)}</p>")
                elif not part.rows:
                    out.append(f"<p><i>{e(part.empty)}</i></p>")
                else:
                    head = "".join(f"<th>{e(c)}</th>" for c in part.columns)
                    body = "".join(
                        "<tr>" + "".join(f"<td>{e(_cell(v))}</td>" for v in row) + "</tr>"
                        for row in part.rows
                    )
                    out.append(
                        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                    )
        out.append("</div>")
        return "".join(out)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        return self.to_html()


def _text_part(part: Text | Table) -> list[str]:
    if isinstance(part, Text):
        return [part.text]
    if not part.rows:
        return [f"  ({part.empty})"]
    cells = [[_cell(v) for v in row] for row in part.rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(part.columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(part.columns, widths, strict=True))
    out = [line.rstrip()]
    for r in cells:
        out.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return out
