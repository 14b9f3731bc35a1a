"""The Tuya cloud misbehaving (throttling, expired tokens, 5xx, timeouts, HTML and malformed
answers) and the locks themselves: offline for hours, offline through a guest's arrival, their
PIN storage full."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from season.bookings import window_of
from season.config import PROGRAM_AHEAD
from season.driver import MAX_PINS_PER_LOCK
from season.faults.base import Fault, FaultSpec, Undo, World, stamp

if TYPE_CHECKING:
    from season.faults.schedule import Schedule


class TuyaFault(Fault):
    """``count`` bad answers of one kind from the cloud, for the sync's lock reads or, after the
    sync, for the PIN runs; ``path`` narrows them to the door-lock calls."""

    answer: ClassVar[str]        # the sandbox's name for the bad answer
    fired_at_start = False       # counted when injected: one meant for the PIN runs waits for the sync

    @classmethod
    def schedule(cls, spec: FaultSpec, s: Schedule) -> bool:
        # The seed draws a throttle, a 5xx and an HTML count for every Tuya fault, whichever it uses:
        # keep the three draws, or every seeded season changes.
        drawn = {"throttle": s.rng.randint(2, 8), "server_error": s.rng.randint(1, 6), "html": s.rng.randint(1, 3)}
        spec.count = drawn.get(cls.answer, 1)
        spec.after_sync = s.rng.random() < 0.6
        spec.path = "door-lock" if s.rng.random() < 0.5 else None
        return True

    def start(self, world: World, now: datetime) -> None:
        if self.spec.after_sync and world.daemon_up:
            world.after_next_sync.append(self)
        else:
            self.inject(world)

    def inject(self, world: World) -> None:
        world.result.faults_fired[self.kind] += 1
        world.tuya.inject(self.answer, self.spec.count, path_contains=self.spec.path)


class TuyaThrottle(TuyaFault):
    kind, answer = "tuya_throttle", "throttle"


class TuyaTokenExpiry(TuyaFault):
    """The access token expires early: the client must refresh it and try again."""

    kind, answer = "tuya_token_expiry", "token_expired"

    def inject(self, world: World) -> None:
        world.tuya.expire_tokens()
        super().inject(world)


class Tuya5xx(TuyaFault):
    kind, answer = "tuya_5xx", "server_error"


class TuyaTimeout(TuyaFault):
    kind, answer = "tuya_timeout", "timeout"


class TuyaHtml(TuyaFault):
    kind, answer = "tuya_html", "html"


class TuyaMalformed(TuyaFault):
    kind, answer = "tuya_malformed", "malformed"


def _whose(world: World, spec: FaultSpec, device: str) -> str:
    return f"lock of {world.plan.bookings[spec.rid].code}" if spec.rid else f"lock {device}"


class LockOffline(Fault):
    """A lock unreachable for hours: the PINs on it still open its door, nothing new reaches it."""

    kind = "lock_offline"

    @classmethod
    def schedule(cls, spec: FaultSpec, s: Schedule) -> bool:
        return s.place_on_a_free_lock(spec, 2, 12)

    def start(self, world: World, now: datetime) -> Undo:
        spec = self.spec
        device = world.plan.lock_of(spec.lock)
        world.tuya.set_online(device, False)
        world.offline.add(spec.lock)
        detail = f" ({spec.detail})" if spec.detail else ""
        world.note(f"{stamp(now)} {_whose(world, spec, device)} offline until {stamp(spec.until)}{detail}")

        def back_online() -> None:
            world.tuya.set_online(device, True)
            world.offline.discard(spec.lock)
        return back_online


class LockOfflineThroughArrival(LockOffline):
    """Offline from hours before a guest's access opens until after it: the PIN was programmed
    ahead, or a person is told in time."""

    kind = "lock_offline_through_arrival"

    @classmethod
    def schedule(cls, spec: FaultSpec, s: Schedule) -> bool:
        s.rng.shuffle(s.arrivals)
        for b in s.arrivals:
            start = window_of(b)[0]
            begins, until = s.config.on_grid(start - s.hours(1, 10)), s.config.on_grid(start + s.hours(1, 4))
            if s.lock_free(b.listing, begins, until):
                spec.at, spec.until, spec.lock, spec.rid = begins, until, b.listing, b.rid
                return True
        return False


class LockStorageFull(Fault):
    """A lock's PIN storage full (at the PINs it holds): a new PIN is refused until room is made."""

    kind = "lock_storage_full"
    rare = True

    @classmethod
    def schedule(cls, spec: FaultSpec, s: Schedule) -> bool:
        # Full just before a stay's PIN falls due: its generate is refused.
        config = s.config
        s.rng.shuffle(s.arrivals)
        for b in s.arrivals:
            due = config.on_grid(window_of(b)[0] - PROGRAM_AHEAD - config.step)
            until = due + s.hours(2, 8)
            if due >= config.begin + config.step and b.created_at < due and b.change is None \
                    and s.lock_free(b.listing, due, until):
                spec.at, spec.until, spec.lock, spec.rid = due, until, b.listing, b.rid
                return True
        return s.place_on_a_free_lock(spec, 2, 8)

    def start(self, world: World, now: datetime) -> Undo:
        spec = self.spec
        device = world.plan.lock_of(spec.lock)
        live = sum(1 for p in world.tuya.pins(device) if p.is_live(now))
        world.tuya.set_storage_limit(device, live)
        world.full.add(spec.lock)
        world.note(f"{stamp(now)} {_whose(world, spec, device)} full ({live} PINs) until {stamp(spec.until)}")

        def emptied() -> None:
            world.tuya.set_storage_limit(device, MAX_PINS_PER_LOCK)
            world.full.discard(spec.lock)
        return emptied


class LockWithoutOfflineCodesOfflineThroughArrival(LockOfflineThroughArrival):
    """A lock whose model has no offline codes, offline from before the guest's PIN was due until after
    the arrival: nothing can reach the door; a person must be told before the guest arrives."""

    kind = "lock_offline_no_offline_codes"
    rare = True

    @classmethod
    def schedule(cls, spec: FaultSpec, s: Schedule) -> bool:
        return _offline_from_before_the_pin(spec, s)

    def start(self, world: World, now: datetime) -> Undo:
        device = world.plan.lock_of(self.spec.lock)
        world.tuya.set_offline_codes_supported(device, False)  # the model: for the rest of the season
        world.no_offline_codes.add(self.spec.lock)
        return super().start(world, now)


class OfflineLockGuestUsesCode(LockOfflineThroughArrival):
    """A lock offline from before the guest's PIN was due until after the arrival: the guest gets in
    with the offline backup code the cloud computed, which the lock checks by itself."""

    kind = "offline_lock_guest_uses_code"

    @classmethod
    def schedule(cls, spec: FaultSpec, s: Schedule) -> bool:
        return _offline_from_before_the_pin(spec, s)


def _offline_from_before_the_pin(spec: FaultSpec, s: Schedule) -> bool:
    """Offline from an hour or more before the stay's PIN falls due (when it is booked, for a
    short-notice stay, or the program horizon ahead of access) until after the arrival."""
    config = s.config
    s.rng.shuffle(s.arrivals)
    for b in s.arrivals:
        start = window_of(b)[0]
        due = max(config.on_grid(b.created_at), start - PROGRAM_AHEAD)
        begins = config.on_grid(due - s.hours(1, 6))
        until = config.on_grid(start + s.hours(2, 5))
        if begins >= config.begin + config.step and b.change is None and s.lock_free(b.listing, begins, until):
            spec.at, spec.until, spec.lock, spec.rid = begins, until, b.listing, b.rid
            return True
    return False
