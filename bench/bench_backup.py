"""Benchmark `pgsafe backup` and `pgsafe restore` against pg_dump / pg_restore on a generated
database in a throwaway server: pgbench's tables (``pgbench -i -s 100``, about 1.3 GB of heap at
the default scale) plus a wide text/jsonb table.

One run of each, side by side:
- backup: pgsafe backup (zstd, ``--workers``), pg_dump -Fc, pg_dump -Fp | gzip,
  pg_dump -Fd -j2, and pg_dump -Fp > /dev/null (the uncompressed single-stream floor);
- restore into fresh databases: pgsafe restore (``--workers``) vs pg_restore -j2 of the -Fc dump,
  ``--restore-runs`` rounds, alternating, each ratio printed with the median.
Targets: backup no slower than ``pg_dump -Fp > /dev/null`` with output no larger than -Fc;
restore at most 0.8x ``pg_restore -j2``. Run:
``python bench/bench_backup.py [--scale N] [--wide-rows N] [--workers N]``.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dataset import DB, clean_env, load
from pgsafe.backup import core as bk
from pgsafe.server import TemporaryServer


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def sh(cmd: str) -> None:
    subprocess.run(cmd, shell=True, check=True, env=clean_env())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=100, help="pgbench scale (default 100)")
    parser.add_argument("--wide-rows", type=int, default=800_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--restore-runs", type=int, default=5, help="restore rounds, each tool once (default 5)"
    )
    args = parser.parse_args()
    os.environ["PGSAFE_NO_PROGRESS"] = "1"

    with TemporaryServer(settings={"max_wal_size": "4GB", "checkpoint_timeout": "30min"}) as server:
        print(f"loading: pgbench -s {args.scale} + {args.wide_rows:,} wide rows ...", flush=True)
        load(server, args.scale, args.wide_rows)
        dsn = server.dsn(DB)
        with server.connect(DB) as conn:
            db_size = int(conn.execute("SELECT pg_database_size(current_database())").rows[0][0])
        print(f"database: {db_size / 2**20:,.0f} MiB on disk\n", flush=True)
        pg_dump = server.bindir / "pg_dump"
        pg_restore = server.bindir / "pg_restore"
        work = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=os.environ.get("PGSAFE_TMPDIR")))
        try:
            rows: list[tuple[str, float, int]] = []
            out = work / "pgsafe"
            result: list[bk.BackupResult] = []
            t = timed(lambda: result.append(bk.backup(dsn, out_dir=out, workers=args.workers)))
            rows.append((f"pgsafe backup (zstd, {args.workers} workers)", t, result[0].size))
            fc = work / "dump.fc"
            t = timed(lambda: sh(f"{pg_dump} -Fc -f {fc} '{dsn}'"))
            rows.append(("pg_dump -Fc", t, size_of(fc)))
            gz = work / "dump.sql.gz"
            t = timed(lambda: sh(f"{pg_dump} -Fp '{dsn}' | gzip > {gz}"))
            rows.append(("pg_dump -Fp | gzip", t, size_of(gz)))
            fd = work / "dump.dir"
            t = timed(lambda: sh(f"{pg_dump} -Fd -j2 -f {fd} '{dsn}'"))
            rows.append(("pg_dump -Fd -j2", t, size_of(fd)))
            t = timed(lambda: sh(f"{pg_dump} -Fp '{dsn}' > /dev/null"))
            rows.append(("pg_dump -Fp > /dev/null", t, 0))

            base_t, base_size = rows[0][1], rows[0][2]
            print(
                f"{'backup':<36} {'seconds':>8} {'MiB':>9} {'time/pgsafe':>12} {'size/pgsafe':>12}"
            )
            for name, secs, size in rows:
                ratio_s = f"{size / base_size:.2f}" if size else "-"
                print(
                    f"{name:<36} {secs:>8.2f} {size / 2**20:>9.1f} {secs / base_t:>12.2f} "
                    f"{ratio_s:>12}"
                )
            floor = rows[4][1]
            fc_size = rows[1][2]
            print(
                f"\npgsafe backup / pg_dump -Fp > /dev/null: {base_t / floor:.2f}x time "
                f"(target <= 1.00); size / pg_dump -Fc: {base_size / fc_size:.2f} (target <= 1.00)"
            )

            # Restore rounds alternate the two tools into fresh databases, so that a busy
            # moment on a shared machine does not land on one tool only.
            runs: dict[str, Callable[[str], object]] = {
                "pgsafe": lambda db: bk.restore(
                    result[0].path, server.dsn(db), workers=args.workers
                ),
                "pg_restore": lambda db: sh(f"{pg_restore} -j2 -d '{server.dsn(db)}' {fc}"),
            }
            pairs: list[tuple[float, float]] = []
            # Round 0 is a warm-up, not counted: a new server's first gigabytes of WAL go to new,
            # zero-filled segment files, later ones to recycled segments; whichever tool ran
            # first would pay for that alone.
            for i in range(args.restore_runs + 1):
                order = ["pgsafe", "pg_restore"] if i % 2 == 0 else ["pg_restore", "pgsafe"]
                took = {}
                for name in order:
                    # Each restore has the server to itself: a fresh database, no dirty buffers
                    # or pending WAL, and no autovacuum still busy with the previous one's tables
                    # (dropping its database stops that).
                    server.create_database("restored")
                    with server.connect() as conn:
                        conn.execute("CHECKPOINT")
                    took[name] = timed(functools.partial(runs[name], "restored"))
                    with server.connect() as conn:
                        conn.execute("DROP DATABASE restored WITH (FORCE)")
                if i > 0:
                    pairs.append((took["pgsafe"], took["pg_restore"]))
            print(f"\n{'restore round':<16} {'pgsafe s':>9} {'pg_restore -j2 s':>17} {'ratio':>7}")
            for i, (a, b) in enumerate(pairs, 1):
                print(f"{i:<16} {a:>9.2f} {b:>17.2f} {a / b:>7.2f}")
            ratios = sorted(a / b for a, b in pairs)
            print(
                f"\npgsafe restore ({args.workers} workers) / pg_restore -j2: median "
                f"{statistics.median(ratios):.2f}x, range {ratios[0]:.2f}-{ratios[-1]:.2f}x "
                "(target <= 0.80)"
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
