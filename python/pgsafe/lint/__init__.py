"""Static analysis of migrations: rules over libpg_query parse trees, with hazards, lock levels
and safer recipes (`pgsafe lint`, `pgsafe rules`)."""

from pgsafe.lint.config import LintConfig, load_config
from pgsafe.lint.engine import LintResult, lint_paths, lint_text
from pgsafe.lint.model import HAZARDS, LOCKS, RULES, Finding, Rule

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
