"""A booking as the season plans it, and when its door must open.

The access window is the product's: check-in (the booking's time or the default) minus the access
lead, to check-out plus the grace, all from lock_pipeline.settings (season/config.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time

from lock_pipeline.sandbox.seed import Seed, reservation_record
from season.config import DEFAULT_CHECK_IN, DEFAULT_CHECK_OUT, GRACE, LEAD, ZONE


@dataclass
class Booking:
    """One reservation or block, as planned (the truth changes only through events)."""

    rid: str
    code: str
    listing: int
    kind: str                    # guest | block
    stays_type: str              # booked | maintenance | blocked
    check_in: date
    check_out: date
    in_time: str | None
    out_time: str | None
    guest: str
    created_at: datetime
    lead_class: str
    env_start: date | None = None    # the nights no other stay may ever use (its own and half the gaps)
    env_end: date | None = None
    change: Change | None = None
    ghost_on: list[int] = field(default_factory=list)  # listings a planned move reserves room on


@dataclass
class Change:
    kind: str
    at: datetime
    check_in: date | None = None
    check_out: date | None = None
    listing: int | None = None


@dataclass(frozen=True)
class Event:
    at: datetime
    order: int
    kind: str                   # book | modify | cancel
    rid: str
    change_kind: str = ""


def local_at(day: date, clock: str | None, default: time) -> datetime:
    """``day`` at ``clock`` (HH:MM as Stays sends it) or the default time, in the account's zone."""
    return datetime.combine(day, time.fromisoformat(clock) if clock else default, ZONE)


def check_in_at(b: Booking) -> datetime:
    return local_at(b.check_in, b.in_time, DEFAULT_CHECK_IN)


def check_out_at(b: Booking) -> datetime:
    return local_at(b.check_out, b.out_time, DEFAULT_CHECK_OUT)


def window_of(b: Booking) -> tuple[datetime, datetime]:
    return check_in_at(b) - LEAD, check_out_at(b) + GRACE


def reservation_of(b: Booking, seed: Seed) -> dict:
    """The booking as planned, as the Stays record the sandbox serves."""
    return reservation_record(
        reservation_id=b.rid, code=b.code, listing_id=seed.listings[b.listing]["_id"], check_in=b.check_in,
        check_out=b.check_out, check_in_time=b.in_time, check_out_time=b.out_time, guest_name=b.guest,
        stays_type=b.stays_type, created=b.created_at.astimezone(ZONE).date(),
    )
