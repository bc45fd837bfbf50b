"""The one timestamp format of the file names pgsafe writes (backups, preflight and postflight
reports): ``YYYYmmddTHHMMSS.fffZ``, ISO 8601 basic format in UTC with milliseconds, e.g.
``preflight-report-20261121T091543.886Z.json``. It is fixed-width, so sorting names sorts
them by time, and `stamped_name` never hands out one name twice, so names are unique in a run."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable

__all__ = ["STAMP_PATTERN", "Stamper", "file_stamp", "parse_file_stamp", "stamped_name"]

# A stamp inside a file name (for finding and checking them; no anchors).
STAMP_PATTERN = r"\d{8}T\d{6}\.\d{3}Z"
_STAMP = re.compile(STAMP_PATTERN)
_TICK = dt.timedelta(milliseconds=1)


def _utc_ms(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        raise ValueError("file stamps are UTC: give an aware datetime")
    t = when.astimezone(dt.UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def file_stamp(when: dt.datetime) -> str:
    """`when` (aware) as ``YYYYmmddTHHMMSS.fffZ`` in UTC."""
    t = _utc_ms(when)
    return t.strftime("%Y%m%dT%H%M%S") + f".{t.microsecond // 1000:03d}Z"


def parse_file_stamp(text: str) -> dt.datetime:
    """The UTC time of the stamp in `text` (a stamp, or a file name holding one)."""
    m = _STAMP.search(text)
    if m is None:
        raise ValueError(f"{text!r}: no YYYYmmddTHHMMSS.fffZ timestamp in it")
    return dt.datetime.strptime(m[0], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)


class Stamper:
    """Hands out stamped names, each later than the one before for the same prefix and suffix
    (the process has one, behind `stamped_name`; tests make their own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], dt.datetime] = {}

    def name(
        self,
        prefix: str,
        suffix: str,
        *,
        when: dt.datetime | None = None,
        taken: Callable[[str], bool] = lambda _name: False,
    ) -> str:
        """``prefix + stamp + suffix`` for `when` (default now). Where that stamp is not later
        than the last one handed out for this prefix and suffix, or `taken(name)` says the name
        is in use, the stamp moves on a millisecond at a time: names stay in time order and
        never collide, rather than getting a counter appended (``…Z-2.json`` would sort before
        ``…Z.json``)."""
        t = _utc_ms(when or dt.datetime.now(dt.UTC))
        key = (prefix, suffix)
        with self._lock:
            last = self._last.get(key)
            if last is not None and t <= last:
                t = last + _TICK
            while taken(name := f"{prefix}{file_stamp(t)}{suffix}"):
                t += _TICK
            self._last[key] = t
        return name


_default = Stamper()


def stamped_name(
    prefix: str,
    suffix: str,
    *,
    when: dt.datetime | None = None,
    taken: Callable[[str], bool] = lambda _name: False,
) -> str:
    """`Stamper.name` of the process's stamper: the name every file pgsafe writes gets."""
    return _default.name(prefix, suffix, when=when, taken=taken)
