"""Benchmark pgsafe's table data fingerprint against what a user would run instead, on ~1 GB of
generated data in a throwaway server: pgbench's tables (``pgbench -i -s 50``) plus a wide
text/jsonb table.

Compared, each over every table, interleaved, best and median of ``--runs``:
- pgsafe fingerprint with ``--workers`` connections (default 2) and with one;
- a plain COPY: ``psql -c "COPY t TO STDOUT" > /dev/null`` for each table in one session,
  and the server-side ``COPY t TO '/dev/null'`` (no client, no network: the server's floor);
- ``SELECT md5(string_agg(t::text, '' ORDER BY key))``, the usual hand-written checksum.
Target: the fingerprint within 1.1x of the plain COPY. Run:
``python bench/bench_datafp.py [--scale N] [--wide-rows N] [--runs N] [--workers N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from dataset import DB, clean_env, load
from pgsafe.backup import datafp
from pgsafe.server import TemporaryServer


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=50, help="pgbench scale (default 50)")
    parser.add_argument("--wide-rows", type=int, default=800_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    settings = {"shared_buffers": "1GB", "max_wal_size": "4GB", "checkpoint_timeout": "30min"}
    with TemporaryServer(settings=settings) as server:
        t0 = time.perf_counter()
        tables = load(server, args.scale, args.wide_rows)
        dsn = server.dsn(DB)
        with server.connect(DB) as conn:
            size = int(
                conn.execute(
                    "SELECT sum(pg_relation_size(c.oid)) FROM pg_class c "
                    "WHERE relname = ANY($1::text[])",
                    ["{" + ",".join(t for t, _ in tables) + "}"],
                ).rows[0][0]
                or 0
            )
        print(
            f"loaded {len(tables)} tables, {size / 1e9:.2f} GB of heap "
            f"(pgbench -s {args.scale} + {args.wide_rows:,} wide rows) "
            f"in {time.perf_counter() - t0:.0f}s"
        )
        psql = [str(server.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn]
        copy_args = [a for t, _ in tables for a in ("-c", f"COPY {t} TO STDOUT")]
        copy_devnull = "; ".join(f"COPY {t} TO '/dev/null'" for t, _ in tables)
        md5_sql = [
            f"SELECT md5(string_agg(r::text, '' ORDER BY {key})) FROM {t} AS r" for t, key in tables
        ]
        fingerprints: list[list[datafp.TableFingerprint]] = []
        copy_bytes = 0

        def pgsafe_fp(workers: int) -> Callable[[], object]:
            def run() -> None:
                fingerprints.append(datafp.fingerprint(dsn, None, workers))

            return run

        def psql_copy() -> None:
            nonlocal copy_bytes
            out = subprocess.run(
                [*psql, *copy_args], check=True, env=clean_env(), stdout=subprocess.PIPE
            )
            copy_bytes = len(out.stdout)

        def psql_copy_devnull() -> None:
            with open(os.devnull, "wb") as sink:
                subprocess.run([*psql, *copy_args], check=True, env=clean_env(), stdout=sink)

        def server_copy() -> None:
            with server.connect(DB) as conn:
                conn.execute(copy_devnull)

        def md5_agg() -> None:
            with server.connect(DB) as conn:
                for sql in md5_sql:
                    conn.execute(sql)

        candidates: dict[str, Callable[[], object]] = {
            f"pgsafe fingerprint, {args.workers} workers": pgsafe_fp(args.workers),
            "pgsafe fingerprint, 1 worker": pgsafe_fp(1),
            "psql COPY t TO STDOUT > /dev/null": psql_copy_devnull,
            "server COPY t TO '/dev/null'": server_copy,
            "md5(string_agg(t::text ORDER BY key))": md5_agg,
        }
        psql_copy()  # warm caches; and the byte count of plain COPY text
        times: dict[str, list[float]] = {k: [] for k in candidates}
        for _ in range(args.runs):
            for label, fn in candidates.items():
                times[label].append(timed(fn))
        digests = {tuple((f.table, f.rows, f.digest) for f in run) for run in fingerprints}
        if len(digests) != 1:
            print("fingerprints differ between runs!", file=sys.stderr)
            return 1
        fp_bytes = sum(f.bytes for f in fingerprints[0])
        rows = sum(f.rows for f in fingerprints[0])
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    ours = f"pgsafe fingerprint, {args.workers} workers"
    print(
        f"{rows:,} rows, {fp_bytes / 1e9:.2f} GB of COPY text (plain COPY: "
        f"{copy_bytes / 1e9:.2f} GB); {args.runs} interleaved runs; server on "
        f"{os.cpu_count()} CPUs\n"
    )
    print(f"{'how':<40} {'best s':>8} {'median s':>9} {'MB/s':>7} {'pgsafe ratio':>13}")
    for label in candidates:
        rate = fp_bytes / 1e6 / best[label]
        print(
            f"{label:<40} {best[label]:>8.2f} {med[label]:>9.2f} {rate:>7.0f} "
            f"{best[ours] / best[label]:>12.2f}x"
        )
    one = "pgsafe fingerprint, 1 worker"
    plain = "psql COPY t TO STDOUT > /dev/null"
    print(
        f"\ntarget fingerprint <= 1.1x plain COPY: {args.workers} workers "
        f"{best[ours] / best[plain]:.2f}x, 1 worker {best[one] / best[plain]:.2f}x "
        f"({'ok' if best[ours] / best[plain] <= 1.1 else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
