"""Where the season's faults fall: a number of each kind, at moments and on locks the seed picks.

Each kind fills in its own details (season/faults/*.py); this module draws how many of each and
when, keeps a lock from being offline or full twice at once, and adds what the short test must
show: every kill point that matters, and one lockout nobody could prevent.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from lock_pipeline import checkpoints
from season.bookings import check_in_at, window_of
from season.faults import FAULTS
from season.faults.base import Fault, FaultSpec
from season.faults.process import Kill, PostgresRestart
from season.faults.tuya import LockWithoutOfflineCodesOfflineThroughArrival

if TYPE_CHECKING:
    from season.plan import SeasonPlan


class Schedule:
    """What a kind schedules against: the seed's stream, the plan, and the faults placed so far."""

    def __init__(self, rng: random.Random, plan: SeasonPlan) -> None:
        self.rng, self.plan, self.config = rng, plan, plan.config
        config = self.config
        self.arrivals = sorted((b for b in plan.bookings.values() if b.kind == "guest" and config.begin
                                + timedelta(hours=6) <= window_of(b)[0] < config.end - timedelta(hours=6)),
                               key=lambda b: b.rid)  # shuffled in place by the kinds aimed at an arrival
        self.faults: list[FaultSpec] = []
        self.busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)  # a lock's offline / full periods
        self.point_orders = {cls.kind: rng.sample(cls.points, len(cls.points)) for cls in (Kill, PostgresRestart)}

    def when(self, margin_hours: float = 2) -> datetime:
        """A step of the season, at least ``margin_hours`` from its ends."""
        low = int(margin_hours * 60 // self.config.step_minutes)
        return self.config.begin + self.rng.randint(low, max(low, self.config.steps - low - 2)) * self.config.step

    def hours(self, low: float, high: float) -> timedelta:
        """A duration of ``low`` to ``high`` hours, in whole steps (one at least)."""
        step_minutes = self.config.step_minutes
        return timedelta(minutes=step_minutes * max(1, round(self.rng.uniform(low, high) * 60 / step_minutes)))

    def how_many(self, kind: type[Fault]) -> int:
        base = self.config.faults_per_kind_per_30_days * self.config.days / 30
        if kind.rare:
            base /= 1.5
        n = int(base) + (1 if self.rng.random() < base - int(base) else 0)
        return max(n, 1) if self.config.every_fault_kind else n

    def lock_free(self, lock: int, at: datetime, until: datetime) -> bool:
        return all(until <= a or at >= b for a, b in self.busy[lock])

    def place_on_a_free_lock(self, spec: FaultSpec, low: float, high: float) -> bool:
        """Some lock, free for ``low`` to ``high`` hours from ``spec.at`` (another moment when the one
        drawn is busy then); False after 20 tries."""
        for _attempt in range(20):
            lock, until = self.rng.randrange(self.config.listings), spec.at + self.hours(low, high)
            if self.lock_free(lock, spec.at, until):
                spec.lock, spec.until = lock, until
                return True
            spec.at = self.when()
        return False

    def add(self, spec: FaultSpec) -> None:
        if spec.lock is not None and spec.until is not None:
            self.busy[spec.lock].append((spec.at, spec.until))
        self.faults.append(spec)


def plan_faults(rng: random.Random, plan: SeasonPlan) -> list[FaultSpec]:
    s = Schedule(rng, plan)
    for kind in FAULTS.values():
        for _ in range(s.how_many(kind)):
            spec = FaultSpec(kind.kind, s.when())
            if kind.schedule(spec, s):
                s.add(spec)
    if plan.config.every_fault_kind:
        _the_points_that_matter_most(s)
    _a_lockout_nobody_could_prevent(s)
    s.faults.sort(key=lambda f: (f.at, f.kind))
    return s.faults


def _the_points_that_matter_most(s: Schedule) -> None:
    """The short run must show the kill points that matter most (before the code row exists, between
    the Tuya call and the commit, after a delete) and a Postgres restart under a PIN run and under a
    sync, armed early enough that the work reaches them."""
    s.faults = [f for f in s.faults if f.kind not in (Kill.kind, PostgresRestart.kind)]

    def early() -> datetime:
        return s.config.begin + s.rng.randint(2, max(3, s.config.steps // 3)) * s.config.step

    for point in (checkpoints.GENERATE_START, checkpoints.GENERATE_AFTER_TUYA, checkpoints.REVOKE_AFTER_DELETE):
        s.faults.append(FaultSpec(Kill.kind, early(), point=point))
    for point in (checkpoints.GENERATE_AFTER_TUYA, checkpoints.SYNC_BEFORE_COMMIT):
        s.faults.append(FaultSpec(PostgresRestart.kind, early(), point=point))


def _a_lockout_nobody_could_prevent(s: Schedule) -> None:
    """One lock unreachable from a short-notice booking to its arrival, of a model with no offline codes:
    the lockout nobody can prevent, which must be surfaced before the guest arrives."""
    config = s.config
    short = [b for b in s.arrivals if b.created_at >= config.begin + config.step and b.change is None
             and check_in_at(b) - b.created_at >= timedelta(hours=1)]
    s.rng.shuffle(short)
    short.sort(key=lambda b: check_in_at(b) - b.created_at)  # the shortest notice first: hours, not days, offline
    for b in short:
        booked = config.on_grid(b.created_at)
        at = booked - timedelta(hours=s.rng.randint(1, 4))
        until = max(booked, config.on_grid(window_of(b)[0])) + timedelta(hours=s.rng.randint(1, 3))
        if at >= config.begin and s.lock_free(b.listing, at, until):
            s.add(FaultSpec(LockWithoutOfflineCodesOfflineThroughArrival.kind, at, until, lock=b.listing, rid=b.rid,
                            detail="unreachable from booking to arrival"))
            return
