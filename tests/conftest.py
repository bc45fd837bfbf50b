"""Shared test configuration: kept minimal on purpose, fixtures live beside the tests using them
unless several modules use them (password_user); shared plain helpers are in helpers.py.

The pgsafe fixtures (pgsafe_server, pgsafe_template, pgsafe_db) come from the package's own
pytest11 entry point; pytester is enabled so plugin behaviour can be tested in a subprocess.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import wait_for
from pgsafe.server import TemporaryDatabase, TemporaryServer

pytest_plugins = ["pytester"]


@pytest.fixture
def target(pgsafe_server: TemporaryServer) -> Iterator[TemporaryDatabase]:
    """A second, empty database on pgsafe_server: where a test restores to (test_backup.py,
    test_restore_load.py); dropped after."""
    with pgsafe_server.new_database(prefix="restore") as db:
        yield db


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
