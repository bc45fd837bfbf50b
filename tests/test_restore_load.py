"""How restore loads data, against real PostgreSQL: the COPY BINARY it sends in place of a
backup's COPY text is byte for byte what the server itself writes for the same rows (every type
it rewrites, with their edge values, in several time zones); text that is not in its canonical
form is left as text; restored tables are loaded frozen, except a table too big for one
worker's share, which is split over the workers; a dump's last index is built with its table."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers import cli_env, has_extension
from pgsafe import _core
from pgsafe.backup import core as bk
from pgsafe.backup.datafp import fingerprint
from pgsafe.server import TemporaryDatabase

# Runs on every major of the version matrix (tests/conftest.py).
pytestmark = pytest.mark.pg_matrix

# (column type, values as SQL expressions); every column also gets a NULL row.
TYPES: list[tuple[str, list[str]]] = [
    ("bool", ["true", "false"]),
    ("int2", ["-32768", "32767", "0"]),
    ("int4", ["-2147483648", "2147483647", "7"]),
    ("int8", ["-9223372036854775808", "9223372036854775807", "-1"]),
    ("oid", ["0", "4294967295"]),
    (
        "float4",
        [
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "'-0'",
            "1.1",
            "'1e-45'",
            "'3.4028235e38'",
            "'1.17549435e-38'",
            "'0.3'",
        ],
    ),
    (
        "float8",
        [
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "'-0'",
            "0.1",
            "'5e-324'",
            "'1.7976931348623157e308'",
            "'2.2250738585072014e-308'",
            "1/3.0",
            "'1e22'",
        ],
    ),
    (
        "numeric",
        [
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "0",
            "'0.000'",
            "'-0.5'",
            "'123456789.123456789'",
            "'10000'",
            "'0.0001'",
            "'1e-20'",
            "'-99999999999999999999999.00000'",
            "'1e100'",
            "pi()::numeric(40, 38)",
            "'100000000.00000001'",
        ],
    ),
    ("numeric(12, 2)", ["'1.5'", "'-0.01'", "'9999999999.99'"]),
    (
        "date",
        [
            "'infinity'",
            "'-infinity'",
            "'2000-01-01'",
            "'1999-12-31'",
            "'4713-01-01 BC'",
            "'0001-01-01'",
            "'0001-12-31 BC'",
            "'2024-02-29'",
            "'5874897-12-31'",
            "'1900-03-01'",
            "'0099-07-04'",
            "'10000-01-01'",
        ],
    ),
    ("time", ["'00:00'", "'24:00'", "'13:45:59.123456'", "'01:02:03.5'"]),
    (
        "timestamp",
        [
            "'infinity'",
            "'-infinity'",
            "'2000-01-01'",
            "'1970-01-01 00:00:00.000001'",
            "'4713-01-01 00:00 BC'",
            "'294276-12-31 23:59:59.999999'",
            "'1066-10-14 09:00:00.5 BC'",
            "'1999-12-31 23:59:59.999999'",
        ],
    ),
    (
        "timestamptz",
        [
            "'infinity'",
            "'-infinity'",
            "'2024-06-01 12:00+05:30'",
            "'1890-01-01 00:00 Europe/Amsterdam'",
            "'1850-01-01 00:00 Asia/Kolkata'",
            "'2000-01-01 00:00:00.000001+00'",
            "'0044-03-15 12:00+00 BC'",
            "'2024-03-31 02:30 UTC'",
        ],
    ),
    (
        "uuid",
        [
            "'00000000-0000-0000-0000-000000000000'",
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            "'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'",
        ],
    ),
    (
        "bytea",
        [
            "''::bytea",
            "'\\x00ff5c0a09'::bytea",
            "(SELECT string_agg(set_byte('\\x00'::bytea, 0, g), ''::bytea) "
            "FROM generate_series(0, 255) g)",
        ],
    ),
    (
        "text",
        [
            "''",
            "E'tab\\there\\nnew\\\\back\\r\\b\\f\\v end'",
            "'ünïcødé ✓'",
            "'\\N'",
            "'\\.'",
            "repeat('x', 70000)",
            "E'\\\\x41'",
        ],
    ),
    ("varchar(10)", ["'abc'", "''"]),
    ("char(5)", ["'ab'", "''", "'abcde'"]),
    ("name", ["'a name'"]),
    ("json", ['\'{"b": [1, 2.50, "x\\ty"],   "a": null}\'']),
    ("jsonb", ['\'{"b": [1, 2.50, "x\\ty\\u00e9"], "a": null}\'', "'\"\\\\\"'", "'[]'"]),
]

SETTINGS = (
    "SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; "
    "SET bytea_output = 'hex'; SET TimeZone = "
)


def copy_text(db: TemporaryDatabase, table: str, zone: str) -> bytes:
    rows: list[bytes] = []
    with db.connect() as conn:
        conn.execute(SETTINGS + f"'{zone}'")
        conn.copy_out(f"COPY {table} TO STDOUT", rows.append)
    return b"".join(rows)


def copy_binary(db: TemporaryDatabase, table: str) -> bytes:
    done = subprocess.run(
        [str(db.server.bindir / "psql"), "-X", "-q", "-d", db.dsn, "-c",
         f"COPY {table} TO STDOUT (FORMAT binary)"],
        capture_output=True, env=cli_env(), check=True,
    )  # fmt: skip
    return done.stdout


def type_oid(db: TemporaryDatabase, table: str) -> int:
    with db.connect() as conn:
        r = conn.execute(
            "SELECT atttypid FROM pg_attribute WHERE attrelid = $1::regclass AND attnum = 1",
            [table],
        )
    return int(r.rows[0][0] or 0)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "Europe/Amsterdam"])
def test_binary_rewrite_is_what_the_server_writes(pgsafe_db: TemporaryDatabase, zone: str) -> None:
    with pgsafe_db.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for i, (typ, values) in enumerate(TYPES):
            conn.execute(f"CREATE TABLE t{i} (v {typ})")
            conn.execute(
                f"INSERT INTO t{i} VALUES "
                + ", ".join(f"(({v})::{typ})" for v in values)
                + ", (NULL)"
            )
    for i, (typ, _values) in enumerate(TYPES):
        text = copy_text(pgsafe_db, f"t{i}", zone)
        binary = copy_binary(pgsafe_db, f"t{i}")
        converted = _core.copy_text_to_binary([type_oid(pgsafe_db, f"t{i}")], text)
        assert converted is not None, f"{typ}: no rewrite for {text[:200]!r}"
        assert converted == binary, f"{typ} ({zone}): rewrite differs from the server's"


def test_several_columns_and_rows(pgsafe_db: TemporaryDatabase) -> None:
    with pgsafe_db.connect() as conn:
        conn.execute(
            "CREATE TABLE m (a int, b text, c numeric, d timestamptz, e jsonb, f bytea, g bool)"
        )
        conn.execute(
            "INSERT INTO m SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE E'r\\t' || g END, g / 7.0, "
            "timestamptz '2024-01-01 00:00+00' + g * interval '1.5 s', "
            "jsonb_build_object('g', g, 's', repeat('y', g % 9)), int4send(g), g % 2 = 0 "
            "FROM generate_series(1, 5000) g"
        )
        oids = [
            int(r[0] or 0)
            for r in conn.execute(
                "SELECT atttypid FROM pg_attribute WHERE attrelid = 'm'::regclass AND attnum > 0 "
                "ORDER BY attnum"
            ).rows
        ]
    assert _core.copy_text_to_binary(oids, copy_text(pgsafe_db, "m", "UTC")) == copy_binary(
        pgsafe_db, "m"
    )


@pytest.mark.parametrize(
    ("oid", "field"),
    [
        (23, "\\061"),  # an escaped digit: COPY FROM text reads 1, the rewrite does not guess
        (23, "2147483648"),  # out of range
        (23, " 1"),
        (16, "true"),
        (1082, "2000-1-1"),
        (1082, "2000-02-30"),
        (1082, "01/02/2000"),  # not DateStyle ISO
        (1114, "2000-01-01 00:00"),
        (1114, "2000-01-01 24:00:00"),
        (1184, "2000-01-01 00:00:00"),  # no zone
        (1700, "1e5"),
        (1700, "+1"),
        (1700, ".5"),
        (17, "\\\\000"),  # bytea escape output
        (17, "\\\\x0"),
        (2950, "a0eebc999c0b4ef8bb6d6bb9bd380a11"),
        (701, "0x1p3"),
        (701, "+1"),
    ],
)
def test_text_not_in_canonical_form_is_not_rewritten(oid: int, field: str) -> None:
    assert _core.copy_text_to_binary([oid], field.encode() + b"\n") is None


def test_wrong_number_of_fields_is_not_rewritten() -> None:
    assert _core.copy_text_to_binary([23, 23], b"1\t2\t3\n") is None
    assert _core.copy_text_to_binary([23, 23], b"1\n") is None
    assert _core.copy_text_to_binary([23], b"1") is None  # no newline: not a whole line
    assert _core.copy_text_to_binary([600], b"(1,2)\n") is None  # point: no rewrite


def frozen_and_visible(db: TemporaryDatabase, table: str) -> tuple[int, int, int]:
    """(all-visible, all-frozen, total) among the pages of `table` that hold rows. Empty pages
    are left out: PostgreSQL 16 and later extend a relation by several pages at once during a
    COPY, and the ones it did not fill stay unmarked."""
    with db.connect() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_visibility")
        r = conn.execute(
            "SELECT count(*) FILTER (WHERE v.all_visible), count(*) FILTER (WHERE v.all_frozen),"
            f" count(*) FROM pg_visibility($1::regclass) v WHERE v.blkno IN"
            f" (SELECT DISTINCT (ctid::text::point)[0]::bigint FROM {table})",
            [table],
        )
    a, b, c = r.rows[0]
    return int(a or 0), int(b or 0), int(c or 0)


def test_restore_loads_every_type_frozen_and_splits_only_the_dominant_table(
    pgsafe_db: TemporaryDatabase, target: TemporaryDatabase, tmp_path: Path
) -> None:
    columns = ", ".join(f"c{i} {typ}" for i, (typ, _v) in enumerate(TYPES))
    with pgsafe_db.connect() as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('sad', 'ok')")
        conn.execute("CREATE DOMAIN positive AS int CHECK (VALUE > 0)")
        conn.execute(f"CREATE TABLE everything (id int PRIMARY KEY, m mood, p positive, {columns})")
        longest = max(len(v) for _t, v in TYPES)
        for r in range(longest + 1):
            values = ", ".join(
                f"({v[r]})::{t}" if r < len(v) else "NULL" for t, v in TYPES
            )  # fmt: skip
            mood = "'ok'" if r % 2 else "'sad'"
            conn.execute(f"INSERT INTO everything VALUES ({r}, {mood}, {r + 1}, {values})")
        # The dominant table: more than half of the data, in many chunks.
        conn.execute("CREATE TABLE big (id int PRIMARY KEY, pad text)")
        conn.execute("INSERT INTO big SELECT g, repeat('p', 200) FROM generate_series(1, 20000) g")
        conn.execute("CREATE TABLE small (id int PRIMARY KEY, s text)")
        conn.execute("INSERT INTO small SELECT g, 's' || g FROM generate_series(1, 3000) g")
    result = bk.backup(pgsafe_db.dsn, out_dir=tmp_path, chunk_pages=16, workers=2)
    doc = json.loads(result.manifest_path.read_text())
    assert sum(c["table"] == "public.big" for c in doc["chunks"] if c["kind"] == "data") > 4
    bk.restore(result.path, target.dsn, workers=2, progress=False)
    tables = ["public.everything", "public.big", "public.small"]
    restored = [(f.table, f.rows, f.digest) for f in fingerprint(target.dsn, tables)]
    assert restored == [(f.table, f.rows, f.digest) for f in fingerprint(pgsafe_db.dsn, tables)]
    if not has_extension(target, "pg_visibility"):
        return  # pgserver's PostgreSQL 16 has no contrib modules: the load itself was checked
    # Whole tables are loaded with COPY FREEZE: every page frozen, no later vacuum needed.
    for table in ("everything", "small"):
        visible, frozen, pages = frozen_and_visible(target, table)
        assert pages > 0 and visible == pages and frozen == pages, table
    # The dominant table's chunks were spread over both workers, each in its own transaction.
    _v, frozen, pages = frozen_and_visible(target, "big")
    assert pages > 0 and frozen == 0


def test_the_last_index_of_the_dump_is_built_with_its_table(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    with pgsafe_db.connect() as conn:
        conn.execute("CREATE TABLE a (id int PRIMARY KEY)")
        conn.execute("CREATE TABLE z (id int PRIMARY KEY, v int)")
        conn.execute("CREATE INDEX z_v ON z (v)")
    result = bk.backup(pgsafe_db.dsn, out_dir=tmp_path)
    doc = json.loads(result.manifest_path.read_text())
    post = [c for c in bk._chunks(doc) if c.kind == "post-data"]
    sql = b"".join(
        _core.read_backup_chunk(str(result.path), c, _core.Compression.zstd, b"", doc["file_id"])
        for c in post
    )
    after, _parallel, rest, _settings = bk._plan_post_data(sql, {"public.a", "public.z"})
    assert sorted(after) == ["public.a", "public.z"]
    assert len(after["public.z"]) == 2  # the key and the index
    assert b"CREATE INDEX" not in rest and b"PRIMARY KEY" not in rest


POST_DATA = b"""-- sequence values
SELECT pg_catalog.setval('public.s', 5, true);
--
-- PostgreSQL database dump
--

