"""Pure rules of delivery: when to try again, when to give up, what the Stays field says.

No I/O and no clock of their own: the caller passes ``now``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

FIRST_RETRY_AFTER = timedelta(minutes=1)    # after a failed attempt: 1 min, then doubling ...
LONGEST_WAIT = timedelta(hours=2)           # ... up to this between two attempts ...
GIVE_UP_AFTER = timedelta(hours=24)         # ... for this long after the event, then the row is dead
STOPPED_CHANNEL_PROBE_EVERY = timedelta(hours=1)  # a stopped channel (Stays refused writes) is tried this often


def next_attempt_at(failed_attempts: int, occurred_at: datetime, now: datetime) -> datetime | None:
    """When to try again after ``failed_attempts`` failures of an event that happened at ``occurred_at``;
    None once the give-up horizon is reached (the row is then dead, and a person is told).

    1, 2, 4, 8, ... minutes, never more than LONGEST_WAIT between attempts, and a last attempt at the
    horizon itself, so a receiver that comes back within 24 h loses nothing.
    """
    if failed_attempts < 1:
        raise ValueError("next_attempt_at is for a row that failed at least once")
    give_up_at = occurred_at + GIVE_UP_AFTER
    if now >= give_up_at:
        return None
    wait = min(FIRST_RETRY_AFTER * 2 ** min(failed_attempts - 1, 20), LONGEST_WAIT)
    return min(now + wait, give_up_at)


def probe_due(stopped_at: datetime | None, last_probe_at: datetime | None, now: datetime) -> bool:
    """A stopped channel is tried again (one row) once an hour, so fixing the cause resumes it by itself."""
    if stopped_at is None:
        return True
    return (last_probe_at or stopped_at) + STOPPED_CHANNEL_PROBE_EVERY <= now


def stays_field_value(online: str | None, backup: str | None) -> str:
    """What the reservation's door-code field says: the digits a guest types, "" when there are none.

    With an offline backup code beside the online PIN, both, the online one first: e.g.
    ``4829137 (backup: 93817264)``. A backup code alone is written as it is.
    """
    if online and backup:
        return f"{online} (backup: {backup})"
    return online or backup or ""
