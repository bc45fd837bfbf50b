"""SHA-256 in the core (OpenSSL EVP): equal to hashlib on bytes and files of every size, and
a clear ConfigError naming the path for anything that is not a readable file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers import ticking
from pgsafe import _core
from pgsafe import errors as e

MIB = 1 << 20

BLOCK = 128 << 10  # the core's read size

SIZES = [0, 1, 3, 55, 56, 63, 64, 65, 1000, BLOCK - 1, BLOCK, BLOCK + 1]
SIZES += [MIB - 1, MIB, MIB + 1, 3 * MIB + 12345]


def payload(size: int) -> bytes:
    # Deterministic, not periodic at the block size the core reads with.
    block = hashlib.sha256(str(size).encode()).digest() * 4096
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(block[:64] + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def test_known_vectors() -> None:
    assert _core.sha256_hex(b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert _core.sha256_hex(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert _core.sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") == (
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    )


@pytest.mark.parametrize("size", SIZES)
def test_sha256_hex_matches_hashlib(size: int) -> None:
    data = payload(size)
    digest = _core.sha256_hex(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert len(digest) == 64 and digest == digest.lower()


def test_sha256_hex_binary_and_nul_bytes() -> None:
    data = bytes(range(256)) * 17 + b"\x00\x00"
    assert _core.sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_sha256_hex_requires_bytes() -> None:
    with pytest.raises(TypeError):
        _core.sha256_hex(12)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", SIZES)
def test_sha256_file_matches_hashlib(tmp_path: Path, size: int) -> None:
    data = payload(size)
    path = tmp_path / f"file-{size}.bin"
    path.write_bytes(data)
    assert _core.sha256_file(str(path)) == hashlib.sha256(data).hexdigest()
    assert _core.sha256_file(str(path)) == _core.sha256_hex(data)


def test_sha256_file_of_a_sql_file_with_utf8_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "001_é🐘.up.sql"
    data = "CREATE TABLE t (v text DEFAULT 'é🐘');\r\n-- comment\r\n".encode()
    path.write_bytes(data)
    assert _core.sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


def test_missing_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "no_such_migration.up.sql"
    with pytest.raises(e.ConfigError) as info:
        _core.sha256_file(str(path))
    assert str(path) in str(info.value)
    assert "No such file or directory" in str(info.value)
    assert info.value.exit_code == 5


def test_directory_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(e.ConfigError) as info:
        _core.sha256_file(str(tmp_path))
    assert str(tmp_path) in str(info.value)
    assert "directory" in str(info.value).lower()


def test_unreadable_special_file_is_a_config_error() -> None:
    # /proc/self/mem cannot be read from offset 0, even by root.
    with pytest.raises(e.ConfigError) as info:
        _core.sha256_file("/proc/self/mem")
    assert "/proc/self/mem" in str(info.value)


# Imports the core as root, then drops to an unprivileged user before hashing.
_UNREADABLE_CHECK = """
import os, sys
from pgsafe import _core, errors
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
try:
    _core.sha256_file(sys.argv[1])
except errors.ConfigError as exc:
    print("ConfigError:", exc)
    sys.exit(0)
print("read it")
sys.exit(1)
"""


def test_file_without_read_permission_is_a_config_error(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        path = tmp_path / "secret.sql"
        path.write_bytes(b"SELECT 1;\n")
        path.chmod(0)
        with pytest.raises(e.ConfigError) as info:
            _core.sha256_file(str(path))
        assert str(path) in str(info.value)
        assert "Permission denied" in str(info.value)
        return
    # Root reads anything: check as an unprivileged user in a child process instead, in a
    # directory that user can enter (pytest's tmp_path is private to root).
    with tempfile.TemporaryDirectory(prefix="pgsafe-checksum-") as tmp:
        os.chmod(tmp, 0o711)
        path = Path(tmp) / "secret.sql"
        path.write_bytes(b"SELECT 1;\n")
        path.chmod(0)
        result = subprocess.run(
            [sys.executable, "-c", _UNREADABLE_CHECK, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ConfigError:")
    assert str(path) in result.stdout
    assert "Permission denied" in result.stdout


def test_hashing_large_input_releases_the_gil(tmp_path: Path) -> None:
    data = payload(8 * MIB)
    expected = hashlib.sha256(data).hexdigest()
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    during = 0
    in_core = 0.0
    with ticking(0.0005, settle=0.01) as ticker:
        # Count the other thread's progress only while the core hashes.
        while in_core < 0.3:
            for call in (lambda: _core.sha256_file(str(path)), lambda: _core.sha256_hex(data)):
                before = ticker.count
                started = time.monotonic()
                assert call() == expected
                in_core += time.monotonic() - started
                during += ticker.count - before
    assert during >= 10, (during, in_core)
