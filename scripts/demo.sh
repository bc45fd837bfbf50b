#!/usr/bin/env bash
# Set-up command 1: installs what is missing, then runs pgsafe's main job on its embedded
# default: applies ./migrations to a throwaway local PostgreSQL server and prints the status.
# Extra arguments are passed to `pgsafe apply`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

./scripts/bootstrap.sh

# The demo must never touch a real database: drop every way a target could be chosen from the
# environment (DATABASE_URL, libpq's PG* variables including PGSERVICE), so pgsafe falls back to
# its embedded throwaway server. pgsafe's own PGSAFE_* settings stay.
unset DATABASE_URL
while IFS= read -r var; do
  unset "$var"
done < <(compgen -e | grep '^PG' | grep -v '^PGSAFE_' || true)

echo "demo: pgsafe apply --apply migrations (embedded throwaway PostgreSQL)"
exec "$ROOT/.venv/bin/pgsafe" apply --apply migrations "$@"
