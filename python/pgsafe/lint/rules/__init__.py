"""Every lint rule, one module per family; importing this package registers them all."""

from pgsafe.lint.rules import (  # noqa: F401
    columns,
    constraints,
    dml,
    indexes,
    misc,
    tables,
    transactions,
    types,
    versions,
)
