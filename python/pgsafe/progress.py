"""Progress of long work (backups, restores, backfills, fingerprints): a bar on a terminal,
an updating line in a Jupyter notebook (plain ``IPython.display``, no ipywidgets), and
nothing at all when output is a pipe or a file, so logs and JSON stay clean."""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

__all__ = ["Progress", "human_bytes"]


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell: Any = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class Progress:
    """``with Progress("backup", total=n, unit="bytes") as p: p.advance(k)``.

    ``mode`` is ``"auto"`` (terminal bar when *stream* is a TTY, notebook display inside a
    Jupyter kernel, else silent), ``"tty"``, ``"notebook"`` or ``"off"``. Redraws at most
    ten times a second so a fast loop does not spend its time printing.
    """

    def __init__(
        self,
        label: str,
        total: float | None = None,
        *,
        unit: str = "items",
        stream: IO[str] | None = None,
        mode: str = "auto",
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0.0
        self._stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            if os.environ.get("PGSAFE_NO_PROGRESS"):
                mode = "off"
            elif _in_notebook():
                mode = "notebook"
            elif getattr(self._stream, "isatty", lambda: False)():
                mode = "tty"
            else:
                mode = "off"
        self.mode = mode
        self._started = time.monotonic()
        self._last = 0.0
        self._handle: Any = None

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close(failed=exc_type is not None)

    def advance(self, amount: float = 1) -> None:
        self.done += amount
        self._draw()

    def update(self, done: float, total: float | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        self._draw()

    def _fmt(self, value: float) -> str:
        return human_bytes(value) if self.unit == "bytes" else f"{value:,.0f} {self.unit}"

    def line(self) -> str:
        elapsed = time.monotonic() - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        rate_s = f"{self._fmt(rate)}/s"
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 24)
            return (
                f"{self.label} [{bar:<24}] {frac:6.1%}  {self._fmt(self.done)} of "
                f"{self._fmt(self.total)}  {rate_s}"
            )
        return f"{self.label}: {self._fmt(self.done)}  {rate_s}"

    def _draw(self, force: bool = False) -> None:
        if self.mode == "off":
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        if self.mode == "tty":
            self._stream.write("\r\x1b[2K" + self.line())
            self._stream.flush()
        elif self.mode == "notebook":
            import html

            from IPython.display import HTML, display  # only inside a kernel

            content = HTML(f"<pre>{html.escape(self.line())}</pre>")  # type: ignore[no-untyped-call]
            if self._handle is None:
                self._handle = display(content, display_id=True)  # type: ignore[no-untyped-call]
            else:
                self._handle.update(content)

    def close(self, failed: bool = False) -> None:
        self._draw(force=True)
        if self.mode == "tty":
            self._stream.write(" (failed)\n" if failed else "\n")
            self._stream.flush()
