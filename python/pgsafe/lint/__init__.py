"""Static analysis of migrations: rules over libpg_query parse trees, with hazards, lock levels
and safer recipes (`pgsafe lint`, `pgsafe rules`)."""

from pgsafe.lint.config import LintConfig, load_config
from pgsafe.lint.engine import LintResult, lint_text
from pgsafe.lint.model import HAZARDS, LOCKS, RULES, Finding, Rule
from pgsafe.lint.paths import lint_paths

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
