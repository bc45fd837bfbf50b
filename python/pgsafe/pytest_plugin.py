"""pytest fixtures backed by a throwaway PostgreSQL server (registered as the ``pgsafe`` plugin).

One :class:`~pgsafe.server.TemporaryServer` per session (per xdist worker), one template
database, and a fresh database cloned from it for every test that asks for ``pgsafe_db``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from pgsafe.server import TemporaryDatabase, TemporaryServer

__all__ = ["pgsafe_db", "pgsafe_server", "pgsafe_template"]

TEMPLATE_NAME = "pgsafe_template"

_BINDIR_HELP = (
    "directory holding the PostgreSQL server binaries (initdb, pg_ctl, postgres) for the "
    "pgsafe throwaway server; default: $PGSAFE_PG_BINDIR, pg_config, /usr/lib/postgresql/*/bin"
)

_db_numbers = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgsafe", "pgsafe throwaway PostgreSQL")
    group.addoption("--pgsafe-pg-bindir", dest="pgsafe_pg_bindir", default=None, help=_BINDIR_HELP)
    parser.addini("pgsafe_pg_bindir", help=_BINDIR_HELP, default=None)


def _option(config: pytest.Config, name: str) -> str | None:
    # The command line wins over the ini file, as in pytest-postgresql.
    value = config.getoption(name) or config.getini(name)
    return str(value) if value else None


def _worker_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


def _database_name(request: pytest.FixtureRequest) -> str:
    # Unique per session and worker; the test name only helps whoever reads pg_stat_activity.
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")
    name = f"pgsafe_{_worker_id(request.config)}_{next(_db_numbers)}_{slug}"
    return name.encode()[:63].decode("ascii", "ignore").rstrip("_")


@pytest.fixture(scope="session")
def pgsafe_server(request: pytest.FixtureRequest) -> Iterator[TemporaryServer]:
    """A throwaway PostgreSQL server for the whole session (one per xdist worker)."""
    server = TemporaryServer(bindir=_option(request.config, "pgsafe_pg_bindir"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pgsafe_template(pgsafe_server: TemporaryServer) -> str:
    """Name of the (empty) database every ``pgsafe_db`` is cloned from.

    Override it to load a schema once per session; leave no connection open to it, since
    PostgreSQL cannot clone a database someone is connected to.
    """
    pgsafe_server.create_database(TEMPLATE_NAME)
    return TEMPLATE_NAME


@pytest.fixture
def pgsafe_db(
    request: pytest.FixtureRequest, pgsafe_server: TemporaryServer, pgsafe_template: str
) -> Iterator[TemporaryDatabase]:
    """A fresh database cloned from ``pgsafe_template``, dropped after the test.

    The value has ``.name``, ``.dsn``, ``.url``, ``.server`` and ``.connect()``.
    """
    database = pgsafe_server.new_database(template=pgsafe_template, name=_database_name(request))
    try:
        yield database
    finally:
        database.drop()
