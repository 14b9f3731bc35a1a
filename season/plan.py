"""The whole season, decided by the seed before anything runs: the account, every booking and
change with the moment it reaches Stays, and the fault schedule.

Bookings are made months to minutes ahead (same-day turnovers, last-minute arrivals,
maintenance blocks), and some are modified (earlier, later, longer, shorter, to another listing)
or cancelled before or after their PIN exists (changes.py). One random stream draws everything in
a fixed order, so the same seed gives the same season: reordering the draws changes every season.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from lock_pipeline.sandbox.seed import Seed, SeedLock, hex_id, listing_record, tuya_device_id
from season.bookings import Booking, Event, check_in_at, reservation_of
from season.changes import plan_change, plan_moves, set_envelopes
from season.config import SeasonConfig
from season.faults.base import FaultSpec
from season.faults.schedule import plan_faults
from season.names import FIRST_NAMES, LAST_NAMES, STREETS

# Lead time (booking -> check-in): from months to minutes.
_LEADS = [("months", 0.22, timedelta(days=30), timedelta(days=120)),
          ("weeks", 0.28, timedelta(days=7), timedelta(days=30)),
          ("days", 0.25, timedelta(days=1), timedelta(days=7)),
          ("hours", 0.15, timedelta(hours=2), timedelta(hours=24)),
          ("minutes", 0.10, timedelta(minutes=0), timedelta(minutes=110))]  # after the access window opened


@dataclass
class SeasonPlan:
    config: SeasonConfig
    seed: Seed
    bookings: dict[str, Booking]
    events: list[Event]
    faults: list[FaultSpec]

    def lock_of(self, listing: int) -> str:
        return self.seed.locks[listing].device_id


def build_plan(config: SeasonConfig) -> SeasonPlan:
    """The whole season, decided by the seed before anything runs."""
    rng = random.Random(f"season-{config.seed}")
    if config.listings > len(STREETS):
        raise ValueError(f"at most {len(STREETS)} listings")
    seed = _account(config)
    calendars = _calendars(rng, config)
    bookings = {b.rid: b for items in calendars.values() for b in items}
    plan_moves(rng, config, calendars, bookings)
    set_envelopes(calendars)
    for b in sorted(bookings.values(), key=lambda x: x.rid):
        if b.kind == "guest" and b.change is None and config.begin <= check_in_at(b) < config.end + timedelta(days=2):
            b.change = plan_change(rng, config, b)
    events = _events(config, bookings)
    for b in bookings.values():
        if b.created_at < config.begin:
            seed.reservations.append(reservation_of(b, seed))
    plan = SeasonPlan(config, seed, bookings, events, [])
    plan.faults = plan_faults(rng, plan)
    return plan


def _account(config: SeasonConfig) -> Seed:
    """The listings and their locks (the reservations made before the season are added later)."""
    seed = Seed()
    for index in range(config.listings):
        street, city = STREETS[index]
        number = str(100 + 17 * index)
        name = f"{street} {number}"
        seed.listings.append(listing_record(index, name, f"{name}, {city}", street, number, "", city, seed=config.seed))
        seed.locks.append(SeedLock(device_id=tuya_device_id("season", config.seed, index), name=f"Fechadura {name}"))
    return seed


def _calendars(rng: random.Random, config: SeasonConfig) -> dict[int, list[Booking]]:
    """Each listing's bookings and blocks, back to back or with short gaps, from just before the
    season to well after it (so stays arriving after the season are booked during it)."""
    codes: set[str] = set()

    def new_code() -> str:
        while True:
            code = "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(5))
            if code not in codes and not code.isdigit():
                codes.add(code)
                return code

    calendars: dict[int, list[Booking]] = {}
    number = 0
    first_day, last_day = config.start - timedelta(days=6), config.start + timedelta(days=config.days + 40)
    never = datetime.min.replace(tzinfo=timezone.utc)  # set below, once the check-in is known
    for listing in range(config.listings):
        cursor = config.start - timedelta(days=rng.randint(0, 6))
        items: list[Booking] = []
        while cursor < last_day:
            block = rng.random() < 0.06
            nights = rng.choice([1, 2]) if block else rng.choice(config.stay_nights)
            check_in, check_out = cursor, cursor + timedelta(days=nights)
            rid = hex_id("season", config.seed, number)
            number += 1
            if block:
                b = Booking(rid, new_code(), listing, "block", rng.choice(["maintenance", "blocked"]), check_in,
                            check_out, None, None, "Manutenção", never, "days")
                b.created_at = check_in_at(b) - timedelta(days=rng.randint(1, 20), hours=rng.randint(0, 23))
            else:
                b = Booking(rid, new_code(), listing, "guest", "booked", check_in, check_out,
                            rng.choice(["14:00", "15:00", "15:00", "16:00", None]),
                            rng.choice(["10:00", "11:00", "11:00", "12:00"]),
                            f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}", never, "")
                b.lead_class, b.created_at = _lead(rng, b, config)
            items.append(b)
            cursor = check_out + timedelta(days=rng.choice([0, 0, 0, 0, 1, 1, 2, 3, 5]))
        calendars[listing] = [b for b in items if b.check_out >= first_day]
    return calendars


def _events(config: SeasonConfig, bookings: dict[str, Booking]) -> list[Event]:
    """Bookings made and changed during the season, at the first step that can see them."""
    events: list[Event] = []
    order = 0
    for b in bookings.values():
        if b.created_at >= config.begin:
            events.append(Event(config.on_grid(b.created_at), order, "book", b.rid))
            order += 1
        if b.change is not None:
            kind = "cancel" if b.change.kind.startswith("cancel") else "modify"
            events.append(Event(config.on_grid(b.change.at), order, kind, b.rid, b.change.kind))
            order += 1
    events = [e for e in events if e.at <= config.end]
    events.sort(key=lambda e: (e.at, e.order))
    return events


def _lead(rng: random.Random, b: Booking, config: SeasonConfig) -> tuple[str, datetime]:
    weights = [w * (config.short_notice_rate if name in ("days", "hours", "minutes") else 1) for name, w, *_ in _LEADS]
    roll, total = rng.random() * sum(weights), 0.0
    for (name, _weight, shortest, longest), weight in zip(_LEADS, weights):
        total += weight
        if roll <= total:
            break
    lead = shortest + (longest - shortest) * rng.random()
    return name, check_in_at(b) - lead
