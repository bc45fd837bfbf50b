"""The ground floor's connection to a target: `connect` with pgsafe's application name and
connect timeout, failing with one ConnectError line that names the target (password masked)."""

from __future__ import annotations

from pgsafe import _core
from pgsafe.config import Settings
from pgsafe.errors import ConfigError, ConnectError, DatabaseError


def connect(dsn: str, settings: Settings, purpose: str = "") -> _core.Connection:
    """A connection, or ConnectError naming the target (password masked) and the reason."""
    name = settings.application_name + (f" {purpose}" if purpose else "")
    try:
        return _core.Connection(dsn, name, settings.connect_timeout_s)
    except DatabaseError as exc:
        raise ConnectError(exc.message) from exc


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


def split_name(text: str, where: str = "table") -> list[str]:
    """The parts of a possibly qualified name as PostgreSQL reads one given as text
    (``schema.table``, ``"My Schema"."T"``; unquoted parts fold to lower case), by the rules of
    its SplitIdentifierString: parts separated by dots, spaces only around them, a quoted part
    with "" for a quote, at most three parts. ConfigError (exit 5) naming `text` otherwise: the
    same bad name gets the same code and message in every command that takes one."""
    parts: list[str] = []
    i, n = 0, len(text)

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{where} {text!r}: not a valid name ({why})")

    while True:
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] == '"':
            i += 1
            part = []
            while True:
                end = text.find('"', i)
                if end < 0:
                    raise bad("unterminated quoted identifier")
                part.append(text[i:end])
                i = end + 1
                if i < n and text[i] == '"':  # "" stands for one quote
                    part.append('"')
                    i += 1
                    continue
                break
            name = "".join(part)
            if not name:
                raise bad("empty quoted identifier")
        else:
            start = i
            while i < n and text[i] != "." and text[i] != '"' and not text[i].isspace():
                i += 1
            name = text[start:i].lower()
            if not name:
                raise bad("empty part" if parts or i < n else "empty")
        parts.append(name)
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            break
        if text[i] != ".":
            raise bad(f"unexpected {text[i]!r} after {name!r}")
        i += 1
    if len(parts) > 3:
        raise bad("too many dotted parts")
    return parts
