"""The one clock every "now" in the pipeline comes from.

Logic never calls ``datetime.now()`` itself: it is handed a :class:`Clock`, so tests
and the season simulator can move time. Instants are always timezone-aware UTC.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """A clock that only moves when told to; shared safely between threads."""

    def __init__(self, start: datetime) -> None:
        _require_aware(start)
        self._now = start.astimezone(timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, instant: datetime) -> None:
        _require_aware(instant)
        with self._lock:
            self._now = instant.astimezone(timezone.utc)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now


class FileClock:
    """A clock read from a file holding an ISO instant.

    Lets separate processes (the Dagster daemon, run workers, the sandboxes) share one
    simulated "now" during a season simulation. Falls back to wall-clock time when the
    file is absent.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def now(self) -> datetime:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return datetime.now(timezone.utc)
        instant = datetime.fromisoformat(text)
        _require_aware(instant)
        return instant.astimezone(timezone.utc)

    def set(self, instant: datetime) -> None:
        _require_aware(instant)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(instant.astimezone(timezone.utc).isoformat())
        tmp.replace(self.path)


CLOCK_FILE_ENV = "LOCK_PIPELINE_CLOCK_FILE"


def clock_from_environment() -> Clock:
    """Wall-clock time unless a simulation pointed ``LOCK_PIPELINE_CLOCK_FILE`` at a file."""
    path = os.environ.get(CLOCK_FILE_ENV)
    return FileClock(Path(path)) if path else SystemClock()


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant!r}: the pipeline only handles aware instants")
