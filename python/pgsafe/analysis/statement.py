"""The parsed statement: a migration's SQL split by libpg_query of PostgreSQL's newest grammar
(through pglast), each statement with its position and the facts decoded once from its parse
tree that lint, trace, preflight, the executor and restore --force share.

This is the one place where a parse tree is decoded from JSON. Trees of any depth are handled:
PostgreSQL's own parser refuses statements nested beyond its stack limit (a ParseError here, as
the server would), and a tree deeper than Python's recursion limit is decoded iteratively.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from types import ModuleType
from typing import Any

from pgsafe import _core
from pgsafe.errors import ConfigError, ParseError

__all__ = [
    "GRAMMAR_MAJOR",
    "STEP_MARKER",
    "Comment",
    "Statement",
    "batch_statements",
    "is_step_marker",
    "iter_statements",
    "line_column",
    "scan_comments",
    "split_statements",
    "walk_dicts",
    "walk_nodes",
]

#: The PostgreSQL major whose grammar parses: pglast 8.x bundles libpg_query of PostgreSQL 18
#: (pyproject pins pglast>=8,<9; tests/test_versions.py checks the two agree). A constant, so
#: that importing pgsafe does not load pglast (about 0.1 s) before anything is parsed.
GRAMMAR_MAJOR = 18

_PGLAST: ModuleType | None = None


def _pg() -> ModuleType:
    """pglast.parser, imported on first use."""
    global _PGLAST
    if _PGLAST is None:
        from pglast import parser  # noqa: PLC0415 (start-up time: 0.1 s, only when parsing)

        _PGLAST = parser
    return _PGLAST


# PostgreSQL's scanner treats these as white space (scan.l: space [ \t\n\r\f\v]).
_SPACE = b" \t\n\r\f\v"
_COMMENT_TOKENS = frozenset({"SQL_COMMENT", "C_COMMENT"})

_TRANSACTION_WORDS = {
    "TRANS_STMT_BEGIN": "begin",
    "TRANS_STMT_START": "start transaction",
    "TRANS_STMT_COMMIT": "commit",
    "TRANS_STMT_ROLLBACK": "rollback",
    "TRANS_STMT_SAVEPOINT": "savepoint",
    "TRANS_STMT_RELEASE": "release",
    "TRANS_STMT_ROLLBACK_TO": "rollback to savepoint",
    "TRANS_STMT_PREPARE": "prepare transaction",
    "TRANS_STMT_COMMIT_PREPARED": "commit prepared",
    "TRANS_STMT_ROLLBACK_PREPARED": "rollback prepared",
}

_NEVER_IN_TRANSACTION = {
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "AlterSystemStmt": "ALTER SYSTEM",
    "CreateTableSpaceStmt": "CREATE TABLESPACE",
    "DropTableSpaceStmt": "DROP TABLESPACE",
    "CreateSubscriptionStmt": "CREATE SUBSCRIPTION",
    "DropSubscriptionStmt": "DROP SUBSCRIPTION",
}
_REINDEX_NON_TRANSACTIONAL = {
    "REINDEX_OBJECT_SYSTEM": "REINDEX SYSTEM",
    "REINDEX_OBJECT_DATABASE": "REINDEX DATABASE",
    "REINDEX_OBJECT_SCHEMA": "REINDEX SCHEMA",
}
_DML = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "SelectStmt", "CopyStmt"})
# Data statements: in a large file their trees are parsed again when asked for, not kept; a run
# of them (without RETURNING's rows to read or COPY's data to feed) can go to the server as one
# batch (batch_statements).
_LIGHT = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})
#: A file at least this large keeps no tree of its data statements (Statement.release_tree).
LARGE_FILE_BYTES = 1 << 20
_OTHER = frozenset(
    {"VariableSetStmt", "VariableShowStmt", "DoStmt", "NotifyStmt", "ListenStmt", "CallStmt"}
)


@dataclass(eq=False, slots=True)
class Statement:
    """One statement of a migration file, as parsed.

    `sql` runs from its first token to its last (comments around it and the terminating
    semicolon excluded); `offset` is the 0-based byte offset of that first token in the UTF-8
    text, `line`/`column` its 1-based position (column in characters), `end_line` the line of
    its last character. `tree` is the statement's parse tree (``{kind: fields}``).

    The text is not copied per statement: `sql` is read from the file's bytes when asked for.
    In a large file (a data migration of many INSERTs) the trees of data statements are not
    kept: `tree` parses the statement again each time it is asked for, and hold_tree() keeps
    it while one consumer works on it (lint's rules), so memory stays bounded by the file.

    A batch (batch_statements) is a run of plain data statements sent to the server as one
    query: `parts` holds (start, end, line, column) of each, start/end relative to `sql`.
    """

    offset: int
    line: int
    column: int
    end_line: int
    kind: str
    _data: bytes = field(repr=False)
    _end: int = field(repr=False)
    _tree: dict[str, Any] | None = field(repr=False)
    # What to add to the `location` fields of `_tree` to make them byte offsets in the file
    # (a piece of a large file is parsed on its own); applied when the tree is first read.
    _base: int = field(default=0, repr=False)
    # BEGIN/START/COMMIT/END/ROLLBACK/SAVEPOINT/RELEASE/PREPARE TRANSACTION...: lowercase words.
    transaction_control: str = ""
    non_transactional: bool = False  # cannot run inside a transaction block
    reason: str = ""  # why it is non-transactional, e.g. "CREATE INDEX CONCURRENTLY"
    # A `-- pgsafe: step` comment stands before it: `pgsafe apply` commits the transaction of
    # the statements before it and starts a new one here (docs/fix.md).
    new_step: bool = False
    # "index", "validate", "maintenance", "ddl", "dml", "transaction", "other": the executor
    # picks the statement's timeouts by this.
    timeout_class: str = "ddl"
    # CREATE INDEX [CONCURRENTLY]: the index name (may be empty) and the table it is on.
    index_name: str = ""
    index_schema: str = ""
    index_table: str = ""
    # SET / RESET / SET ... TO DEFAULT of one setting: its name ("" for other statements and
    # for RESET ALL), and whether it is SET LOCAL (ends with the transaction).
    setting: str = ""
    sets_local: bool = False
    # A batch: (start, end, line, column) of each statement in it; empty for one statement.
    parts: tuple[tuple[int, int, int, int], ...] = ()

    @property
    def sql(self) -> str:
        return self._data[self.offset : self._end].decode("utf-8")

    @property
    def tree(self) -> dict[str, Any]:
        """The parse tree, kept or parsed again from `sql` (the same tokens parse the same on
        their own as in the file)."""
        tree = self._tree
        if tree is not None:
            if self._base:
                _shift_locations(tree, self._base)
                self._base = 0
            return tree
        if self.parts:
            raise ValueError("a batch of statements has no single parse tree")
        recent = _RECENT.get(id(self))
        if recent is not None and recent[0] is self:
            return recent[1]
        with _no_cyclic_gc():
            doc = _decode(_pg().parse_sql_json(self.sql))
        stmts = doc.get("stmts") or [{}]
        tree = stmts[0].get("stmt") or {}
        if not isinstance(tree, dict):
            return {}
        _shift_locations(tree, self.offset)
        # Consumers read a statement's tree several times in a row: the last few parsed
        # again are kept (a bounded number, whatever the file's size).
        if len(_RECENT) >= _RECENT_TREES:
            del _RECENT[next(iter(_RECENT))]
        _RECENT[id(self)] = (self, tree)
        return tree

    def hold_tree(self) -> None:
        """Keeps the parse tree until release_tree() (a no-op when it is kept anyway)."""
        if self._tree is None and not self.parts:
            self._tree, self._base = self.tree, 0  # (parsed again: positions are the file's)

    def release_tree(self) -> None:
        """Lets go of the tree of a data statement in a large file (see the class note)."""
        if self.kind in _LIGHT and len(self._data) >= LARGE_FILE_BYTES:
            self._tree = None

    @property
    def statement_count(self) -> int:
        return len(self.parts) or 1

    @property
    def node(self) -> dict[str, Any]:
        """The statement's own fields (the dict under its kind)."""
        value = self.tree.get(self.kind)
        return value if isinstance(value, dict) else {}

    @property
    def sets_lock_timeout(self) -> bool:
        return self.setting == "lock_timeout"

    @property
    def sets_statement_timeout(self) -> bool:
        return self.setting == "statement_timeout"

    def to_core(self) -> _core.Statement:
        """The C++ core's plain struct of this statement (what the executor and tracer run):
        each of its fields from the field or property of the same name here."""
        s = _core.Statement()
        for name in _CORE_FIELDS:
            setattr(s, name, getattr(self, name))
        if self.parts:
            s.parts = [_core.StatementPart(*p) for p in self.parts]
        return s

    def __repr__(self) -> str:
        return f"<Statement {self.kind} at {self.line}:{self.column}>"


# The fields of the core's Statement, in the order it declares them (cpp/include/pgsafe/sql.hpp).
# `parts` (a batch's statements) holds core structs of their own, set apart in to_core().
_CORE_FIELDS = [
    k for k, v in vars(_core.Statement).items() if isinstance(v, property) and k != "parts"
]


@dataclass(frozen=True)
class Comment:
    """A `--` or `/* */` comment as the PostgreSQL scanner sees it (never one inside a string
    or a dollar-quoted body): where suppressions and annotations live."""

    text: str
    offset: int  # 0-based byte offset
    line: int
    column: int  # 1-based, in characters


# -- decoding ---------------------------------------------------------------------------------

_WHITE = " \t\n\r"


def _decode_iteratively(doc: str) -> Any:
    """json.loads without recursion, for trees deeper than the interpreter's recursion limit.
    Containers are opened and closed on an explicit stack; every scalar (string, number,
    literal) is read by the json module's own decoder (raw_decode at its position), so the
    reading of JSON is the standard library's. (The input is libpg_query's JSON, never SQL.)"""
    scalar = json.JSONDecoder().raw_decode
    stack: list[Any] = []  # open containers
    keys: list[Any] = []  # the pending key of each open object (None: none yet)
    root: Any = None
    done = False
    pos, end = 0, len(doc)

    def put(value: Any) -> None:
        nonlocal root, done
        if not stack:
            root, done = value, True
        elif type(stack[-1]) is list:
            stack[-1].append(value)
        elif keys[-1] is None:
            if type(value) is not str:
                raise ValueError(f"malformed parse tree at {pos}: a key that is not a string")
            keys[-1] = value
        else:
            stack[-1][keys[-1]] = value
            keys[-1] = None

    while pos < end:
        c = doc[pos]
        if c in _WHITE or c == "," or c == ":":
            pos += 1
        elif c == "{" or c == "[":
            if done:
                raise ValueError(f"malformed parse tree at {pos}: text after the end")
            stack.append({} if c == "{" else [])
            keys.append(None)
            pos += 1
        elif c == "}" or c == "]":
            if not stack or (c == "}") != (type(stack[-1]) is dict):
                raise ValueError(f"malformed parse tree at {pos}: unbalanced {c!r}")
            keys.pop()
            pos += 1
            put(stack.pop())
        else:
            if done:
                raise ValueError(f"malformed parse tree at {pos}: text after the end")
            try:
                value, pos = scalar(doc, pos)
            except json.JSONDecodeError as exc:
                raise ValueError(f"malformed parse tree at {pos}: {exc.msg}") from None
            put(value)
    if not done or stack:
        raise ValueError("truncated parse tree")
    return root


def _decode(doc: str) -> Any:
    try:
        return json.loads(doc)
    except RecursionError:
        return _decode_iteratively(doc)


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector off while a parse tree is built: it would scan the growing
    tree again and again (a file of 8,000 INSERTs splits four times slower with it on). A parse
    tree has no cycles; collection resumes afterwards."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


# Trees of data statements parsed again lately (Statement.tree): id -> (statement, tree).
_RECENT: dict[int, tuple[Statement, dict[str, Any]]] = {}
_RECENT_TREES = 8


def _shift_locations(tree: Any, delta: int) -> None:
    """Adds `delta` to every known position (`location`, `name_location`, ...) in a parse
    tree: a tree parsed from a piece of the file counts from the piece's start. Without
    recursion (trees may be thousands of levels deep)."""
    if not delta:
        return
    stack = [tree]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if type(node) is dict:
            for key, value in node.items():
                kind = type(value)
                if kind is int:
                    if value >= 0 and key.endswith("location"):
                        node[key] = value + delta
                elif kind is dict or kind is list:
                    push(value)
        else:
            for value in node:
                if type(value) is dict or type(value) is list:
                    push(value)


def walk_nodes(tree: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (node type, fields) pair below `tree`, depth first in document order (a node
    before its children, its children before its next sibling), without recursion: trees may
    be thousands of levels deep. A stack of iterators, each resumed where it left off."""
    stack: list[Iterator[tuple[str | None, Any]]] = [zip(repeat(None), (tree,))]
    push, pop = stack.append, stack.pop
    while stack:
        for key, value in stack[-1]:
            if type(value) is dict:
                if key is not None and key[:1].isupper():
                    yield key, value
                push(iter(value.items()))
                break
            if type(value) is list:
                push(zip(repeat(None), value))
                break
        else:
            pop()


def walk_dicts(tree: Any) -> Iterator[dict[str, Any]]:
    """Every dict of a parse tree, `tree` itself first, depth first in document order,
    without recursion."""
    stack: list[Iterator[Any]] = [iter((tree,))]
    push, pop = stack.append, stack.pop
    while stack:
        for value in stack[-1]:
            if type(value) is dict:
                yield value
                push(iter(value.values()))
                break
            if type(value) is list:
                push(iter(value))
                break
        else:
            pop()


# -- positions --------------------------------------------------------------------------------

# Every UTF-8 lead byte becomes "x", continuation bytes go: one ASCII character per character.
_ASCII_TABLE = bytes(range(128)) + b"x" * 128
_CONTINUATION = bytes(range(0x80, 0xC0))


def _ascii_twin(text: str) -> str:
    """`text` with every non-ASCII character replaced by the letter x: the PostgreSQL scanner
    treats both as identifier characters (and as content in strings and comments), so the
    tokens keep their spans, and character offsets stay those of `text`. It spares pglast's
    scanner its byte-to-character conversion, which is quadratic on non-ASCII text."""
    if text.isascii():
        return text
    return text.encode("utf-8").translate(_ASCII_TABLE, _CONTINUATION).decode("ascii")


def line_column(text: str, byte_offset: int) -> tuple[int, int]:
    """1-based line and character column of a 0-based byte offset into the UTF-8 `text`."""
    data = text.encode("utf-8")
    offset = min(max(byte_offset, 0), len(data))
    start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[start:offset].decode("utf-8", "replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


class _Cursor:
    """Line and column of increasing byte offsets, each piece of text counted once."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0
        self.line = 1
        self.column = 1

    def at(self, offset: int) -> tuple[int, int]:
        data = self.data
        if offset < self.offset:  # not expected; start over rather than count wrongly
            self.offset, self.line, self.column = 0, 1, 1
        newlines = data.count(b"\n", self.offset, offset)
        if newlines:
            self.line += newlines
            start = data.rfind(b"\n", self.offset, offset) + 1
            self.column = len(data[start:offset].decode("utf-8", "replace")) + 1
        else:
            self.column += len(data[self.offset : offset].decode("utf-8", "replace"))
        self.offset = offset
        return self.line, self.column


def _char_position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of the 0-based character index `index`."""
    prefix = text[:index]
    return prefix.count("\n") + 1, index - (prefix.rfind("\n") + 1) + 1


def _real_token_span(piece: bytes) -> tuple[int, int]:
    """Byte range of `piece` from its first token to its last that is not a comment."""
    text = piece.decode("utf-8", "replace")
    tokens = [t for t in _pg().scan(_ascii_twin(text)) if t.name not in _COMMENT_TOKENS]
    if not tokens:
        return 0, len(piece.rstrip(_SPACE))
    first = len(text[: tokens[0].start].encode("utf-8"))
    last = len(text[: tokens[-1].end + 1].encode("utf-8"))
    return first, last


def _trim(data: bytes, start: int, end: int) -> tuple[int, int]:
    """The statement's byte range without white space and comments around it. libpg_query
    starts a statement at its first token and ends it before the semicolon, comments and
    white space included; the scanner is asked only when a comment may be there."""
    piece = data[start:end]
    body = piece.strip(_SPACE)
    last_line = body[body.rfind(b"\n") + 1 :]
    if body.startswith((b"--", b"/*")) or body.endswith(b"*/") or b"--" in last_line:
        first, last = _real_token_span(piece)
        return start + first, start + last
    lead = len(piece) - len(piece.lstrip(_SPACE))
    return start + lead, start + lead + len(body)


# -- facts ------------------------------------------------------------------------------------


def _classify(s: Statement) -> None:
    k = s.kind
    if k in _DML:  # (first: a data statement's facts need no look at its tree)
        s.timeout_class = "dml"
        return
    n = s.node
    if k == "TransactionStmt":
        s.transaction_control = _TRANSACTION_WORDS.get(str(n.get("kind", "")), "transaction")
        s.timeout_class = "transaction"
    elif k == "IndexStmt":
        s.timeout_class = "index"
        s.index_name = str(n.get("idxname", ""))
        rel = n.get("relation") or {}
        s.index_schema = str(rel.get("schemaname", ""))
        s.index_table = str(rel.get("relname", ""))
        if n.get("concurrent"):
            s.non_transactional, s.reason = True, "CREATE INDEX CONCURRENTLY"
    elif k == "ReindexStmt":
        s.timeout_class = "index"
        params = n.get("params") or []
        if any(p.get("DefElem", {}).get("defname") == "concurrently" for p in params):
            s.non_transactional, s.reason = True, "REINDEX CONCURRENTLY"
        elif n.get("kind") in _REINDEX_NON_TRANSACTIONAL:
            s.non_transactional = True
            s.reason = _REINDEX_NON_TRANSACTIONAL[n["kind"]]
    elif k == "DropStmt" and n.get("concurrent"):
        s.non_transactional, s.reason = True, "DROP INDEX CONCURRENTLY"
    elif k == "AlterTableStmt":
        for c in n.get("cmds") or []:
            cmd = c.get("AlterTableCmd") if isinstance(c, dict) else None
            if not isinstance(cmd, dict):
                continue
            if cmd.get("subtype") == "AT_ValidateConstraint":
                s.timeout_class = "validate"
            part = (cmd.get("def") or {}).get("PartitionCmd") or {}
            if cmd.get("subtype") == "AT_DetachPartition" and part.get("concurrent"):
                s.non_transactional, s.reason = True, "DETACH PARTITION CONCURRENTLY"
    elif k == "AlterDomainStmt":
        if n.get("subtype") == "V":
            s.timeout_class = "validate"
    elif k == "VacuumStmt":
        s.timeout_class = "maintenance"
        if n.get("is_vacuumcmd"):
            s.non_transactional, s.reason = True, "VACUUM"
    elif k == "ClusterStmt":
        s.timeout_class = "maintenance"
        if not n.get("relation"):
            s.non_transactional, s.reason = True, "CLUSTER of every table"
    elif k == "DiscardStmt" and n.get("target") == "DISCARD_ALL":
        s.non_transactional, s.reason, s.timeout_class = True, "DISCARD ALL", "other"
    elif k == "AlterDatabaseStmt":
        for o in n.get("options") or []:
            if isinstance(o, dict) and o.get("DefElem", {}).get("defname") == "tablespace":
                s.non_transactional, s.reason = True, "ALTER DATABASE ... SET TABLESPACE"
    elif k in _NEVER_IN_TRANSACTION:
        s.non_transactional, s.reason = True, _NEVER_IN_TRANSACTION[k]
        s.timeout_class = "other"
    elif k in _OTHER:
        s.timeout_class = "other"
        if k == "VariableSetStmt":
            s.setting = str(n.get("name", ""))
            s.sets_local = bool(n.get("is_local"))


# -- splitting --------------------------------------------------------------------------------


def _parse_error(text: str, source: str, exc: Exception, before: str = "") -> ParseError:
    """The ParseError of `text` (a piece of the file after `before`), placed in the file."""
    message = str(exc.args[0]) if exc.args else str(exc)
    index = exc.args[1] if len(exc.args) > 1 else None
    if "stack depth limit exceeded" in message or message.startswith("memory exhausted"):
        message += (
            ": the statement nests too deeply for PostgreSQL's parser (the server refuses it"
            " too); split the expression or the nesting into smaller parts"
        )
    if index is None:
        index = _failing_statement(text, message)
    line, column = _char_position(text, index)
    if before:
        if line == 1:
            column += len(before) - (before.rfind("\n") + 1)
        line += before.count("\n")
    return ParseError(source, line, column, message)


def _failing_statement(text: str, message: str) -> int:
    """Character index of the statement the parser refused without saying where ("stack
    depth limit exceeded"), found by parsing the scanner's statements one by one; the end of
    the text when the error is at its end."""
    if "stack depth" not in message:
        return len(text)
    pg = _pg()
    try:
        pieces = pg.split(text, with_parser=False, only_slices=True)
    except pg.ParseError:
        return len(text)
    for piece in pieces:
        try:
            pg.parse_sql_json(text[piece])
        except pg.ParseError:
            return int(piece.start or 0)
    return len(text)


#: Bytes of SQL parsed at a time: a large file is parsed piece by piece, each piece ending
#: where a statement ends, so no parse tree of the whole file is ever built.
CHUNK_BYTES = 1 << 20


def _next_cut(data: bytes, at: int) -> int:
    """A candidate end of a piece: just after the first semicolon at the end of a line at or
    after `at` (the end of the data when there is none). Only a candidate: _clean_end checks
    with the parser that a statement really ends there."""
    ends = [i for i in (data.find(b";\n", at), data.find(b";\r\n", at)) if i >= 0]
    if not ends:
        return len(data)
    i = min(ends)
    return i + (2 if data[i + 1 : i + 2] == b"\n" else 3)


def _clean_end(piece: bytes, stmts: list[Any]) -> bool:
    """Whether the parser read `piece` as whole statements, the last one closed by the
    semicolon at the piece's end: then the parser reads the same statements in the whole file
    (that semicolon ends a statement at the top level whatever follows it). A cut inside a
    string, comment, dollar-quoted body, BEGIN ATOMIC body or parenthesis leaves a parse error
    or a last statement without its semicolon, and the piece is made longer."""
    if not stmts:
        return False
    last = stmts[-1]
    location, length = int(last.get("stmt_location", 0)), int(last.get("stmt_len", 0))
    end = location + length
    return length > 0 and piece[end : end + 1] == b";" and not piece[end + 1 :].strip(_SPACE)


def iter_statements(text: str, source: str = "<sql>") -> Iterator[Statement]:
    """The statements of SQL text one by one, parsed with PostgreSQL's parser a piece of
    about CHUNK_BYTES at a time (memory bounded by the piece, not the file). Raises ParseError
    naming source:line:column at the first broken statement, after yielding those before it:
    split_statements() is the all-or-nothing form. Step markers are not read here."""
    if "\x00" in text:
        raise ConfigError(f"{source}: contains a NUL byte")
    pg = _pg()
    data = text.encode("utf-8")
    cursor = _Cursor(data)
    size = len(data) if len(data) <= 2 * CHUNK_BYTES else CHUNK_BYTES
    pos, chars = 0, 0
    while pos < len(data):
        cut = len(data) if len(data) - pos <= size else _next_cut(data, pos + size)
        piece = data[pos:cut]
        piece_text = piece.decode("utf-8")
        try:
            doc = pg.parse_sql_json(piece_text)
        except pg.ParseError as exc:
            if cut < len(data):
                size *= 2  # maybe a cut inside a statement: try a longer piece
                continue
            raise _parse_error(piece_text, source, exc, text[:chars] if chars else "") from None
        with _no_cyclic_gc():
            stmts = _decode(doc).get("stmts") or []
            del doc
            clean = cut == len(data) or _clean_end(piece, stmts)
            parsed = list(_statements(data, pos, stmts, cursor)) if clean else []
        if not clean:
            size *= 2
            continue
        del stmts
        yield from parsed
        pos, chars, size = cut, chars + len(piece_text), CHUNK_BYTES


def split_statements(text: str, source: str = "<sql>") -> list[Statement]:
    """Split SQL text into statements with PostgreSQL's parser; raises ParseError naming
    source:line:column, and nothing when any statement is broken (never a partial result)."""
    out = list(iter_statements(text, source))
    if _mentions_pgsafe(text):
        _mark_steps(text, source, out)
    return out


def _mentions_pgsafe(text: str) -> bool:
    """Whether the text may hold a pgsafe comment (a step marker, a suppression)."""
    return "pgsafe:" in text.lower()


def batch_statements(
    statements: Iterable[Statement], max_bytes: int = CHUNK_BYTES
) -> list[Statement]:
    """The statements with each run of plain data statements (INSERT, UPDATE, DELETE, MERGE
    in the transaction, no step marker between them) joined into one batch of at most about
    `max_bytes`: the executor sends a batch as one query (one round trip, not one per row),
    and still knows each statement's place for an error (Statement.parts)."""
    out: list[Statement] = []
    run: list[Statement] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            first, last = run[0], run[-1]
            parts = tuple(
                (s.offset - first.offset, s._end - first.offset, s.line, s.column) for s in run
            )
            out.append(
                Statement(
                    first.offset,
                    first.line,
                    first.column,
                    last.end_line,
                    first.kind,
                    first._data,
                    last._end,
                    None,
                    timeout_class=first.timeout_class,
                    new_step=first.new_step,
                    parts=parts,
                )
            )
        run.clear()

    for s in statements:
        plain = s.kind in _LIGHT and s.timeout_class == "dml" and not s.non_transactional
        if not plain or s.new_step or (run and s._data is not run[0]._data):
            flush()
        if not plain:
            out.append(s)
            continue
        if run and s._end - run[0].offset > max_bytes:
            flush()
        s.release_tree()
        run.append(s)
    flush()
    return out


#: The comment that splits a migration into transactions: `-- pgsafe: step` (or `/* pgsafe:
#: step */`), optionally followed by a note. The statements after it run in a new transaction.
STEP_MARKER = "pgsafe: step"


def is_step_marker(comment: str) -> bool:
    """Whether a comment token's text (with its -- or /* */) is a step marker."""
    body = comment.strip()
    body = body[2:] if body.startswith("--") else body[2:-2] if body.startswith("/*") else body
    words = body.strip().lower().split(None, 2)
    return words[:2] == ["pgsafe:", "step"]


def _mark_steps(text: str, source: str, statements: list[Statement]) -> None:
    """Sets new_step on the statement after each step marker; a marker inside a statement is a
    ParseError (it would split nothing the reader can see)."""
    ends = [s._end for s in statements]
    at = 0
    for c in scan_comments(text):
        if not is_step_marker(c.text):
            continue
        while at < len(statements) and statements[at].offset < c.offset:
            if c.offset < ends[at]:
                raise ParseError(
                    source,
                    c.line,
                    c.column,
                    "a '-- pgsafe: step' marker must stand between two statements, not inside one",
                )
            at += 1
        if at < len(statements):
            statements[at].new_step = True


def _statements(data: bytes, base: int, stmts: list[Any], cursor: _Cursor) -> Iterator[Statement]:
    """The Statements of one parsed piece of the file that starts at byte `base`."""
    for raw in stmts:
        loc = base + int(raw.get("stmt_location", 0))
        length = int(raw.get("stmt_len", 0))
        first, last = _trim(data, loc, loc + length if length > 0 else len(data))
        node = raw.get("stmt") or {}
        kind = next(iter(node), "")
        line, column = cursor.at(first)
        end_line, _ = cursor.at(last)
        stmt = Statement(first, line, column, end_line, kind, data, last, node, base)
        _classify(stmt)
        stmt.release_tree()
        yield stmt


def scan_comments(text: str) -> list[Comment]:
    """The comments of SQL text as PostgreSQL's scanner sees them (none from inside strings or
    dollar-quoted bodies). Text the scanner refuses has no comments (the parser reports it).
    A large text is scanned a piece of about CHUNK_BYTES at a time, each piece ending just
    after a semicolon token (where the scanner is between tokens whatever follows), so the
    tokens of the whole file never exist at once."""
    pg = _pg()
    data = text.encode("utf-8")
    cursor = _Cursor(data)
    out: list[Comment] = []
    size = len(data) if len(data) <= 2 * CHUNK_BYTES else CHUNK_BYTES
    pos = 0
    while pos < len(data):
        cut = len(data) if len(data) - pos <= size else _next_cut(data, pos + size)
        piece = data[pos:cut].decode("utf-8")
        try:
            with _no_cyclic_gc():
                tokens = pg.scan(_ascii_twin(piece))
        except pg.ParseError:
            if cut < len(data):
                size *= 2
                continue
            return []
        if cut < len(data):
            body = piece.rstrip(_SPACE.decode())
            if not tokens or tokens[-1].name != "ASCII_59" or tokens[-1].end != len(body) - 1:
                size *= 2  # the cut is not just after a semicolon token: a longer piece
                continue
        chars, byte = 0, pos
        for t in tokens:
            if t.name not in _COMMENT_TOKENS:
                continue
            byte += len(piece[chars : t.start].encode("utf-8"))
            chars = t.start
            line, column = cursor.at(byte)
            out.append(Comment(piece[t.start : t.end + 1], byte, line, column))
        del tokens
        pos, size = cut, CHUNK_BYTES
    return out
