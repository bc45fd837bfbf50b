"""Benchmark a large data migration: ``pgsafe lint`` and ``pgsafe apply --apply`` of one SQL file
of about 50 MB (some 720,000 single-row INSERTs into three tables, after their CREATE TABLEs),
beside ``psql -f`` of the same file, on one throwaway server.

Each command runs as its own process; its wall time and peak RSS (the kernel's accounting of the
finished child, os.wait4) are recorded. Apply runs alternate (pgsafe, psql, psql -1; then the
other way round) on a fresh database each, so a drift in the machine's speed hits both sides;
the ratios are taken round by round and their median printed. Goals (issue 16): peak RSS of
lint and apply <= 300 MB, lint <= 5 s, pgsafe apply <= 1.2x ``psql -f``.

Run: ``python bench/bench_bigfile.py [--mb 50] [--rounds 3] [--keep FILE]``
  --mb N       size of the generated file in MB (default 50)
  --rounds N   paired rounds (default 3)
  --keep FILE  also write the generated SQL to FILE
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pgsafe.server import TemporaryServer

PGSAFE = str(Path(sys.executable).parent / "pgsafe")

SCHEMA = (
    "CREATE TABLE customer (id bigint PRIMARY KEY, name text NOT NULL, score numeric(6,2));\n"
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, total numeric);\n"
    "CREATE TABLE event (id bigint PRIMARY KEY, kind text, payload text);\n"
)


def write_data_migration(path: Path, megabytes: float) -> int:
    """A data migration of about `megabytes` MB: the tables, then single-row INSERTs (about 70
    bytes each, as in the file of the issue: 719,725 rows in 50 MB). Returns the row count."""
    rng = random.Random(16)
    target = int(megabytes * 1_000_000)
    rows = 0
    with path.open("w", encoding="utf-8") as f:
        f.write(SCHEMA)
        size = len(SCHEMA)
        while size < target:
            rows += 1
            kind = rows % 3
            if kind == 0:
                values = f"{rows}, 'c{rows}', {rng.random() * 999:.2f}"
                line = f"INSERT INTO customer VALUES ({values});\n"
            elif kind == 1:
                values = f"{rows}, {rows - 1}, {rng.random() * 1e5:.2f}"
                line = f"INSERT INTO orders VALUES ({values});\n"
            else:
                values = f"{rows}, 'k{rows % 7}', 'p;{rng.getrandbits(32):x}'"
                line = f"INSERT INTO event VALUES ({values});\n"
            f.write(line)
            size += len(line)
    return rows


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}


def measure(cmd: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one run of `cmd` as a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.stderr.write(err.decode("utf-8", "replace")[-2000:])
        raise SystemExit(f"{cmd[0]} exited {proc.returncode}")
    return wall, usage.ru_maxrss / 1024.0, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, TemporaryServer() as server:
        root = Path(tmp) / "migrations"
        root.mkdir()
        sql = root / "0001_load_data.up.sql"
        rows = write_data_migration(sql, args.mb)
        if args.keep:
            args.keep.write_bytes(sql.read_bytes())
        size_mb = sql.stat().st_size / 1e6
        psql = str(server.bindir / "psql")
        logs = Path(tmp) / "logs"
        lint: list[tuple[float, float, int]] = []
        apply: dict[str, list[tuple[float, float, int]]] = {"pgsafe": [], "psql": [], "psql1": []}
        for n in range(args.rounds):
            lint.append(measure([PGSAFE, "lint", str(sql)]))
            order = ["pgsafe", "psql", "psql1"] if n % 2 == 0 else ["psql1", "psql", "pgsafe"]
            for key in order:
                db = f"big_{key}_{n}"
                server.create_database(db)
                dsn = server.dsn(db)
                if key == "pgsafe":
                    cmd = [PGSAFE, "apply", str(root), "--db", dsn, "--apply"]
                    cmd += ["--log-dir", str(logs)]
                else:
                    cmd = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(sql)]
                    if key == "psql1":
                        cmd.insert(1, "--single-transaction")
                wall, rss, code = measure(cmd)
                if code != 0:
                    raise SystemExit(f"{key} failed (exit {code})")
                apply[key].append((wall, rss, code))
                server.drop_database(db)

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    print(
        f"{size_mb:.1f} MB, {rows} INSERT rows, {args.rounds} paired rounds, one throwaway "
        "server (medians; ratios taken round by round)\n"
    )
    print(f"{'command':<44} {'wall s':>8} {'peak RSS MB':>12} {'ratio':>8}")
    print(
        f"{'pgsafe lint':<44} {med([w for w, _, _ in lint]):>8.2f} "
        f"{med([r for _, r, _ in lint]):>12.1f} {'':>8}"
    )
    for label, key in (
        ("pgsafe apply --apply", "pgsafe"),
        ("psql -f (autocommit, the issue's baseline)", "psql"),
        ("psql --single-transaction -f", "psql1"),
    ):
        ratios = [p[0] / o[0] for p, o in zip(apply["pgsafe"], apply[key], strict=True)]
        print(
            f"{label:<44} {med([w for w, _, _ in apply[key]]):>8.2f} "
            f"{med([r for _, r, _ in apply[key]]):>12.1f} "
            f"{'' if key == 'pgsafe' else f'{med(ratios):.2f}x':>8}"
        )
    print("\nratio = pgsafe apply time / that command's time, median of the rounds' ratios")
    print("goals: peak RSS <= 300 MB, lint <= 5 s, pgsafe apply <= 1.2x psql -f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
