"""Benchmark pgsafe's throwaway server against doing the same by hand with PostgreSQL's tools.

Prints cold start (initdb + start until ready), stop, and a fresh database per test (clone from a
template, connect, drop), each as the median of several runs, plus FILE_COPY vs WAL_LOG clones.
Run: ``python bench/bench_server.py [--runs N] [--clones N]``.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgsafe.server import TemporaryServer, find_pg_bindir, server_os_user

SMALL_SCHEMA = [
    "CREATE TABLE account (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, created date)",
    "INSERT INTO account SELECT g, 'user' || g || '@example.com', now() "
    "FROM generate_series(1, 1000) g",
    "CREATE TABLE job (id bigserial PRIMARY KEY, account_id bigint REFERENCES account, body jsonb)",
    "CREATE INDEX job_account ON job (account_id)",
]


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def timed(fn: Callable[..., Any], *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def server_user_kwargs() -> dict[str, Any]:
    """Popen arguments that run a command the way pgsafe runs the server (not as root)."""
    name = server_os_user()
    if name is None:
        return {}
    entry = pwd.getpwnam(name)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class ByHand:
    """``initdb`` + ``pg_ctl -w start`` / ``stop`` in a shell, as a user would type them."""

    def __init__(self, bindir: Path, base: Path, tuned: bool) -> None:
        self.bindir, self.base, self.tuned = bindir, base, tuned
        self.dir: Path | None = None

    def _sh(self, script: str) -> None:
        assert self.dir is not None
        subprocess.run(
            ["sh", "-c", script],
            check=True,
            cwd=self.dir,
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **server_user_kwargs(),
        )

    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-byhand-", dir=self.base))
        kwargs = server_user_kwargs()
        if kwargs:
            os.chown(self.dir, kwargs["user"], kwargs["group"])
        d = shlex.quote(str(self.dir))
        initdb_flags = "--no-sync -E UTF8 --locale=C" if self.tuned else ""
        server_flags = "-c fsync=off -c synchronous_commit=off" if self.tuned else ""
        self._sh(
            f"{self.bindir}/initdb -D {d}/data -U postgres -A trust {initdb_flags} && "
            f"{self.bindir}/pg_ctl -D {d}/data -l {d}/log -w "
            f"-o \"-k {d} -p 5499 -c listen_addresses='' {server_flags}\" start"
        )

    def abandon(self) -> None:
        """After a failed run: make sure nothing is left running or on disk."""
        if self.dir is None:
            return
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
            cwd=self.dir,
            **server_user_kwargs(),
        )
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def stop(self) -> None:
        assert self.dir is not None
        d = shlex.quote(str(self.dir))
        self._sh(f"{self.bindir}/pg_ctl -D {d}/data -m fast -w stop")
        shutil.rmtree(self.dir)
        self.dir = None


def bench_lifecycle(runs: int, bindir: Path, pgsafe_base: Path) -> dict[str, tuple[float, float]]:
    variants: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    samples: dict[str, tuple[list[float], list[float]]] = {}
    for _ in range(runs):
        # One run of each variant per round, so the machine's load drifts over all of them alike.
        server = TemporaryServer(bindir=bindir)
        variants["pgsafe"] = (server.start, server.stop)
        hands = {
            "by hand": ByHand(bindir, Path(tempfile.gettempdir()), tuned=False),
            "by hand, same flags+dir": ByHand(bindir, pgsafe_base, tuned=True),
        }
        variants.update({label: (hand.start, hand.stop) for label, hand in hands.items()})
        try:
            for label, (start, stop) in variants.items():
                starts, stops = samples.setdefault(label, ([], []))
                starts.append(timed(start))
                stops.append(timed(stop))
        finally:
            server.stop()
            for hand in hands.values():
                hand.abandon()
    return {label: (median_ms(a), median_ms(b)) for label, (a, b) in samples.items()}


def bench_db_per_test(server: TemporaryServer, clones: int) -> tuple[float, float]:
    from pgsafe._core import Connection

    server.create_database("bench_template")
    with server.connect("bench_template") as conn:
        for sql in SMALL_SCHEMA:
            conn.execute(sql)

    def pgsafe_way(i: int) -> None:
        name = f"bench_pgsafe_{i}"
        server.create_database(name, template="bench_template")
        with Connection(server.dsn(name)) as conn:
            conn.execute("SELECT 1")
        server.drop_database(name)

    target = ["-h", server.host, "-p", str(server.port), "-U", server.user]

    def by_hand(i: int) -> None:
        name = f"bench_hand_{i}"
        run: dict[str, Any] = {"check": True, "capture_output": True, "env": clean_env()}
        subprocess.run(
            [str(server.bindir / "createdb"), *target, "-T", "bench_template", name], **run
        )
        subprocess.run(
            [str(server.bindir / "psql"), *target, "-d", name, "-Atc", "SELECT 1"], **run
        )
        subprocess.run([str(server.bindir / "dropdb"), *target, name], **run)

    ours, theirs = [], []
    for i in range(clones):
        ours.append(timed(pgsafe_way, i))
        theirs.append(timed(by_hand, i))
    server.drop_database("bench_template")
    return median_ms(ours), median_ms(theirs)


def bench_strategies(base: Path, clones: int, bindir: Path) -> dict[tuple[str, str], float]:
    results: dict[tuple[str, str], list[float]] = {}
    with TemporaryServer(bindir=bindir, base_dir=base) as server:
        server.create_database("tpl_empty")
        server.create_database("tpl_small")
        with server.connect("tpl_small") as conn:
            for sql in SMALL_SCHEMA:
                conn.execute(sql)
        for i in range(clones):
            # Interleaved so drift in the machine's load hits both strategies alike.
            for template in ("tpl_empty", "tpl_small"):
                for strategy in ("FILE_COPY", "WAL_LOG"):
                    name = f"c_{strategy.lower()}_{i}"
                    sql = f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY {strategy}"
                    results.setdefault((template, strategy), []).append(timed(server.execute, sql))
                    server.drop_database(name)
    return {key: median_ms(samples) for key, samples in results.items()}


def row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(row(header, widths))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(row(r, widths))
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold starts per variant (default 5)")
    parser.add_argument("--clones", type=int, default=20, help="databases per variant (default 20)")
    args = parser.parse_args()

    bindir = find_pg_bindir()
    user = server_os_user()
    with TemporaryServer(bindir=bindir) as server:
        version, base = server.version, Path(server.tempdir).parent
        print(
            f"PostgreSQL {version} from {bindir}; pgsafe's temp dirs under {base}; "
            f"server runs as {user or 'the caller'}; medians of {args.runs} starts and "
            f"{args.clones} databases\n"
        )
        db_ours, db_hand = bench_db_per_test(server, args.clones)

    life = bench_lifecycle(args.runs, bindir, base)
    ours_start, ours_stop = life["pgsafe"]
    hand_start, hand_stop = life["by hand"]
    tuned_start, tuned_stop = life["by hand, same flags+dir"]

    def ratio(theirs: float, ours: float) -> str:
        return f"{theirs / ours:.1f}x"

    print_table(
        ["step", "pgsafe ms", "by hand ms", "ratio", "by hand, same flags+dir ms", "ratio"],
        [
            [
                "cold start (initdb + ready)",
                f"{ours_start:.0f}",
                f"{hand_start:.0f}",
                ratio(hand_start, ours_start),
                f"{tuned_start:.0f}",
                ratio(tuned_start, ours_start),
            ],
            [
                "stop + remove",
                f"{ours_stop:.0f}",
                f"{hand_stop:.0f}",
                ratio(hand_stop, ours_stop),
                f"{tuned_stop:.0f}",
                ratio(tuned_stop, ours_stop),
            ],
            [
                "fresh db per test",
                f"{db_ours:.1f}",
                f"{db_hand:.1f}",
                ratio(db_hand, db_ours),
                "",
                "",
            ],
        ],
    )
    print(
        "by hand: initdb -U postgres -A trust; pg_ctl -w start / -m fast -w stop; rm -rf; "
        "per test: createdb -T template, psql -c 'SELECT 1', dropdb (same server)\n"
    )

    bases = [base]
    if Path(tempfile.gettempdir()).resolve() != base.resolve():
        bases.append(Path(tempfile.gettempdir()))
    strategy_rows = []
    for where in bases:
        clones = args.clones if where == base else max(3, args.clones // 4)
        medians = bench_strategies(where, clones, bindir)
        for template in ("tpl_empty", "tpl_small"):
            fc, wl = medians[(template, "FILE_COPY")], medians[(template, "WAL_LOG")]
            strategy_rows.append(
                [
                    f"{where}, {template}",
                    f"{fc:.1f}",
                    f"{wl:.1f}",
                    "FILE_COPY" if fc < wl else "WAL_LOG",
                ]
            )
    print_table(
        ["CREATE DATABASE ... TEMPLATE", "FILE_COPY ms", "WAL_LOG ms", "faster"], strategy_rows
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
