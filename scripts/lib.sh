# shellcheck shell=bash
# What the scripts share; sourced (`. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"`), never run.
# Sets ROOT (the checkout) and PYTHON (default python3), and defines say and die, which name the
# script that sourced this file. say writes to stderr, or to stdout with SAY_STDOUT=1 set
# before sourcing (bootstrap's progress is its output).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
_SCRIPT="$(basename "${BASH_SOURCE[1]:-$0}" .sh)"

say() {
  if [[ -n "${SAY_STDOUT:-}" ]]; then
    printf '%s: %s\n' "$_SCRIPT" "$*"
  else
    printf '%s: %s\n' "$_SCRIPT" "$*" >&2
  fi
}
die() {
  printf '%s: error: %s\n' "$_SCRIPT" "$*" >&2
  exit 1
}

# $PYTHON exists and is Python 3.11 or newer, else one line saying what to set.
need_python() {
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=/path/to/python3.11+)"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$PYTHON is $("$PYTHON" -V 2>&1); pgsafe needs Python >= 3.11 (set PYTHON=...)"
}