\\restrict abc123

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

SET default_tablespace = '';

--
-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.t
    ADD CONSTRAINT t_pkey PRIMARY KEY (id);

--
-- Name: T k; Type: CONSTRAINT; Schema: Odd Schema; Owner: -
--

ALTER TABLE ONLY "Odd Schema"."T"
    ADD CONSTRAINT k UNIQUE (v);

SET default_tablespace = fast;

--
-- Name: t_v; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX t_v ON public.t USING btree (v) WHERE (v <> 'ON public.x'::text);

ALTER TABLE public.t CLUSTER ON t_v;

--
-- Name: v_i; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX v_i ON public.v USING btree (id);

--
-- Name: t t_fk; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.t
    ADD CONSTRAINT t_fk FOREIGN KEY (v) REFERENCES "Odd Schema"."T"(v);

--
-- PostgreSQL database dump complete
--

\\unrestrict abc123

"""


def test_post_data_is_planned_from_its_parse_trees() -> None:
    """Index and key builds are told from the rest by the parser, not by their text: a string
    that reads like a table name does not count, a quoted name matches the manifest's, a
    foreign key and CLUSTER ON wait for every build, and a build carries the settings pg_dump
    placed before it."""
    after, parallel, rest, settings = bk._plan_post_data(
        POST_DATA, {"public.t", '"Odd Schema"."T"'}
    )
    assert sorted(after) == ['"Odd Schema"."T"', "public.t"]
    pkey, index = after["public.t"]
    # Each build sets what pg_dump wrote it under (they run on shared connections, any order).
    preamble = (
        "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n"
    )
    assert pkey == (
        preamble + "SET default_tablespace = '';\n"
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);\n"
    )
    assert index == (
        preamble + "SET default_tablespace = fast;\n"
        "CREATE INDEX t_v ON public.t USING btree (v) WHERE (v <> 'ON public.x'::text);\n"
    )
    assert after['"Odd Schema"."T"'] == [
        preamble + "SET default_tablespace = '';\n"
        'ALTER TABLE ONLY "Odd Schema"."T"\n    ADD CONSTRAINT k UNIQUE (v);\n'
    ]
    # Not a loaded table (a view, say): built after the data, in parallel.
    assert parallel == [
        (preamble + "SET default_tablespace = fast;\n"
         "CREATE INDEX v_i ON public.v USING btree (id);\n").encode()
    ]  # fmt: skip
    assert settings == (preamble + "SET default_tablespace = '';\n").encode()
    text = rest.decode()
    assert "CREATE INDEX" not in text and "PRIMARY KEY" not in text and "UNIQUE" not in text
    assert text.index("setval") < text.index("CLUSTER ON") < text.index("FOREIGN KEY")
    assert "\\restrict" not in text and "\\unrestrict" not in text


def test_post_data_the_parser_cannot_read_runs_whole() -> None:
    broken = b"SET statement_timeout = 0;\nCREATE INDEX i ON public.t USING btree (v;\n"
    assert bk._plan_post_data(broken, {"public.t"}) == ({}, [], broken, b"")
