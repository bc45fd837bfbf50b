"""Benchmark pgsafe's file SHA-256 (the C++ core, OpenSSL EVP) against `sha256sum` and
`openssl dgst -sha256` on one ~1 GiB file, warm in the page cache, so the figure is the
hashing and reading loop, not the disk. Runs interleave; the best and the median of each are
printed with pgsafe's ratio (target: within 1.05x of openssl). Run:
``python bench/bench_checksum.py [--size-mb N] [--runs N] [--file PATH]``.
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
from collections.abc import Callable
from pathlib import Path

from pgsafe import _core


def make_file(path: Path, size_mb: int) -> None:
    block = os.urandom(1 << 20)
    with path.open("wb") as out:
        for i in range(size_mb):
            # Different bytes per MiB without paying for 1 GiB of urandom.
            out.write(i.to_bytes(8, "little") + block[8:])


def timed(fn: Callable[[], str]) -> tuple[float, str]:
    start = time.perf_counter()
    digest = fn()
    return time.perf_counter() - start, digest


def command(argv: list[str]) -> Callable[[], str]:
    def run() -> str:
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        return out.split()[-1] if argv[0].endswith("openssl") else out.split()[0]

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--file", help="hash this file instead of a generated one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pgsafe-bench-") as tmp:
        path = Path(args.file) if args.file else Path(tmp) / "big.bin"
        if not args.file:
            make_file(path, args.size_mb)
        size = path.stat().st_size
        candidates: dict[str, Callable[[], str]] = {
            "pgsafe core (sha256_file)": lambda: _core.sha256_file(path),
        }
        for label, argv in [
            ("openssl dgst -sha256", ["openssl", "dgst", "-sha256", str(path)]),
            ("sha256sum", ["sha256sum", str(path)]),
        ]:
            if shutil.which(argv[0]):
                candidates[label] = command([shutil.which(argv[0]) or argv[0], *argv[1:]])
            else:
                print(f"({argv[0]} not installed: skipped)")
        for fn in candidates.values():  # warm the page cache and check they agree
            fn()
        times: dict[str, list[float]] = {k: [] for k in candidates}
        digests: set[str] = set()
        for _ in range(args.runs):
            for label, fn in candidates.items():
                seconds, digest = timed(fn)
                times[label].append(seconds)
                digests.add(digest)
        if len(digests) != 1:
            print(f"digests differ: {sorted(digests)}", file=sys.stderr)
            return 1
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    ours = "pgsafe core (sha256_file)"
    print(f"SHA-256 of {size / (1 << 20):.0f} MiB (page cache warm), {args.runs} interleaved runs")
    print(f"{'how':<28} {'best s':>8} {'median s':>9} {'MiB/s':>8} {'pgsafe ratio':>13}")
    for label in candidates:
        rate = size / (1 << 20) / best[label]
        ratio = best[ours] / best[label]
        print(f"{label:<28} {best[label]:>8.3f} {med[label]:>9.3f} {rate:>8.0f} {ratio:>12.3f}x")
    if "openssl dgst -sha256" in best:
        ratio = best[ours] / best["openssl dgst -sha256"]
        verdict = "ok" if ratio <= 1.05 else "MISSED"
        print(f"\ntarget pgsafe <= 1.05x openssl (best of runs): {ratio:.3f}x {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
