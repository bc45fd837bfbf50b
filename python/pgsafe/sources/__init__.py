"""Finding migrations: pgsafe's own file layout, other tools' layouts, Alembic projects."""
