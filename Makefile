# Thin wrappers: the scripts are the source of truth (and work without make).
# Pass pytest arguments with ARGS, e.g. `make test ARGS="-k lint -x"`.

.PHONY: all bootstrap test demo lint bench errors wheel clean

ARGS ?=

all: test

bootstrap:
	./scripts/bootstrap.sh

test:
	./scripts/test.sh $(ARGS)

demo:
	./scripts/demo.sh

lint:
	./scripts/lint.sh

# The manylinux wheel and the sdist in dist/ (cached per source hash in build/wheel/).
wheel:
	./scripts/wheel.sh

# Every benchmark in bench/, each a standalone script.
bench: bootstrap
	@set -e; for f in bench/bench_*.py; do \
	  [ -e "$$f" ] || { echo "no benchmarks in bench/"; break; }; \
	  echo "== $$f"; .venv/bin/python "$$f"; \
	done

# Regenerate the SQLSTATE exception classes in python/pgsafe/errors.py.
errors:
	python3 tools/gen_errors.py

clean:
	rm -rf build .setup-stamp .pytest_cache .mypy_cache .ruff_cache
