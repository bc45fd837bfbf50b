"""The JSON-lines event log of runs (``logs/migrations.jsonl``): one object per line, every
step of every run, with a run id so concurrent runners can be told apart."""

from __future__ import annotations

import json
import os
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

from pgsafe.errors import mask_password


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
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND and one write() per line: concurrent runs never interleave their lines.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            weakref.finalize(self, os.close, self._fd)
        os.write(self._fd, line.encode())
