"""Builds and runs the C++ unit tests (cpp/tests/*.cpp, GoogleTest) through CMake and ctest.

Uses its own build directory (build/ctest) with -DPGSAFE_BUILD_TESTS=ON, the same pybind11 and
Python as this interpreter, and builds only the `pgsafe_core_tests` target. Skipped only when
cmake or GoogleTest is not installed; any other configure, build or test failure fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "ctest"
BIN = Path(sys.executable).parent

_GTEST_MISSING = ('provided by "GTest"', "Could NOT find GTest", "GTestConfig.cmake")


def _tool(name: str) -> str | None:
    local = BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def _run(argv: list[str], what: str, timeout: float) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        output = (result.stdout + "\n" + result.stderr)[-8000:]
        if what == "configure" and any(marker in output for marker in _GTEST_MISSING):
            pytest.skip("GoogleTest (libgtest-dev) is not installed: cannot build the C++ tests")
        pytest.fail(f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{output}")
    return result


@pytest.mark.timeout(1800)
def test_cpp_unit_tests_pass() -> None:
    cmake = _tool("cmake")
    ctest = _tool("ctest")
    if cmake is None or ctest is None:
        pytest.skip("cmake/ctest not found on PATH: cannot build the C++ tests")
    pybind11_dir = subprocess.run(
        [sys.executable, "-m", "pybind11", "--cmakedir"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    configure = [
        cmake,
        "-S",
        str(ROOT),
        "-B",
        str(BUILD),
        "-DPGSAFE_BUILD_TESTS=ON",
        f"-Dpybind11_DIR={pybind11_dir}",
        f"-DPython_EXECUTABLE={sys.executable}",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    ninja = _tool("ninja")
    if ninja is not None and not (BUILD / "CMakeCache.txt").exists():
        configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
    _run(configure, "configure", timeout=600)

    jobs = str(max(1, os.cpu_count() or 1))
    _run(
        [cmake, "--build", str(BUILD), "--target", "pgsafe_core_tests", "--parallel", jobs],
        "build",
        timeout=1500,
    )

    result = _run(
        [ctest, "--test-dir", str(BUILD), "--output-on-failure", "--timeout", "120"],
        "ctest",
        timeout=600,
    )
    summary = result.stdout
    # ctest prints "100% tests passed, 0 tests failed out of N"; N must not be 0.
    assert "100% tests passed" in summary, summary[-4000:]
    total = int(summary.rsplit("out of", 1)[1].split()[0])
    assert total >= 20, summary[-4000:]
    for suite in (
        "Sha256Hex.",
        "Sha256File.",
        "LineColumn.",
        "Statement.",
        "Framing.",
        "Sealing.",
    ):
        assert suite in summary, f"no {suite} tests ran:\n{summary[-4000:]}"
