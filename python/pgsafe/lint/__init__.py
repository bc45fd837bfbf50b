"""Static analysis of migrations: rules over libpg_query parse trees, with hazards, lock levels
and safer recipes (`pgsafe lint`, `pgsafe rules`). The names load on first use, so a command
that only reads the lint configuration (`pgsafe backup`, say) does not load every rule."""

from pgsafe import lazy_attributes

__all__ = [
    "HAZARDS",
    "LOCKS",
    "RULES",
    "Finding",
    "LintConfig",
    "LintResult",
    "Rule",
    "lint_paths",
    "lint_text",
    "load_config",
]
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "HAZARDS": "pgsafe.lint.model",
        "LOCKS": "pgsafe.lint.model",
        "RULES": "pgsafe.lint.engine",  # the engine loads every rule, which registers itself
        "Finding": "pgsafe.lint.model",
        "LintConfig": "pgsafe.lint.config",
        "LintResult": "pgsafe.lint.engine",
        "Rule": "pgsafe.lint.model",
        "lint_paths": "pgsafe.lint.paths",
        "lint_text": "pgsafe.lint.engine",
        "load_config": "pgsafe.lint.config",
    },
)
