"""pgsafe.server and the pytest plugin, against real throwaway PostgreSQL servers.

Clean-up is checked from the outside: the process table (any process whose working directory or
command line is inside the server's temp dir) and the file system, after stop, exit, Ctrl-C,
SIGTERM and SIGKILL of the owning Python process.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pgsafe.server
from helpers import read_jsonl, wait_for
from pgsafe.errors import ConfigError, DatabaseError
from pgsafe.server import ServerError, TemporaryServer, find_pg_bindir

pytestmark = pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs Linux /proc")

IS_ROOT = os.geteuid() == 0
PACKAGE_PARENT = Path(pgsafe.server.__file__).resolve().parents[1]


# --- helpers -----------------------------------------------------------------------------------


def processes_in(path: Path) -> list[int]:
    """Live processes whose cwd is inside ``path`` or whose command line mentions it.

    Every postgres process has the data directory as cwd, and the watchdog names the temp dir
    on its command line; zombies have neither, so they do not count as left behind.
    """
    needle = str(path)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        try:
            cmdline = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            )
        except OSError:
            cmdline = ""
        if cwd.startswith(needle) or needle in cmdline:
            found.append(int(entry.name))
    return found


def real_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def assert_gone(tempdir: Path) -> None:
    assert processes_in(tempdir) == [], f"processes left in {tempdir}"
    assert not tempdir.exists(), f"{tempdir} left behind"


@pytest.fixture
def base_dir() -> Iterator[Path]:
    """A private parent for server temp dirs, so 'nothing left behind' can be checked exactly."""
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="pgsafe-test-", dir=parent))
    path.chmod(0o755)  # the unprivileged server user must be able to enter it
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# A child Python process that owns a server; prints one JSON line once the server is ready.
CHILD = textwrap.dedent(
    """
    import json, os, signal, sys, time
    if sys.argv[3]:  # import from the source tree, skipping the package __init__ (no _core)
        import types
        pkg = types.ModuleType("pgsafe")
        pkg.__path__ = [os.path.join(sys.argv[3], "pgsafe")]
        sys.modules["pgsafe"] = pkg
    from pgsafe.server import TemporaryServer
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mode = sys.argv[2]
    server = TemporaryServer(base_dir=sys.argv[1])

    def report():
        print(json.dumps({"tempdir": str(server.tempdir), "pid": server.pid,
                          "euid": os.geteuid(), "os_user": server.os_user}), flush=True)

    if mode == "with":
        with server:
            report()
            time.sleep(600)
    server.start()
    if mode == "fork":
        server.execute("SELECT 1")  # the admin connection a forked child inherits
        if os.fork() == 0:
            sys.exit(0)  # a child that exits normally, running atexit and finalizers
        os.wait()
        server.execute("SELECT 1")
        if os.fork() == 0:
            time.sleep(600)  # a child that outlives its parent, holding inherited fds
            os._exit(0)
    report()
    if mode == "exit":
        sys.exit(0)
    time.sleep(600)
    """
)


def spawn_child(
    base: Path, mode: str, python: str = sys.executable, source: str = "", **popen: Any
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [python, "-c", CHILD, str(base), mode, source],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"child did not report a running server: {err.strip()}")
    return proc, json.loads(line)


# --- find_pg_bindir ----------------------------------------------------------------------------


def test_find_pg_bindir_finds_the_server_programs() -> None:
    bindir = find_pg_bindir()
    for program in ("initdb", "pg_ctl", "postgres"):
        assert os.access(bindir / program, os.X_OK)
    assert find_pg_bindir(str(bindir)) == bindir


def test_find_pg_bindir_rejects_bogus_explicit_dir(tmp_path: Path) -> None:
    bogus = tmp_path / "no-postgres-here"
    with pytest.raises(ConfigError) as info:
        find_pg_bindir(bogus)
    message = str(info.value)
    assert str(bogus) in message
    assert "initdb" in message and "postgres" in message
    assert "\n" not in message


def test_find_pg_bindir_rejects_bogus_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PGSAFE_PG_BINDIR", str(tmp_path))
    with pytest.raises(ConfigError, match="PGSAFE_PG_BINDIR"):
        find_pg_bindir()


def test_find_pg_bindir_skips_pg_config_without_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Debian's libpq-dev pg_config reports /usr/bin, which has no initdb.
    fake = tmp_path / "pg_config"
    fake.write_text(f"#!/bin/sh\necho {tmp_path}\n")
    fake.chmod(0o755)
    monkeypatch.delenv("PGSAFE_PG_BINDIR", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    found = find_pg_bindir()
    assert found != tmp_path
    assert os.access(found / "initdb", os.X_OK)


# --- start and stop ----------------------------------------------------------------------------


def test_start_stop_leaves_nothing_behind(base_dir: Path) -> None:
    server = TemporaryServer(base_dir=base_dir)
    with server:
        tempdir = server.tempdir
        assert server.running
        assert server.datadir.is_dir() and server.log_path.is_file()
        assert Path(server.host, f".s.PGSQL.{server.port}").is_socket()
        assert server.pid in processes_in(tempdir)
        # postmaster + checkpointer, background writer, WAL writer, ... and the watchdog
        assert len(processes_in(tempdir)) >= 4
    assert_gone(tempdir)
    assert list(base_dir.iterdir()) == []
    server.stop()  # idempotent


@pytest.mark.skipif(not IS_ROOT, reason="root-only behaviour")
def test_root_runs_server_as_unprivileged_user(base_dir: Path) -> None:
    user = pgsafe.server.server_os_user()
    assert user is not None
    uid = pwd.getpwnam(user).pw_uid
    with TemporaryServer(base_dir=base_dir) as server:
        assert server.os_user == user
        # Every postgres process runs with the data directory as its working directory.
        datadir_pids = [
            p
            for p in processes_in(server.tempdir)
            if os.readlink(f"/proc/{p}/cwd").startswith(str(server.datadir))
        ]
        assert server.pid in datadir_pids and len(datadir_pids) >= 3
        assert {real_uid(p) for p in datadir_pids} == {uid}
        assert server.datadir.stat().st_uid == uid
        tempdir = server.tempdir
    assert_gone(tempdir)


def _python_for(user: str) -> str | None:
    """An interpreter ``user`` may run: ours may live under a home they cannot enter."""
    for python in (sys.executable, "/usr/bin/python3"):
        if not os.access(python, os.X_OK):
            continue
        try:
            probe = subprocess.run(
                [python, "-c", "import sys; assert sys.version_info >= (3, 11)"],
                user=user,
                cwd="/",
                capture_output=True,
                check=False,
            )
        except PermissionError:
            continue
        if probe.returncode == 0:
            return python
    return None


@pytest.mark.skipif(not IS_ROOT, reason="drops to an unprivileged user; needs root")
def test_non_root_caller_runs_server_directly(base_dir: Path) -> None:
    user = "postgres"
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        pytest.skip("no postgres user")
    python = _python_for(user)
    if python is None:
        pytest.skip(f"no Python >= 3.11 that user {user} may execute")
    os.chown(base_dir, entry.pw_uid, entry.pw_gid)
    proc, info = spawn_child(
        base_dir, "exit", python=python, source=str(PACKAGE_PARENT), user=user, cwd="/"
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert info["euid"] == entry.pw_uid
    assert info["os_user"] == user
    assert_gone(Path(info["tempdir"]))


def sysv_segment_ids() -> set[int]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[1]) for line in lines}


def test_unresponsive_server_is_killed_and_leaves_no_shared_memory(base_dir: Path) -> None:
    server = TemporaryServer(base_dir=base_dir, stop_timeout=0.3).start()
    tempdir = server.tempdir
    shmid = int((server.datadir / "postmaster.pid").read_text().splitlines()[6].split()[1])
    assert shmid in sysv_segment_ids()
    os.kill(server.pid, signal.SIGSTOP)  # ignores fast and immediate shutdown requests
    server.stop()
    assert not tempdir.exists()
    wait_for(lambda: not processes_in(tempdir), 10, "orphaned backends exited")
    assert shmid not in sysv_segment_ids()


def test_start_failure_reports_log_tail_and_cleans_up(base_dir: Path) -> None:
    server = TemporaryServer(base_dir=base_dir, settings={"shared_buffers": "lots"})
    with pytest.raises(ServerError) as info:
        server.start()
    assert "postgres exited" in str(info.value)
    assert any("shared_buffers" in line for line in info.value.log_tail)
    assert "shared_buffers" in str(info.value)
    assert list(base_dir.iterdir()) == []
    assert processes_in(base_dir) == []
    assert not server.running


@pytest.mark.skipif(not IS_ROOT, reason="root-only behaviour")
def test_unreachable_base_dir_is_a_config_error(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="cannot enter"):
        TemporaryServer(base_dir=private).start()
    assert list(private.iterdir()) == []


def test_settings_reach_the_server(base_dir: Path) -> None:
    with TemporaryServer(base_dir=base_dir, settings={"work_mem": "7MB"}) as server:
        conf = (server.datadir / "postgresql.conf").read_text()
        assert "work_mem = '7MB'" in conf
        assert "fsync = off" in conf and "listen_addresses = ''" in conf


# --- clean-up when the owning process goes away ------------------------------------------------


def test_kill_9_of_owner_is_cleaned_up_by_watchdog(base_dir: Path) -> None:
    proc, info = spawn_child(base_dir, "hold")
    tempdir = Path(info["tempdir"])
    assert info["pid"] in processes_in(tempdir)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    wait_for(
        lambda: not processes_in(tempdir) and not tempdir.exists(),
        30,
        f"watchdog removed the server in {tempdir}",
    )
    assert list(base_dir.iterdir()) == []


def test_forked_children_neither_stop_the_server_nor_block_the_watchdog(base_dir: Path) -> None:
    proc, info = spawn_child(base_dir, "fork")
    tempdir = Path(info["tempdir"])
    assert info["pid"] in processes_in(tempdir), "a forked child's exit stopped the server"
    # The owner's children: the postmaster, the watchdog (it names the temp dir on its command
    # line) and the forked child that sleeps on with the inherited fds.
    children = {
        int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    }
    server_side = children & set(processes_in(tempdir))
    watchdog = server_side - {info["pid"]}
    sleepers = children - server_side
    try:
        assert len(watchdog) == 1, (children, server_side)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)  # not communicate(): the grandchild holds the output pipes
        wait_for(lambda: not tempdir.exists(), 30, f"watchdog removed {tempdir}")
        # The watchdog removes the temp dir once the server is gone, as its last act: only the
        # watchdog itself may still be exiting then.
        assert set(processes_in(tempdir)) <= watchdog
        wait_for(lambda: not processes_in(tempdir), 10, "the watchdog to exit")
    finally:
        # Only the sleeper: the server's and the watchdog's pids may be reused by now.
        for pid in sleepers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()  # its watchdog then removes the server
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_ctrl_c_in_owner_cleans_up(base_dir: Path) -> None:
    proc, info = spawn_child(base_dir, "with")
    tempdir = Path(info["tempdir"])
    assert info["pid"] in processes_in(tempdir)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "KeyboardInterrupt" in err
    # Cleaned up in-process before the owner exited, not later by the watchdog.
    assert_gone(tempdir)


def test_sigterm_of_owner_cleans_up(base_dir: Path) -> None:
    proc, info = spawn_child(base_dir, "hold")
    tempdir = Path(info["tempdir"])
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM  # still dies of the signal
    assert_gone(tempdir)


def test_exit_without_stop_cleans_up_at_exit(base_dir: Path) -> None:
    proc, info = spawn_child(base_dir, "exit")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert_gone(Path(info["tempdir"]))


# --- databases (through the C++ core) ----------------------------------------------------------


def test_create_database_clones_template_and_drop_removes_it(
    pgsafe_server: TemporaryServer,
) -> None:
    pgsafe_server.create_database("clone_src")
    with pgsafe_server.connect("clone_src") as conn:
        conn.execute("CREATE TABLE marker (v text)")
        conn.execute("INSERT INTO marker VALUES ($1)", ["from the template"])
    pgsafe_server.create_database("clone_dst", template="clone_src")
    with pgsafe_server.connect("clone_dst") as conn:
        assert conn.execute("SELECT v FROM marker").rows == [("from the template",)]
    pgsafe_server.drop_database("clone_dst")
    pgsafe_server.drop_database("clone_src")
    names = {row[0] for row in pgsafe_server.execute("SELECT datname FROM pg_database").rows}
    assert not names & {"clone_src", "clone_dst"}


def test_drop_database_disconnects_sessions(pgsafe_server: TemporaryServer) -> None:
    pgsafe_server.create_database("busy")
    conn = pgsafe_server.connect("busy")
    try:
        pgsafe_server.drop_database("busy")
        with pytest.raises(DatabaseError):
            conn.execute("SELECT 1")
    finally:
        conn.close()
    names = {row[0] for row in pgsafe_server.execute("SELECT datname FROM pg_database").rows}
    assert "busy" not in names


def test_dsn_and_url_reach_the_same_database(base_dir: Path) -> None:
    from pgsafe._core import Connection

    spaced = base_dir / "with space"
    spaced.mkdir(mode=0o755)
    with TemporaryServer(base_dir=spaced) as server:
        server.create_database("it's")
        for target in (server.dsn("it's"), server.url("it's")):
            with Connection(target) as conn:
                assert conn.execute("SELECT current_database()").rows == [("it's",)]


def test_pgsafe_db_fixture_is_a_fresh_database(pgsafe_db: Any) -> None:
    assert pgsafe_db.name.startswith("pgsafe_")
    with pgsafe_db.connect() as conn:
        assert conn.execute("SELECT current_database()").rows == [(pgsafe_db.name,)]
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").rows == [
            ("0",)
        ]
    assert pgsafe_db.dsn == pgsafe_db.server.dsn(pgsafe_db.name)


# --- the pytest plugin, in a separate pytest run ----------------------------------------------

INNER_CONFTEST = """
import pytest

