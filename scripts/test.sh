#!/usr/bin/env bash
# Set-up command 2: installs what is missing, then runs the whole test suite against real,
# throwaway PostgreSQL servers. Arguments go to pytest (e.g. ./scripts/test.sh -k lint -x).
# Tests run on one pytest-xdist worker per CPU (PGSAFE_TEST_WORKERS=N to choose, 0 for none);
# each worker starts its own servers and runs whole modules (--dist loadfile: a module's tests
# share its fixtures, and test_exit_codes' last test checks what the others walked).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

./scripts/bootstrap.sh

exec "$ROOT/.venv/bin/python" -m pytest -n "${PGSAFE_TEST_WORKERS:-auto}" --dist loadfile "$@"
