"""Shared test configuration: kept minimal on purpose, fixtures live beside the tests using them
unless several modules use them (password_user, record_file); shared plain helpers are in
helpers.py.

The version matrix: pgsafe_server, pgsafe_template and pgsafe_db (the package's pytest11
fixtures, redefined here with declared dependencies so they follow `pg_major`) run on one
PostgreSQL major per session parameter. Tests marked ``pg_matrix`` (a module's ``pytestmark``
or one test) run on every major of MATRIX (15, 16 and 18: Debian's server and the two server
wheels of the dev extra); the rest once, on DEFAULT_MAJOR (15 when installed: the one server
here with contrib extensions and ICU). ``PGSAFE_TEST_MAJORS=15,18`` narrows the matrix. A
major that is not installed is a skipped test naming how to get it, never a silent pass.
pytester is enabled so plugin behaviour can be tested in a subprocess.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import wait_for
from pgsafe import pgbin
from pgsafe.server import TemporaryDatabase, TemporaryServer

pytest_plugins = ["pytester"]

MATRIX = (15, 16, 18)
_FOUND = sorted({i.major for i in pgbin.installations() if i.server})
DEFAULT_MAJOR = 15 if 15 in _FOUND else (_FOUND[-1] if _FOUND else 15)


def _matrix() -> tuple[int, ...]:
    wanted = os.environ.get("PGSAFE_TEST_MAJORS")
    if not wanted:
        return MATRIX
    return tuple(int(x) for x in re.findall(r"\d+", wanted))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pg_matrix: run on every PostgreSQL major of the matrix (15, 16, 18), not only the default",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "pg_major" not in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("pg_matrix") is None:
            return
        metafunc.fixturenames.append("pg_major")  # e.g. a test that starts its own server
    majors = _matrix() if metafunc.definition.get_closest_marker("pg_matrix") else (DEFAULT_MAJOR,)
    # Every test on a server gets a parameter, so pytest groups the tests of each major and
    # starts each major's session server once.
    metafunc.parametrize("pg_major", majors, indirect=True, scope="session", ids=lambda m: f"pg{m}")


@pytest.fixture(scope="session")
def pg_major(request: pytest.FixtureRequest) -> int:
    """The PostgreSQL major this test runs on (see the module docstring)."""
    major = int(getattr(request, "param", DEFAULT_MAJOR))
    if major not in _FOUND:
        pytest.skip(
            f"PostgreSQL {major} is not installed here (found {_FOUND}): {pgbin.how_to_get(major)}"
        )
    return major


@pytest.fixture(scope="session")
def pgsafe_server(pg_major: int) -> Iterator[TemporaryServer]:
    """A throwaway server of `pg_major` for the session (one per major)."""
    with TemporaryServer(pg_version=pg_major) as server:
        yield server


@pytest.fixture(scope="session")
def pgsafe_template(pgsafe_server: TemporaryServer) -> str:
    """The empty database every pgsafe_db is cloned from (as the plugin's own fixture)."""
    pgsafe_server.create_database("pgsafe_template")
    return "pgsafe_template"


@pytest.fixture
def pgsafe_db(
    request: pytest.FixtureRequest, pgsafe_server: TemporaryServer, pgsafe_template: str
) -> Iterator[TemporaryDatabase]:
    """A fresh database cloned from pgsafe_template, dropped after the test."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")
    name = f"pgsafe_main_{next(_numbers)}_{slug}".encode()[:63].decode("ascii", "ignore")
    database = pgsafe_server.new_database(template=pgsafe_template, name=name.rstrip("_"))
    try:
        yield database
    finally:
        database.drop()


_numbers = iter(range(1, 1 << 30))


@pytest.fixture
def target(pgsafe_server: TemporaryServer) -> Iterator[TemporaryDatabase]:
    """A second, empty database on pgsafe_server: where a test restores to (test_backup.py,
    test_restore_load.py); dropped after."""
    with pgsafe_server.new_database(prefix="restore") as db:
        yield db


@pytest.fixture
def record_file(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty record.jsonl in the pytester directory, its path in $PGSAFE_RECORD: the inner
    tests of test_server.py and test_pytest_plugin.py append a JSON line each (read it back
    with helpers.read_jsonl)."""
    record = pytester.path / "record.jsonl"
    record.touch()
    monkeypatch.setenv("PGSAFE_RECORD", str(record))
    return record


@pytest.fixture
def password_user_password() -> str:
    """The password of `password_user` (test_conn.py logs in with it); a module may override
    this fixture with its own."""
    return "right-pass"


@pytest.fixture
def password_user(pgsafe_server: TemporaryServer, password_user_password: str) -> Iterator[str]:
    """Role `pwuser` that must log in with its password: a scram-sha-256 line for it ahead of the
    server's trust rules in pg_hba.conf (owner and mode kept), restored and the role dropped after.
    """
    hba = Path(pgsafe_server.datadir) / "pg_hba.conf"
    original = hba.read_bytes()
    st = hba.stat()
    admin = pgsafe_server.connect()
    try:
        admin.execute("DROP ROLE IF EXISTS pwuser")
        admin.execute(f"CREATE ROLE pwuser LOGIN PASSWORD '{password_user_password}'")
        hba.write_bytes(b"local all pwuser scram-sha-256\n" + original)
        os.chown(hba, st.st_uid, st.st_gid)
        os.chmod(hba, st.st_mode)
        assert admin.execute("SELECT pg_reload_conf()").rows == [("t",)]
        wait_for(
            lambda: bool(
                admin.execute(
                    "SELECT 1 FROM pg_hba_file_rules WHERE 'pwuser' = ANY(user_name)"
                ).rows
            ),
            what="pg_hba.conf reload",
        )
        yield "pwuser"
    finally:
        hba.write_bytes(original)
        os.chown(hba, st.st_uid, st.st_gid)
        admin.execute("SELECT pg_reload_conf()")
        admin.execute("DROP ROLE IF EXISTS pwuser")
        admin.close()
