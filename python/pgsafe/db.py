"""The ground floor's connection to a target: `connect` with pgsafe's application name and
connect timeout, failing with one ConnectError line that names the target (password masked)."""

from __future__ import annotations

import contextlib

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


def server_major(dsn: str) -> int:
    """The major version of the server at `dsn` (one short connection)."""
    with contextlib.closing(_core.Connection(dsn, "pgsafe-version")) as conn:
        return int(conn.server_version) // 10000


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
