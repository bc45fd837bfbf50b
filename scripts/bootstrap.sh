#!/usr/bin/env bash
# Installs whatever pgsafe needs on this machine and is missing: Debian packages, the .venv, and
# an editable build of the package with its C++ core. Idempotent; when nothing changed it only
# checks (well under a second). Called by demo.sh, test.sh and lint.sh; safe to run by hand.
#
# Environment: PYTHON (interpreter for the venv, default python3),
#              PGSAFE_SKIP_APT=1 (trust the system packages; for machines without apt).
set -euo pipefail

SAY_STDOUT=1 # progress is bootstrap's output
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMP="$ROOT/.setup-stamp"

# One bootstrap at a time per checkout (demo and tests may be started together).
mkdir -p "$ROOT/build"
exec 9>"$ROOT/build/.bootstrap.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

# --- Debian packages -------------------------------------------------------------------------
# The postgresql package may create and start a "main" cluster service; pgsafe never uses it
# (tests and the demo start their own throwaway servers), so nothing here starts or relies on it.
APT_PACKAGES=(
  postgresql-15 postgresql-client-15 postgresql-contrib
  libpq-dev libssl-dev libspdlog-dev libfmt-dev libzstd-dev zlib1g-dev
  libgtest-dev libxxhash-dev
  clang-format clang-tidy cmake g++ make zstd
)

as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run: $* (install sudo or run as root)"
  fi
}

install_apt_packages() {
  local missing=() pkg status
  # pyenv/python.org interpreters ship venv, ensurepip and Python.h; Debian's python3 splits
  # them out (the C++ core's build needs the headers).
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    [[ "$PYTHON" != python3 ]] || APT_PACKAGES+=(python3 python3-venv python3-dev)
  elif ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    APT_PACKAGES+=(python3-venv)
  fi
  if command -v "$PYTHON" >/dev/null 2>&1 && ! "$PYTHON" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    >/dev/null 2>&1; then
    APT_PACKAGES+=(python3-dev)
  fi
  for pkg in "${APT_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == installed ]] || missing+=("$pkg")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    say "system packages: ok"
    return
  fi
  say "installing system packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "system packages: installed"
}

if [[ "${PGSAFE_SKIP_APT:-0}" == 1 ]]; then
  say "system packages: skipped (PGSAFE_SKIP_APT=1)"
elif ! command -v dpkg-query >/dev/null 2>&1; then
  say "system packages: not a Debian system, skipping (install the equivalents of: ${APT_PACKAGES[*]})"
else
  install_apt_packages
fi

# --- virtualenv ------------------------------------------------------------------------------
need_python

if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating .venv with $("$PYTHON" -V 2>&1)"
  "$PYTHON" -m venv "$VENV"
  rm -f "$STAMP"
  say "upgrading pip"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi

# --- editable install ------------------------------------------------------------------------
# Rebuild when a build input changes: pyproject, CMake, any C++ file. Python files need no
# reinstall: the editable install puts python/pgsafe itself on the package's search path.
source_hash() {
  {
    cat pyproject.toml CMakeLists.txt 2>/dev/null || true
    if [[ -d cpp ]]; then
      find cpp -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum
    fi
    "$VENV/bin/python" -V 2>&1
  } | sha256sum | cut -d' ' -f1
}

core_imports() {
  "$VENV/bin/python" -I -c "import pgsafe._core" >/dev/null 2>&1
}

want="$(source_hash)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" == "$have" ]] && core_imports; then
  say "pgsafe (editable, with C++ core): up to date"
  exit 0
fi

# The build requirements come from pyproject.toml, so they are declared in one place.
mapfile -t build_requires < <("$VENV/bin/python" -c '
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))
')
say "installing build tools: ${build_requires[*]} ninja"
"$VENV/bin/python" -m pip install -q "${build_requires[@]}" ninja

say "building and installing pgsafe (editable, C++ core); this takes a minute"
"$VENV/bin/python" -m pip install -q --no-build-isolation -e '.[dev]'

core_imports || die "pgsafe._core does not import after the build; see the output above"
echo "$want" >"$STAMP"
say "pgsafe (editable, with C++ core): installed"
