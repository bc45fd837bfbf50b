"""Migration tests: `pgsafe test`'s round trip, generated rows, the harness and its assertions
(`from pgsafe.testing import MigrationHarness, assert_schema_parity, ...`), the pytest plugin.
The harness loads on first use, so the plugin's import stays light."""

from pgsafe import lazy_attributes

_HARNESS = "pgsafe.testing.harness"
__all__ = [
    "DataLossError",
    "MigrationHarness",
    "assert_max_lock",
    "assert_no_data_loss",
    "assert_no_rewrite",
    "assert_schema_parity",
    "no_data_loss",
    "target_dsn",
]
__getattr__, __dir__ = lazy_attributes(__name__, dict.fromkeys(__all__, _HARNESS))
