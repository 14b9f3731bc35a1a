"""Changes to bookings, planned so that no listing is ever double-booked at any moment.

Each booking keeps to an envelope of nights (its own and half of the gaps around it) on every
listing it appears on, and a move to another listing is planned together with the room it needs
there. A change happens when a guest or host would make it: well before the PIN falls due,
within its last 48 hours, or while the guest is in the house.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from season.bookings import Booking, Change, check_in_at, check_out_at, local_at, window_of
from season.config import DEFAULT_CHECK_IN, DEFAULT_CHECK_OUT, LEAD, PROGRAM_AHEAD, SeasonConfig

_CHANGES = [("cancel_before_pin", 0.06), ("cancel_after_pin", 0.05), ("earlier", 0.04), ("later", 0.04),
            ("longer", 0.05), ("shorter", 0.05), ("move", 0.04)]


def plan_moves(rng: random.Random, config: SeasonConfig, calendars: dict[int, list[Booking]],
               bookings: dict[str, Booking]) -> None:
    """A move to another listing needs room there: the target's bookings for those nights are
    never made (nobody booked them), and the moved stay holds the room from the start."""
    if config.listings < 2:
        return
    candidates = [b for b in bookings.values() if b.kind == "guest" and b.created_at < check_in_at(b) - timedelta(days=3)
                  and config.begin + timedelta(days=1) <= check_in_at(b) < config.end]
    rng.shuffle(candidates)
    wanted = max(1, round(len(candidates) * 0.04 * config.change_rate)) if candidates else 0
    moved = 0
    for b in sorted(candidates[: wanted * 3], key=lambda x: x.rid):
        if moved >= wanted or b.rid not in bookings or b.change is not None:
            continue
        target = rng.choice([i for i in range(config.listings) if i != b.listing])
        blocking = [o for o in calendars[target] if o.check_in < b.check_out + timedelta(days=1)
                    and o.check_out > b.check_in - timedelta(days=1)]
        if any(o.change is not None or o.ghost_on or o.created_at >= b.created_at for o in blocking):
            continue  # only drop bookings that would have been made before the move's room was promised
        for o in blocking:
            calendars[target].remove(o)
            del bookings[o.rid]
        at = check_in_at(b) - timedelta(hours=rng.choice([6, 20, 30, 40, 60, 100, 160]))
        at = max(at, b.created_at + timedelta(hours=1))
        b.change = Change("move", at, b.check_in, b.check_out, target)
        b.ghost_on.append(target)
        calendars[target].append(b)
        calendars[target].sort(key=lambda x: x.check_in)
        moved += 1


def set_envelopes(calendars: dict[int, list[Booking]]) -> None:
    """Each booking may only ever use its own nights and half of the gaps around it, on every
    listing it appears on: so modifications never double-book a listing at any moment."""
    for items in calendars.values():
        items.sort(key=lambda x: x.check_in)
        for position, b in enumerate(items):
            start = b.check_in - timedelta(days=3) if position == 0 else None
            if position > 0:
                before = items[position - 1]
                start = before.check_out + (b.check_in - before.check_out) // 2
            end = b.check_out + timedelta(days=3)
            if position + 1 < len(items):
                after = items[position + 1]
                end = b.check_out + (after.check_in - b.check_out) // 2
            b.env_start = start if b.env_start is None else max(b.env_start, start)
            b.env_end = end if b.env_end is None else min(b.env_end, end)


def plan_change(rng: random.Random, config: SeasonConfig, b: Booking) -> Change | None:
    """At most one change per stay, at a moment a guest or host would make it (before the PIN
    falls due, within its last 48 hours, or while the guest is in the house)."""
    roll, total = rng.random(), 0.0
    scale = min(config.change_rate, 0.9 / sum(weight for _kind, weight in _CHANGES))
    for kind, weight in _CHANGES:
        total += weight * scale
        if roll <= total:
            break
    else:
        return None
    start, _end = window_of(b)
    earliest = b.created_at + timedelta(hours=1)
    nights = (b.check_out - b.check_in).days

    def before_arrival(within_48h: bool | None = None) -> datetime | None:
        if within_48h is None:
            within_48h = rng.random() < 0.4
        low = start - PROGRAM_AHEAD + timedelta(hours=2) if within_48h else start - timedelta(days=10)
        high = start - timedelta(hours=1) if within_48h else start - PROGRAM_AHEAD - timedelta(hours=2)
        low = max(low, earliest)
        if high <= low:
            return None
        return low + (high - low) * rng.random()

    def in_the_house(low: datetime, high: datetime) -> datetime | None:
        return low + (high - low) * rng.random() if high > low else None

    if kind == "cancel_before_pin":
        at = before_arrival(False)
        return Change(kind, at) if at else None
    if kind == "cancel_after_pin":
        at = before_arrival(True)
        return Change(kind, at) if at else None
    if kind == "earlier":
        days = rng.choice([1, 2])
        at = before_arrival()
        if at is None or b.check_in - timedelta(days=days) < b.env_start:
            return None
        new_in = b.check_in - timedelta(days=days)
        if local_at(new_in, b.in_time, DEFAULT_CHECK_IN) - LEAD <= at + timedelta(hours=1):
            return None
        return Change(kind, at, new_in, b.check_out - timedelta(days=days))
    if kind == "later":
        days = rng.choice([1, 2, 3])
        at = before_arrival()
        if at is None or b.check_out + timedelta(days=days) > b.env_end:
            return None
        return Change(kind, at, b.check_in + timedelta(days=days), b.check_out + timedelta(days=days))
    in_house = rng.random() < 0.5
    if kind == "longer":
        days = rng.choice([1, 2])
        if b.check_out + timedelta(days=days) > b.env_end:
            return None
        if in_house:
            at = in_the_house(max(start + timedelta(hours=3), earliest), check_out_at(b) - timedelta(hours=4))
        else:
            at = before_arrival()
        return Change(kind, at, b.check_in, b.check_out + timedelta(days=days)) if at else None
    if kind == "shorter":
        if nights < 2:
            return None
        days = rng.randint(1, nights - 1)
        new_out = b.check_out - timedelta(days=days)
        if in_house:
            # decided the day before at the latest
            at = in_the_house(max(start + timedelta(hours=3), earliest),
                              local_at(new_out, b.out_time, DEFAULT_CHECK_OUT) - timedelta(hours=6))
        else:
            at = before_arrival()
        return Change(kind, at, b.check_in, new_out) if at else None
    return None  # "move" is planned with the room it needs (plan_moves)
