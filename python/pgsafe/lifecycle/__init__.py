"""The lifecycle steps: dry-run and trace, preflight, apply (runner and ledger), postflight,
rollback."""
