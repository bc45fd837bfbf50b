"""Backups: the streaming writer, manifest and keys, restore (plain and --force), verification,
and the data fingerprints restores are checked with (`from pgsafe.backup import backup, ...`).
The names load on first use."""

from pgsafe import lazy_attributes

__all__ = [
    "BackupInfo",
    "BackupResult",
    "RestoreResult",
    "VerifyReport",
    "backup",
    "latest_backup",
    "load_key",
    "partial_restore",
    "restore",
    "verify_backup",
]
__getattr__, __dir__ = lazy_attributes(__name__, dict.fromkeys(__all__, "pgsafe.backup.core"))