@pytest.fixture(scope="session")
def pgsafe_template(pgsafe_template, pgsafe_server):
    with pgsafe_server.connect(pgsafe_template) as conn:
        conn.execute("CREATE TABLE marker (v text)")
        conn.execute("INSERT INTO marker VALUES ('from the template')")
    return pgsafe_template
"""

INNER_TESTS = """
import json, os

def record(db, **extra):
    with open(os.environ["PGSAFE_RECORD"], "a") as f:
        f.write(json.dumps({"name": db.name, "tempdir": str(db.server.tempdir), **extra}) + "\\n")

def previous_names():
    with open(os.environ["PGSAFE_RECORD"]) as f:
        return [json.loads(line)["name"] for line in f]

def check(db):
    with db.connect() as conn:
        rows = conn.execute("SELECT v FROM marker").rows
        conn.execute("INSERT INTO marker VALUES ('written by a test')")
        live = {r[0] for r in conn.execute("SELECT datname FROM pg_database").rows}
    record(db, marker=rows, stale=sorted(set(previous_names()) & live))

def test_one(pgsafe_db):
    check(pgsafe_db)

def test_two(pgsafe_db):
    check(pgsafe_db)

def test_three_fails(pgsafe_db):
    check(pgsafe_db)
    assert False, "this test fails on purpose"
