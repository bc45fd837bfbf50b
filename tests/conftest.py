"""Shared test configuration: kept minimal on purpose, fixtures live beside the tests using them.

The pgsafe fixtures (pgsafe_server, pgsafe_template, pgsafe_db) come from the package's own
pytest11 entry point; pytester is enabled so plugin behaviour can be tested in a subprocess.
"""

pytest_plugins = ["pytester"]
