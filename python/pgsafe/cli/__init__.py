"""The `pgsafe` command line: one module per command, shared flags and output in `_common`."""
