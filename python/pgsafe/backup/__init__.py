"""Backups: streaming writer, manifest, restore (plain and --force), verification."""
