"""Alembic environment: the stock env.py with one change, pgsafe.alembic.configure instead of
context.configure (transaction per revision, timeouts, migration lock, ledger, invariants)."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

import pgsafe.alembic

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

target_metadata = None


def run_migrations_offline() -> None:
    pgsafe.alembic.configure(context, url=config.get_main_option("sqlalchemy.url"))
    with context.begin_transaction():
        context.run_migrations()


def _run_migrations(connection: Connection) -> None:
    pgsafe.alembic.configure(context, connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # Alembic's documented pattern: a caller (a test, an app) may hand its own connection in;
    # pytest-alembic hands in an Engine there, so take either.
    connectable = config.attributes.get("connection")
    if connectable is None:
        connectable = engine_from_config(
            config.get_section(config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
    if isinstance(connectable, Connection):
        _run_migrations(connectable)
        return
    with connectable.connect() as connection:
        _run_migrations(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
