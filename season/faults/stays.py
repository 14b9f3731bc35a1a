"""Stays misbehaving: down, 5xx bursts, an empty feed, malformed records, answers slower than the timeout."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from lock_pipeline.sandbox.seed import hex_id
from season.bookings import window_of
from season.faults.base import Fault, FaultSpec, Undo, World, stamp

if TYPE_CHECKING:
    from season.faults.schedule import Schedule


class StaysOutage(Fault):
    """Every request fails for hours."""

    kind = "stays_outage"
    rare = True
    lasts = (2, 6)

    def start(self, world: World, now: datetime) -> Undo:
        self.note_until(world, now)
        world.stays.set_outage(True)
        return lambda: world.stays.set_outage(False)


class Stays5xxBurst(Fault):
    """The next ``count`` requests answer one 5xx status: the client's retries should ride it out."""

    kind = "stays_5xx_burst"

    @classmethod
    def schedule(cls, spec: FaultSpec, s: Schedule) -> bool:
        spec.count = s.rng.randint(2, 9)
        spec.detail = str(s.rng.choice([500, 502, 503, 504]))
        return True

    def start(self, world: World, now: datetime) -> None:
        world.stays.fail_next(self.spec.count, status=int(self.spec.detail))


class StaysEmptyFeed(Fault):
    """The feed answers with no reservations at all: the pipeline must not take that as every stay cancelled."""

    kind = "stays_empty_feed"
    lasts = (0.5, 1.5)

    def start(self, world: World, now: datetime) -> Undo:
        self.note_until(world, now)
        world.stays.set_empty_feed(True)
        world.empty_feeds += 1

        def undo() -> None:
            world.empty_feeds -= 1
            world.stays.set_empty_feed(world.empty_feed)
        return undo


class StaysMalformed(Fault):
    """A junk record appears, and one stay's record breaks (one field) for hours: only that stay
    may be held back, and it must come back whole."""

    kind = "stays_malformed"
    lasts = (1, 6)
    # The field that breaks, and what it becomes.
    BROKEN: ClassVar[dict] = {"checkOutDate": "soon", "type": ["booked"], "_idlisting": None}

    @classmethod
    def schedule(cls, spec: FaultSpec, s: Schedule) -> bool:
        super().schedule(spec, s)
        future = sorted((b for b in s.plan.bookings.values() if b.kind == "guest" and b.change is None
                         and b.created_at < spec.at and window_of(b)[1] > spec.until + timedelta(hours=6)),
                        key=lambda b: b.rid)
        spec.rid = s.rng.choice(future).rid if future else None
        spec.detail = s.rng.choice(list(cls.BROKEN))
        return True

    def start(self, world: World, now: datetime) -> Undo | None:
        spec, stays = self.spec, world.stays
        junk = {"_id": hex_id("junk", world.config.seed, now.isoformat()),
                "id": "JUNK" + str(len(world.result.fault_notes)),
                "checkInDate": "2026-13-45", "_idlisting": 42, "type": "booked"}
        stays.put_reservation(junk)
        stay = world.truth.stays.get(spec.rid or "")
        if stay is None or stay.status != "confirmed":
            return None
        broken = copy.deepcopy(stay.raw)
        broken[spec.detail] = self.BROKEN[spec.detail]
        stays.put_reservation(broken)
        stay.corrupted = True
        world.note(f"{stamp(now)} record of {stay.booking.code} malformed ({spec.detail}) until {stamp(spec.until)}")

        def restore() -> None:
            stay.corrupted = False
            stays.put_reservation(stay.raw)
        return restore


class StaysSlow(Fault):
    """Answers slower than the client's timeout for one step."""

    kind = "stays_slow"
    rare = True

    @classmethod
    def schedule(cls, spec: FaultSpec, s: Schedule) -> bool:
        spec.until = spec.at + s.config.step
        return True

    def start(self, world: World, now: datetime) -> Undo:
        self.note_until(world, now)
        world.stays.set_latency(world.config.stays_timeout + 0.5)
        return lambda: world.stays.set_latency(0)


class WebhooksDropped(Fault):
    """Stays' next webhooks never arrive (lost on the way): the 30-minute sync must catch up."""

    kind = "webhooks_dropped"

    @classmethod
    def schedule(cls, spec: FaultSpec, s: Schedule) -> bool:
        spec.count = s.rng.randint(1, 6)
        return True

    def start(self, world: World, now: datetime) -> None:
        world.stays.drop_next_webhooks(self.spec.count)
        world.note(f"{stamp(now)} the next {self.spec.count} webhook(s) dropped")


class ReceiverDown(Fault):
    """The webhook receiver is down for hours: Stays' deliveries fail; the syncs are the safety net."""

    kind = "receiver_down"
    rare = True
    lasts = (1, 6)

    def start(self, world: World, now: datetime) -> Undo | None:
        driver = world.driver
        if driver is None or driver.receiver is None and world.receiver_downs == 0:
            return None  # the season runs without webhooks
        world.receiver_downs += 1
        driver.stop_receiver()
        self.note_until(world, now, "webhook receiver down")

        def back() -> None:
            world.receiver_downs -= 1
            if world.receiver_downs == 0:
                driver.start_receiver()
        return back
