"""The JSON-lines event log of runs (``logs/migrations.jsonl``): one object per line, every
step of every run, with a run id so concurrent runners can be told apart.

The log directory and what pgsafe writes in it (the event log, preflight and postflight
reports) hold queries, table names and hosts: like backups, a directory pgsafe creates is 0700
and a file it creates 0600 (`private_dir`, `create_private`)."""

from __future__ import annotations

import json
import os
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

from pgsafe.errors import mask_password

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: str | Path) -> Path:
    """Creates `path` (and missing parents) if needed; the directory pgsafe creates is 0700. An
    existing directory keeps the mode its owner gave it."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    return p


def create_private(path: str | Path, *, append: bool = False, exclusive: bool = False) -> int:
    """A file descriptor for writing `path`, created 0600 if it does not exist (`exclusive`:
    FileExistsError if it does); `append` opens it O_APPEND, else it is truncated."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    flags |= os.O_APPEND if append else os.O_TRUNC
    if exclusive:
        flags |= os.O_EXCL
    return os.open(path, flags, PRIVATE_FILE_MODE)


def write_private(path: str | Path, text: str, *, exclusive: bool = False) -> None:
    """Writes `text` (UTF-8) to `path`, a file created 0600."""
    with os.fdopen(create_private(path, exclusive=exclusive), "w", encoding="utf-8") as out:
        out.write(text)


class EventLog:
    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.run_id = uuid.uuid4().hex[:12]
        self._fd: int | None = None

    def write(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        now = time.time()
        record = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}Z",
            "run": self.run_id,
            "pid": os.getpid(),
            "event": event,
        }
        for key, value in fields.items():
            record[key] = mask_password(value) if isinstance(value, str) else value
        line = json.dumps(record, default=str) + "\n"
        if self._fd is None:
            private_dir(self.path.parent)
            # O_APPEND and one write() per line: concurrent runs never interleave their lines.
            self._fd = create_private(self.path, append=True)
            weakref.finalize(self, os.close, self._fd)
        os.write(self._fd, line.encode())
