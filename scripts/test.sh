#!/usr/bin/env bash
# Set-up command 2: installs what is missing, then runs the whole test suite against real,
# throwaway PostgreSQL servers. Arguments go to pytest (e.g. ./scripts/test.sh -k lint -x).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

./scripts/bootstrap.sh

exec "$ROOT/.venv/bin/python" -m pytest "$@"
