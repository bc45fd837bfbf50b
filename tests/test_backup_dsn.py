"""The DSN of a backup is read by libpq itself (the core's conninfo_parse): pg_dump and psql get
it without its password (which goes in PGPASSWORD, never on a command line `ps` shows), whatever
form the DSN has and whatever characters the password holds."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from helpers import pgsafe as run
from pgsafe import _core
from pgsafe.errors import ConfigError

PASSWORD = "a p@ss/w\\ord #1"  # space, @, /, backslash, #: each needs quoting somewhere


@pytest.fixture
def password_user_password() -> str:
    return PASSWORD


def test_conninfo_parse_reads_both_forms() -> None:
    pairs = dict(_core.conninfo_parse("host=/tmp port=5433 password='a b\\'c' dbname=x"))
    assert pairs["password"] == "a b'c" and pairs["port"] == "5433" and pairs["dbname"] == "x"
    pairs = dict(_core.conninfo_parse("postgresql://u:p%40ss@/db?host=/tmp&sslmode=disable"))
    assert pairs == {
        "user": "u",
        "password": "p@ss",
        "dbname": "db",
        "host": "/tmp",
        "sslmode": "disable",
    }
    with pytest.raises(ConfigError) as err:
        _core.conninfo_parse("host=/tmp password='unterminated secret")
    assert "secret" not in str(err.value)


def test_backup_with_a_password_in_either_dsn_form(pgsafe_server, password_user, tmp_path: Path):
    host, port = pgsafe_server.host, pgsafe_server.port
    quoted = "'" + PASSWORD.replace("\\", "\\\\").replace("'", "\\'") + "'"
    conninfo = f"host={host} port={port} dbname=postgres user={password_user} password={quoted}"
    url = (
        f"postgresql://{password_user}:{quote(PASSWORD, safe='')}@/postgres"
        f"?host={quote(host, safe='')}&port={port}"
    )
    for i, dsn in enumerate((conninfo, url)):
        out = tmp_path / f"b{i}"
        res = run("backup", "--db", dsn, "--out", str(out), "--json")
        assert res.returncode == 0, res.stderr
        assert PASSWORD not in res.stdout + res.stderr
        assert any(out.iterdir())
