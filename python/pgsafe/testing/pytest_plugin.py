"""pytest fixtures backed by a throwaway PostgreSQL server (registered as the ``pgsafe`` plugin).

One :class:`~pgsafe.server.TemporaryServer` per session (per xdist worker), one template
database, a fresh database cloned from it for every test that asks for ``pgsafe_db``, and a
harness (``pgsafe_migrations``) that applies and rolls back the project's migrations on it.
The ``*_fixture`` factories build more of each, the way pytest-postgresql's factories do.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pgsafe.server import TemporaryDatabase, TemporaryServer

if TYPE_CHECKING:  # loaded by the fixtures that use it: an unrelated test run does not pay for
    # the harness (lint, the trace, the runner) at start-up
    from pgsafe.testing.harness import MigrationHarness

__all__ = [
    "database_fixture",
    "migrations_fixture",
    "pgsafe_db",
    "pgsafe_migrations",
    "pgsafe_server",
    "pgsafe_target",
    "pgsafe_template",
    "server_fixture",
    "template_fixture",
]

TEMPLATE_NAME = "pgsafe_template"
TEMPLATE_MODES = ("empty", "migrated")

# name: (help, default). Each is both `--pgsafe-name` on the command line and ini `pgsafe_name`;
# the command line wins, as in pytest-postgresql.
_OPTIONS: dict[str, tuple[str, str | None]] = {
    "pg_bindir": (
        "directory holding the PostgreSQL server binaries (initdb, pg_ctl, postgres) for the "
        "pgsafe throwaway server; default: the installation of --pgsafe-pg-version among "
        "$PGSAFE_PG_BINDIR, pg_config, /usr/lib/postgresql/*/bin, PATH and the server wheels",
        None,
    ),
    "pg_version": (
        "PostgreSQL major of the pgsafe throwaway server, e.g. 16; default: $PGSAFE_PG_VERSION, "
        "else pg_version in [tool.pgsafe] (pyproject.toml), else the newest installed",
        None,
    ),
    "migrations": (
        "migrations source the pgsafe_migrations harness runs: a directory of NNN_name.up.sql/"
        ".down.sql files or an Alembic project (alembic.ini or its directory); relative to the "
        "ini file's directory (ini) or the current directory (command line)",
        None,
    ),
    "template": (
        "what every pgsafe_db is cloned from: 'empty' (default) or 'migrated' (the migrations "
        "source applied once per session, so each test starts at head)",
        "empty",
    ),
    "dsn": (
        "run pgsafe_target (and so pgsafe_migrations) against this existing database instead "
        "of a fresh throwaway one; the test owns whatever it changes there",
        None,
    ),
}

_db_numbers = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgsafe", "pgsafe throwaway PostgreSQL and migration tests")
    for name, (help_text, default) in _OPTIONS.items():
        flag = "--pgsafe-" + name.replace("_", "-")
        group.addoption(flag, dest=f"pgsafe_{name}", default=None, help=help_text)
        parser.addini(f"pgsafe_{name}", help=help_text, default=default)


def _option(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(f"pgsafe_{name}") or config.getini(f"pgsafe_{name}")
    return str(value) if value else None


def _migrations_path(config: pytest.Config) -> Path | None:
    cli = config.getoption("pgsafe_migrations")
    if cli:
        return Path(cli).expanduser().resolve()
    ini = config.getini("pgsafe_migrations")
    if not ini:
        return None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return (base / Path(str(ini)).expanduser()).resolve()


def _template_mode(config: pytest.Config) -> str:
    mode = _option(config, "template") or "empty"
    if mode not in TEMPLATE_MODES:
        raise pytest.UsageError(
            f"pgsafe template mode {mode!r} (--pgsafe-template / ini pgsafe_template): "
            f"use one of {', '.join(TEMPLATE_MODES)}"
        )
    return mode


def _pg_version(config: pytest.Config) -> int | None:
    """The major of the throwaway server: --pgsafe-pg-version, ini pgsafe_pg_version,
    $PGSAFE_PG_VERSION, pg_version in [tool.pgsafe], else None (the newest installed)."""
    from pgsafe.errors import ConfigError
    from pgsafe.pgbin import configured_major

    cli = config.getoption("pgsafe_pg_version", None)
    source = "--pgsafe-pg-version" if cli else "pgsafe_pg_version (ini)"
    try:
        return configured_major(cli or config.getini("pgsafe_pg_version") or None, source)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "pgsafe_template"):
        _template_mode(config)  # a bad value stops the run before any test, not in each one
        _pg_version(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    source = _migrations_path(config)
    major = _pg_version(config)
    if source is None and not _option(config, "dsn") and major is None:
        return []
    parts = [f"migrations={source}" if source else "migrations=(none)"]
    if major is not None:
        parts.append(f"pg_version={major}")
    parts.append(f"template={_template_mode(config)}")
    if _option(config, "dsn"):
        parts.append("target=--pgsafe-dsn")
    return ["pgsafe: " + ", ".join(parts)]


def _worker_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


def _database_name(request: pytest.FixtureRequest) -> str:
    # Unique per session and worker; the test name only helps whoever reads pg_stat_activity.
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")
    name = f"pgsafe_{_worker_id(request.config)}_{next(_db_numbers)}_{slug}"
    return name.encode()[:63].decode("ascii", "ignore").rstrip("_")


def _no_source(fixture: str) -> pytest.UsageError:
    return pytest.UsageError(
        f"{fixture}: no migrations source; set --pgsafe-migrations PATH or "
        "`pgsafe_migrations = PATH` in the pytest ini file"
    )


# -- factories -----------------------------------------------------------------------------------


def server_fixture(
    *,
    bindir: str | None = None,
    settings: dict[str, object] | None = None,
    scope: Any = "session",
    pg_version: int | None = None,
) -> Callable[..., Any]:
    """A fixture yielding a started :class:`TemporaryServer` (stopped afterwards).

    ``pg_version`` (the PostgreSQL major) defaults to ``--pgsafe-pg-version`` / ini
    ``pgsafe_pg_version`` / ``$PGSAFE_PG_VERSION`` / ``pg_version`` in ``[tool.pgsafe]``, else
    the newest installed; ``bindir`` to ``--pgsafe-pg-bindir`` / ini ``pgsafe_pg_bindir``;
    ``settings`` become postgresql.conf lines (e.g. ``{"max_locks_per_transaction": 256}``)."""

    @pytest.fixture(scope=scope)
    def _server(request: pytest.FixtureRequest) -> Iterator[TemporaryServer]:
        server = TemporaryServer(
            bindir=bindir or _option(request.config, "pg_bindir"),
            settings=settings,
            pg_version=pg_version or _pg_version(request.config),
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()

    return _server


def template_fixture(
    server: str = "pgsafe_server",
    *,
    name: str = TEMPLATE_NAME,
    migrations: str | Path | None = None,
    mode: str | None = None,
) -> Callable[..., Any]:
    """A session fixture creating database ``name`` on fixture ``server`` and returning its name.

    ``mode`` ('empty' or 'migrated'; default from ``--pgsafe-template``) says whether the
    migrations source (``migrations``, default ``--pgsafe-migrations``) is applied to it."""

    @pytest.fixture(scope="session")
    def _template(request: pytest.FixtureRequest) -> str:
        srv: TemporaryServer = request.getfixturevalue(server)
        chosen = mode or _template_mode(request.config)
        srv.create_database(name)
        if chosen == "migrated":
            source = migrations or _migrations_path(request.config)
            if source is None:
                raise _no_source("pgsafe template mode 'migrated'")
            # Runner closes its connections: the template must have none left to be cloned.
            from pgsafe.testing.harness import MigrationHarness  # lazy (TYPE_CHECKING above)

            MigrationHarness(Path(source), srv.dsn(name)).apply()
        return name

    return _template


def database_fixture(
    server: str = "pgsafe_server", *, template: str | None = "pgsafe_template"
) -> Callable[..., Any]:
    """A per-test fixture yielding a fresh :class:`TemporaryDatabase` on fixture ``server``,
    cloned from the database named by fixture ``template`` (None: PostgreSQL's template1),
    dropped after the test. Names are unique per session and xdist worker."""

    @pytest.fixture
    def _database(request: pytest.FixtureRequest) -> Iterator[TemporaryDatabase]:
        srv: TemporaryServer = request.getfixturevalue(server)
        tmpl = request.getfixturevalue(template) if template else None
        database = srv.new_database(template=tmpl, name=_database_name(request))
        try:
            yield database
        finally:
            database.drop()

    return _database


def migrations_fixture(
    target: str = "pgsafe_target", *, migrations: str | Path | None = None
) -> Callable[..., Any]:
    """A per-test fixture yielding a :class:`~pgsafe.testing.harness.MigrationHarness` for
    migrations
    source ``migrations`` (default ``--pgsafe-migrations``) on the DSN fixture ``target``."""

    @pytest.fixture
    def _harness(request: pytest.FixtureRequest) -> MigrationHarness:
        from pgsafe.testing.harness import MigrationHarness  # lazy (TYPE_CHECKING above)

        source = Path(migrations) if migrations is not None else _migrations_path(request.config)
        if source is None:
            raise _no_source(request.fixturename or "pgsafe_migrations")
        dsn = request.getfixturevalue(target)
        return MigrationHarness(source, dsn if isinstance(dsn, str) else dsn.dsn)

    return _harness


# -- the default fixtures ------------------------------------------------------------------------

pgsafe_server = server_fixture()
pgsafe_server.__doc__ = "A throwaway PostgreSQL server for the whole session (one per worker)."

pgsafe_template = template_fixture()
pgsafe_template.__doc__ = """Name of the database every ``pgsafe_db`` is cloned from: empty, or
migrated to head with ``--pgsafe-template migrated``.

Override it to load a schema once per session; leave no connection open to it, since
PostgreSQL cannot clone a database someone is connected to."""

pgsafe_db = database_fixture()
pgsafe_db.__doc__ = """A fresh database cloned from ``pgsafe_template``, dropped after the test.

The value has ``.name``, ``.dsn``, ``.url``, ``.server`` and ``.connect()``."""


@pytest.fixture
def pgsafe_target(request: pytest.FixtureRequest) -> str:
    """The DSN migration tests run against: ``--pgsafe-dsn`` if given, else a fresh
    ``pgsafe_db``. Override it to use another fixture's database, e.g. pytest-postgresql's::

        @pytest.fixture
        def pgsafe_target(postgresql):
            return postgresql.info.dsn
    """
    dsn = _option(request.config, "dsn")
    if dsn:
        return dsn
    database: TemporaryDatabase = request.getfixturevalue("pgsafe_db")
    return database.dsn


pgsafe_migrations = migrations_fixture()
pgsafe_migrations.__doc__ = """A :class:`~pgsafe.testing.harness.MigrationHarness` for the
configured
migrations source (``--pgsafe-migrations`` / ini ``pgsafe_migrations``) on ``pgsafe_target``:
``apply(to=None)``, ``rollback(steps=None, to=None)``, ``status()``, ``fingerprint()``,
``data_fingerprint(tables)``, ``execute(sql)``, ``trace(...)``."""
