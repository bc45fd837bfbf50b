"""The JSON-lines event log of runs (``logs/migrations.jsonl``): one object per line, every
step of every run, with a run id so concurrent runners can be told apart."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from pgsafe.errors import mask_password


class EventLog:
    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.run_id = uuid.uuid4().hex[:12]
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        record = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            + f".{int(time.time() * 1000) % 1000:03d}Z",
            "run": self.run_id,
            "pid": os.getpid(),
            "event": event,
        }
        for key, value in fields.items():
            record[key] = mask_password(value) if isinstance(value, str) else value
        line = json.dumps(record, default=str) + "\n"
        # One write() per line on an O_APPEND descriptor: concurrent runs never interleave lines.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
