"""Migration tests: `pgsafe test`'s round trip, generated rows, data fingerprints, the harness and
the pytest plugin."""
