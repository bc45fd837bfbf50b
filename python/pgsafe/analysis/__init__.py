"""What a statement does, read from its parse tree: touches, locks, destructive changes,
estimates."""
