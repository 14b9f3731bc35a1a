"""The pipeline's own process and what it runs on: a run killed at a checkpoint, Postgres restarted
under a run, the Dagster daemon stopped for hours."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from lock_pipeline import checkpoints
from season.config import ZONE
from season.faults.base import Fault, FaultSpec, Undo, World, stamp

if TYPE_CHECKING:
    from season.faults.schedule import Schedule


class CheckpointFault(Fault):
    """Armed at one of the product's named checkpoints; it hits the first run that reaches it there."""

    points: ClassVar[tuple[str, ...]]   # where it may be armed
    action: ClassVar[str]               # what season.faults.points.FaultPoints does there
    fired_at_start = False              # counted when a run reaches the point, maybe never

    @classmethod
    def schedule(cls, spec: FaultSpec, s: Schedule) -> bool:
        order = s.point_orders[cls.kind]  # every point once before any twice
        spec.point = order[sum(1 for f in s.faults if f.kind == cls.kind) % len(order)]
        return True

    def start(self, world: World, now: datetime) -> None:
        world.points.arm(self.spec.point, self.action, self.spec)


class Kill(CheckpointFault):
    """The run's process killed where it stands, also between the Tuya call and the commit."""

    kind, action = "kill", "kill"
    points = checkpoints.POINTS


class PostgresRestart(CheckpointFault):
    """Postgres restarted (or its connections terminated) under a run."""

    kind, action = "postgres_restart", "postgres"
    rare = True
    points = (checkpoints.GENERATE_AFTER_TUYA, checkpoints.SYNC_BEFORE_COMMIT, checkpoints.REVOKE_AFTER_DELETE)


def account_for_checkpoint_faults(world: World, planned: list[FaultSpec]) -> None:
    """At the season's end: count the checkpoint faults a run reached, and name those never reached."""
    for spec, at in world.points.fired:
        world.result.faults_fired[spec.kind] += 1
        world.note(f"{stamp(at.astimezone(ZONE))} {spec.kind} at {spec.point}")
    for spec in planned:
        if spec.kind in (Kill.kind, PostgresRestart.kind) and not any(s is spec for s, _ in world.points.fired):
            world.note(f"{stamp(spec.at)} {spec.kind} at {spec.point} armed, never reached")


class DaemonStop(Fault):
    """The daemon stopped for hours: no schedule, no sensor, no runs."""

    kind = "daemon_stop"
    rare = True
    lasts = (2, 5)

    def start(self, world: World, now: datetime) -> Undo:
        world.daemon_stops += 1
        self.note_until(world, now, "daemon stopped")

        def restart() -> None:
            world.daemon_stops -= 1
        return restart
