"""Identifiers and literals in the SQL pgsafe writes itself (never parsing: SQL is read only by
the PostgreSQL parser). No dependency on the compiled core: the embedded server's launcher uses
it from a plain source tree."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """An identifier, always double-quoted (embedded quotes doubled): safe for any name."""
    return '"' + name.replace('"', '""') + '"'


def quote_name(name: str) -> str:
    """An identifier quoted only where SQL needs it, as PostgreSQL's quote_ident() does for the
    common case: lower-case letters, digits, _ and $ (not first) stay bare."""
    if (
        name
        and (name[0].isascii() and (name[0].islower() or name[0] == "_"))
        and all(c.isascii() and (c.islower() or c.isdigit() or c in "_$") for c in name)
    ):
        return name
    return quote_ident(name)


def quote_qualified(schema: str, name: str) -> str:
    """schema.name, each part quoted only where SQL needs it."""
    return f"{quote_name(schema)}.{quote_name(name)}"


def quote_literal(text: str) -> str:
    """A string literal (standard_conforming_strings: only the quote doubles)."""
    return "'" + text.replace("'", "''") + "'"
