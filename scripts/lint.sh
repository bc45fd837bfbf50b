#!/usr/bin/env bash
# Every linter in one command (also `make lint`, and CI after the tests): clang-format and
# clang-tidy for the C++ core, ruff (format and lint) and mypy for Python. Runs all of them and
# fails at the end if any failed, so one run shows every problem.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

./scripts/bootstrap.sh >/dev/null

failed=()
step() { printf '\n== %s\n' "$*"; }
run() {
  local name="$1"
  shift
  if "$@"; then
    echo "ok: $name"
  else
    echo "FAILED: $name"
    failed+=("$name")
  fi
}

mapfile -t cpp_files < <(find cpp -type f \( -name '*.cpp' -o -name '*.hpp' \) 2>/dev/null | LC_ALL=C sort)
mapfile -t tidy_files < <(find cpp/src cpp/bindings -maxdepth 1 -type f -name '*.cpp' 2>/dev/null | LC_ALL=C sort)

step "clang-format (${#cpp_files[@]} files)"
if [[ ${#cpp_files[@]} -gt 0 ]]; then
  run clang-format clang-format --dry-run --Werror "${cpp_files[@]}"
else
  echo "no C++ files"
fi

step "clang-tidy (${#tidy_files[@]} files)"
# The compile database comes from the editable build (build/<wheel tag>/); newest one wins.
# shellcheck disable=SC2012  # build dirs are named by wheel tag: no odd characters
compile_db="$(ls -t build/*/compile_commands.json 2>/dev/null | head -n1 || true)"
if [[ -z "$compile_db" ]]; then
  # bootstrap.sh above has built the core: a missing compile database is a broken build set-up,
  # not a reason to skip the check.
  echo "no build/*/compile_commands.json after the build (CMAKE_EXPORT_COMPILE_COMMANDS off?)"
  failed+=("clang-tidy")
elif [[ ${#tidy_files[@]} -eq 0 ]]; then
  echo "no files in cpp/src"
else
  tidy() {
    printf '%s\0' "${tidy_files[@]}" |
      xargs -0 -n1 -P "$(nproc)" clang-tidy --quiet -p "$(dirname "$compile_db")" \
        --warnings-as-errors='*' --extra-arg=-Wno-unknown-warning-option 2>/dev/null
  }
  run clang-tidy tidy
fi

step "ruff format --check"
run "ruff format" .venv/bin/ruff format --check .

step "ruff check"
run "ruff check" .venv/bin/ruff check .

step "mypy"
run mypy .venv/bin/mypy

step "stubtest (python/pgsafe/_core.pyi against the built module)"
run stubtest .venv/bin/python -m mypy.stubtest pgsafe._core

echo
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "lint: FAILED: ${failed[*]}"
  exit 1
fi
echo "lint: all clean"
