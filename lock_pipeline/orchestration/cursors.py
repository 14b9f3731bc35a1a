"""A sensor's memory of what it launched recently, kept in its cursor.

A run key is spent forever once used, whatever the run's outcome; so the sensors add a time
slot to their keys and remember here what they launched, to launch it again only once that
memory has passed (when the run died before its work was done).
"""

import json
from datetime import datetime, timedelta


def launched_recently(cursor: str | None, now: datetime, memory: timedelta) -> dict[str, str]:
    """Keys launched less than ``memory`` ago (key -> ISO instant); a bad cursor is dropped (run keys still dedupe)."""
    try:
        launched = json.loads(cursor or "{}")
        return {k: v for k, v in launched.items() if now - datetime.fromisoformat(v) < memory}
    except (ValueError, TypeError, AttributeError):
        return {}


def slot(now: datetime, length: timedelta) -> int:
    """The ``length``-long slot ``now`` falls in: one launch of the same work per slot at most."""
    return int(now.timestamp() // length.total_seconds())
