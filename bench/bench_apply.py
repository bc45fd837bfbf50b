"""Benchmark ``pgsafe apply`` against applying the same migration files with psql, the way the
seed scripts do it (one ``psql --single-transaction -f`` per file), on one throwaway server.

pgsafe does more per migration (migration lock, ledger row, per-class timeouts, checksum,
JSON-lines log), so the interesting figure is how much that costs. Run:
``python bench/bench_apply.py [--migrations N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pgsafe.server import TemporaryServer

PGSAFE = str(Path(sys.executable).parent / "pgsafe")


def write_migrations(root: Path, count: int) -> None:
    for n in range(1, count + 1):
        (root / f"{n:04d}_step_{n}.up.sql").write_text(
            f"CREATE TABLE t{n} (id bigint PRIMARY KEY, owner bigint, note text);\n"
            f"INSERT INTO t{n} SELECT g, g % 10, 'row ' || g FROM generate_series(1, 200) g;\n"
            f"CREATE INDEX t{n}_owner ON t{n} (owner);\n"
            f"ALTER TABLE t{n} ADD COLUMN created_at timestamptz;\n"
            f"COMMENT ON TABLE t{n} IS 'step {n}';\n"
        )
        (root / f"{n:04d}_step_{n}.down.sql").write_text(f"DROP TABLE t{n};\n")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}


def time_psql(server: TemporaryServer, db: str, files: list[Path]) -> float:
    psql = str(server.bindir / "psql")
    start = time.perf_counter()
    for f in files:
        subprocess.run(
            [
                psql,
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                "-d",
                server.dsn(db),
                "-f",
                str(f),
            ],
            check=True,
            env=clean_env(),
            stdout=subprocess.DEVNULL,
        )
    return time.perf_counter() - start


def time_psql_one_session(server: TemporaryServer, db: str, files: list[Path]) -> float:
    psql = str(server.bindir / "psql")
    script = "".join(f"BEGIN;\n\\i {f}\nCOMMIT;\n" for f in files)
    start = time.perf_counter()
    subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", server.dsn(db)],
        input=script,
        text=True,
        check=True,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def time_pgsafe(server: TemporaryServer, db: str, root: Path, log_dir: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [PGSAFE, "apply", str(root), "--db", server.dsn(db), "--apply", "--log-dir", str(log_dir)],
        check=True,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--migrations", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"pgsafe": [], "psql": [], "psql1": []}
    with tempfile.TemporaryDirectory() as tmp, TemporaryServer() as server:
        root = Path(tmp) / "migrations"
        root.mkdir()
        write_migrations(root, args.migrations)
        files = sorted(root.glob("*.up.sql"))
        for run in range(args.runs):
            for key in results:
                db = f"bench_{key}_{run}"
                server.create_database(db)
                if key == "pgsafe":
                    results[key].append(time_pgsafe(server, db, root, Path(tmp) / "logs"))
                elif key == "psql":
                    results[key].append(time_psql(server, db, files))
                else:
                    results[key].append(time_psql_one_session(server, db, files))
                server.drop_database(db)
    med = {k: statistics.median(v) for k, v in results.items()}
    n = args.migrations
    print(f"{n} migrations x 5 statements, median of {args.runs} runs, one throwaway server\n")
    print(f"{'how':<52} {'total s':>8} {'ms/migration':>13} {'pgsafe ratio':>13}")
    rows = [
        ("pgsafe apply --apply (lock, ledger, timeouts, log)", "pgsafe"),
        ("psql --single-transaction -f, one process per file", "psql"),
        ("psql, one session, BEGIN/\\i/COMMIT per file", "psql1"),
    ]
    for label, key in rows:
        ratio = med["pgsafe"] / med[key]
        print(f"{label:<52} {med[key]:>8.3f} {med[key] / n * 1000:>13.2f} {ratio:>12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