"""


def test_plugin_gives_each_test_its_own_clone_and_cleans_up(
    pytester: pytest.Pytester, record_file: Path
) -> None:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(INNER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)

    runs = read_jsonl(record_file)
    assert len(runs) == 3
    assert len({r["name"] for r in runs}) == 3, "each test gets its own database"
    assert all(r["marker"] == [["from the template"]] for r in runs), "cloned from the template"
    assert all(r["stale"] == [] for r in runs), "earlier tests' databases were dropped"
    tempdirs = {r["tempdir"] for r in runs}
    assert len(tempdirs) == 1, "one server per session"
    assert_gone(Path(tempdirs.pop()))  # even though a test failed


@pytest.mark.parametrize("how", ["flag", "ini"])
def test_plugin_bindir_option(pytester: pytest.Pytester, how: str) -> None:
    pytester.makepyfile("def test_db(pgsafe_db):\n    pass\n")
    bogus = pytester.path / "bogus-bindir"
    if how == "flag":
        result = pytester.runpytest_subprocess(f"--pgsafe-pg-bindir={bogus}")
    else:
        pytester.makeini(f"[pytest]\npgsafe_pg_bindir = {bogus}\n")
        result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*ConfigError*explicit bindir {bogus} has no initdb*"])


def test_plugin_names_databases_per_xdist_worker(
    pytester: pytest.Pytester, record_file: Path
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        """
        import json, os
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_db(pgsafe_db, i):
            with open(os.environ["PGSAFE_RECORD"], "a") as f:
                f.write(json.dumps([pgsafe_db.name, str(pgsafe_db.server.tempdir)]) + "\\n")
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    runs = read_jsonl(record_file)
    workers = {name.split("_")[1] for name, _ in runs}
    assert workers <= {"gw0", "gw1"} and len({name for name, _ in runs}) == 4
    for tempdir in {t for _, t in runs}:
        assert_gone(Path(tempdir))
