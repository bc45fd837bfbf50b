"""Parse trees of any depth (issue 16): a statement with thousands of chained operators parses,
lints and applies like any other; one nested beyond what PostgreSQL's parser accepts is a
syntax-error finding with its line and column, never a RecursionError traceback or a crash."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers import pgsafe, write
from pgsafe import errors as e
from pgsafe.analysis.statement import (
    _decode_iteratively,
    split_statements,
    walk_dicts,
    walk_nodes,
)
from pgsafe.lint import lint_text
from pgsafe.server import TemporaryDatabase

CHAIN = 2000  # PostgreSQL runs this many chained operators (15 refuses 5,000 on the server)
HUGE = 100_000


def scalar(db: TemporaryDatabase, sql: str) -> str | None:
    with db.connect() as conn:
        ((value,),) = conn.execute(sql).rows
    return value


def chain(n: int, term: str = "1", op: str = "+") -> str:
    return f" {op} ".join([term] * n)


def test_two_thousand_chained_operators_split_like_any_statement() -> None:
    text = f"SELECT 1;\nSELECT {chain(CHAIN)};\nSELECT 3;\n"
    got = split_statements(text)
    assert [s.kind for s in got] == ["SelectStmt"] * 3
    assert [s.line for s in got] == [1, 2, 3]
    assert got[1].sql == f"SELECT {chain(CHAIN)}"
    # The tree is deeper than Python's recursion limit, and complete.
    depth = sum(1 for kind, _ in walk_nodes(got[1].tree) if kind == "A_Expr")
    assert depth == CHAIN - 1
    assert depth > sys.getrecursionlimit()


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT {chain(CHAIN)}",
        f"CREATE VIEW v AS SELECT {chain(CHAIN, 'a', '||')} AS x FROM t",
        f"UPDATE t SET a = {chain(CHAIN, 'a')} WHERE id = 1",
        f"ALTER TABLE t ADD CONSTRAINT c CHECK ({chain(CHAIN, 'a')} > 0) NOT VALID",
        f"ALTER TABLE t ADD COLUMN b int DEFAULT ({chain(CHAIN)})",
        f"CREATE INDEX CONCURRENTLY i ON t (({chain(CHAIN, 'a')}))",
        f"INSERT INTO t (a) SELECT {chain(CHAIN, 'a')} FROM t",
        "SELECT NULL" + "::text" * CHAIN,
    ],
)
def test_deep_statements_lint_without_a_syntax_error(sql: str) -> None:
    result = lint_text(f"SET lock_timeout = '2s';\n{sql};\n", "deep.sql")
    assert not [f for f in result.findings if f.rule == "syntax-error"], result.findings


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"SELECT {chain(HUGE)}", "stack depth limit exceeded"),
        (f"SELECT {chain(HUGE, 'a', '||')} FROM t", "stack depth limit exceeded"),
        ("SELECT " + "(" * HUGE + "1" + ")" * HUGE, "memory exhausted"),
    ],
)
def test_too_deep_is_a_finding_with_its_position(body: str, message: str) -> None:
    text = f"SELECT 1;\n\n  {body};\nSELECT 2;\n"
    (finding,) = lint_text(text, "deep.sql").findings
    assert finding.rule == "syntax-error" and finding.severity == "error"
    assert finding.message.startswith(message), finding.message
    assert "nests too deeply" in finding.message
    assert finding.line == 3  # the statement (or the token) the parser refused
    assert finding.column >= 3

    with pytest.raises(e.ParseError) as info:
        split_statements(text, "deep.sql")
    assert info.value.file == "deep.sql" and info.value.line == 3


def test_too_deep_from_the_cli_is_one_finding_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "001_deep.sql"
    path.write_text(f"SELECT {chain(HUGE)};\n")
    res = pgsafe("lint", str(path), "--format", "json")
    assert res.returncode == 1, (res.stdout, res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    (finding,) = json.loads(res.stdout)["findings"]
    assert (finding["rule"], finding["line"], finding["column"]) == ("syntax-error", 1, 1)

    nested = tmp_path / "002_nested.sql"
    nested.write_text("SELECT " + "(" * HUGE + "1" + ")" * HUGE + ";\n")
    res = pgsafe("lint", str(nested), "--format", "json")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert [f["rule"] for f in json.loads(res.stdout)["findings"]] == ["syntax-error"]


def test_iterative_decoder_agrees_with_json() -> None:
    doc = json.dumps(
        {"a": [1, -2.5, 1e3, True, False, None, 'q"\\u00e9\n'], "b": {"c": {}, "d": []}}
    )
    assert _decode_iteratively(doc) == json.loads(doc)
    deep = "[" * 5000 + "]" * 5000
    got = _decode_iteratively(deep)
    for _ in range(4999):
        (got,) = got
    assert got == []
    # Objects nested deeper than the recursion limit, strings holding brackets and escapes.
    depth = sys.getrecursionlimit() * 3
    nested = '{"k": ' * depth + '"]}[\\"\\u00e9"' + "}" * depth
    got = _decode_iteratively(nested)
    for _ in range(depth):
        got = got["k"]
    assert got == ']}["\u00e9'


@pytest.mark.parametrize(
    "doc", ['{"a": 1', '{"a": 1]', "[1, 2", '{"a" 1}x', "[1] 2", "{1: 2}", '["\\x"]', "[tru]"]
)
def test_iterative_decoder_refuses_malformed_json(doc: str) -> None:
    with pytest.raises(ValueError):
        _decode_iteratively(doc)


def test_two_thousand_chained_operators_apply(pgsafe_db: TemporaryDatabase, tmp_path: Path) -> None:
    migs = write(
        tmp_path / "m",
        {
            "001_deep.sql": "CREATE TABLE deep (a text);\n"
            f"CREATE VIEW deep_v AS SELECT {chain(CHAIN, 'a', '||')} AS x FROM deep;\n"
            f"INSERT INTO deep VALUES ('x');\nSELECT {chain(CHAIN)};\n"
        },
    )
    res = pgsafe("apply", str(migs), "--db", pgsafe_db.dsn, "--apply", "--log-dir", str(tmp_path))
    assert res.returncode == 0, (res.stdout, res.stderr[-2000:])
    assert scalar(pgsafe_db, "SELECT length(x) FROM deep_v") == str(CHAIN)


def test_too_deep_apply_fails_before_touching_the_database(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    migs = write(
        tmp_path / "m",
        {"001_deep.sql": f"CREATE TABLE never (a int);\nSELECT {chain(HUGE)};\n"},
    )
    res = pgsafe("apply", str(migs), "--db", pgsafe_db.dsn, "--apply", "--log-dir", str(tmp_path))
    assert res.returncode == 5, (res.stdout, res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    assert "001_deep.sql:2:1: stack depth limit exceeded" in res.stderr
    assert scalar(pgsafe_db, "SELECT to_regclass('never') IS NULL") == "t"


def test_walkers_visit_in_document_order_like_a_recursive_walk() -> None:
    def nodes(node: object) -> list[str]:
        out: list[str] = []
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, dict) and key[:1].isupper():
                    out.append(key)
                out += nodes(value)
        elif isinstance(node, list):
            for item in node:
                out += nodes(item)
        return out

    def dicts(node: object) -> list[int]:
        if isinstance(node, dict):
            return [id(node)] + [i for v in node.values() for i in dicts(v)]
        if isinstance(node, list):
            return [i for v in node for i in dicts(v)]
        return []

    corpus = Path(__file__).parent / "lint_corpus"
    checked = 0
    for path in sorted(corpus.rglob("*.sql")):
        for stmt in split_statements(path.read_text(), str(path)):
            assert [k for k, _ in walk_nodes(stmt.tree)] == nodes(stmt.tree), path
            assert [id(d) for d in walk_dicts(stmt.tree)] == dicts(stmt.tree), path
            checked += 1
    assert checked > 300
