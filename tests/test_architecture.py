"""The package's layout rules (docs/architecture.md), checked on the code itself: no import
circles between pgsafe's modules, packages import only what stands below them, and the package
imports and runs without its optional extras (alembic, SQLAlchemy, IPython, pytest)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "pgsafe"

# Floors, top to bottom: a module may import from its own floor's package or any floor below.
FLOORS: list[set[str]] = [
    {"cli"},
    {"alembic", "testing"},
    {"lifecycle"},
    {"backup", "lint"},
    {"analysis", "sources"},
    {"ground"},  # the top-level modules: errors, config, db, server, events, progress, ...
]
# Known exceptions, each with its reason: keep this list short (the issue allows at most 3).
ALLOWED_UPWARD: set[tuple[str, str]] = {
    # verify-backup and restore compare the restored rows with the data fingerprints that
    # `pgsafe test` also uses (testing/datafp.py, a thin layer over the core's scan).
    ("pgsafe.backup.core", "pgsafe.backup.datafp"),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) >= 3 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "ground"


def _floor(package: str) -> int:
    for i, floor in enumerate(FLOORS):
        if package in floor:
            return i
    raise AssertionError(f"package {package!r} is on no floor of tests/test_architecture.py")


def _imports() -> dict[str, set[str]]:
    """module -> pgsafe modules it imports at module level (not under TYPE_CHECKING)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        found: set[str] = set()
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            stmts = [node]
            if isinstance(node, ast.Try):
                stmts = node.body
            for stmt in stmts:
                if isinstance(stmt, ast.ImportFrom) and stmt.module:
                    if not stmt.module.startswith("pgsafe"):
                        continue
                    for alias in stmt.names:
                        sub = f"{stmt.module}.{alias.name}"
                        found.add(sub if sub in modules else stmt.module)
                elif isinstance(stmt, ast.Import):
                    found.update(a.name for a in stmt.names if a.name.startswith("pgsafe"))
        found.discard(name)
        graph[name] = {m for m in found if m in modules and m != "pgsafe"}
    return graph


def test_no_import_circles() -> None:
    graph = _imports()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_packages_import_only_what_stands_below() -> None:
    upward = []
    for module, targets in _imports().items():
        # the package's public API re-exports from every floor; `python -m pgsafe` runs the CLI
        if module in ("pgsafe", "pgsafe.__main__"):
            continue
        here = _floor(_package_of(module))
        for target in targets:
            there = _floor(_package_of(target))
            if there < here and (module, target) not in ALLOWED_UPWARD:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that run back up: " + ", ".join(sorted(upward))


def test_at_most_twelve_modules_at_the_top() -> None:
    # __main__.py is `python -m pgsafe`'s two-line entry point, not a module of the house
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__main__.py")
    assert len(top) <= 12, top


def test_the_package_works_without_its_optional_extras() -> None:
    """Every module but the Alembic integration and the pytest plugin imports, and `pgsafe lint`
    runs, with alembic, SQLAlchemy, IPython and pytest made unimportable."""
    script = textwrap.dedent(
        """
        import importlib, importlib.abc, pkgutil, sys

        BLOCKED = ("alembic", "sqlalchemy", "IPython", "pytest", "_pytest")

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is blocked by the test")
                return None

        sys.meta_path.insert(0, Block())
        import pgsafe

        skipped = ("pgsafe.alembic", "pgsafe.testing.pytest_plugin")
        for m in pkgutil.walk_packages(pgsafe.__path__, "pgsafe."):
            if not m.name.startswith(skipped):
                importlib.import_module(m.name)
        leaked = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
        assert not leaked, leaked
        from pgsafe.cli.main import main
        sys.exit(main(["lint", sys.argv[1]]))
        """
    )
    migrations = PACKAGE.parent.parent / "migrations"
    res = subprocess.run(
        [sys.executable, "-c", script, str(migrations)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 file(s)" in res.stdout


@pytest.mark.parametrize("module", ["pgsafe.cli.main", "pgsafe.lint", "pgsafe.lifecycle.runner"])
def test_no_optional_extra_is_imported_by_the_core_modules(module: str) -> None:
    script = (
        f"import sys, {module}\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        "('alembic', 'sqlalchemy', 'IPython', 'pytest'))\n"
        "print(','.join(bad))"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"{module} imports {res.stdout.strip()}"
