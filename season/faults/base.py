"""What every fault kind shares: its planned shape (:class:`FaultSpec`), the world it acts on,
and the two things a kind knows (how the seed schedules it, and how it starts).

A kind is one small class (stays.py, tuya.py, process.py); the registry in ``__init__`` maps a
kind's name to it. Starting a fault uses only the sandboxes' own switches and the product's
named checkpoints, and returns what ends it, so the season's loop needs no case per kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from lock_pipeline.sandbox.stays_server import StaysSandbox
    from lock_pipeline.sandbox.tuya_cloud import TuyaSandbox
    from season.config import SeasonConfig
    from season.driver import PipelineDriver
    from season.faults.points import FaultPoints
    from season.faults.schedule import Schedule
    from season.faults.tuya import TuyaFault
    from season.plan import SeasonPlan
    from season.result import SeasonResult
    from season.truth import Truth

Undo = Callable[[], None]


@dataclass
class FaultSpec:
    """One fault as planned: its kind, when it starts (and ends), and what the kind needs to know."""

    kind: str
    at: datetime
    until: datetime | None = None
    lock: int | None = None          # the listing whose lock it hits
    count: int = 0                   # bad answers in a row
    point: str = ""                  # the checkpoint it is armed at
    after_sync: bool = False         # a Tuya fault meant for the PIN runs, not the sync's lock reads
    path: str | None = None          # only Tuya calls whose path holds this
    rid: str | None = None           # the stay it is aimed at
    detail: str = ""


@dataclass
class World:
    """What faults act on, and the conditions they leave, which the measurement reads back to tell
    a lockout the pipeline could have prevented from one it could not."""

    plan: SeasonPlan
    stays: StaysSandbox
    tuya: TuyaSandbox
    points: FaultPoints
    truth: Truth
    result: SeasonResult
    offline: set[int] = field(default_factory=set)   # listings whose lock is offline
    full: set[int] = field(default_factory=set)      # listings whose lock's PIN storage is full
    daemon_stops: int = 0                             # overlapping stops: up again when the last ends
    empty_feeds: int = 0
    after_next_sync: list[TuyaFault] = field(default_factory=list)
    no_offline_codes: set[int] = field(default_factory=set)  # listings whose lock has no offline codes (a model)
    receiver_downs: int = 0                           # overlapping outages of the webhook receiver
    driver: PipelineDriver | None = None

    @property
    def config(self) -> SeasonConfig:
        return self.plan.config

    @property
    def daemon_up(self) -> bool:
        return self.daemon_stops == 0

    @property
    def empty_feed(self) -> bool:
        return self.empty_feeds > 0

    def note(self, text: str) -> None:
        """A line for the report's list of what happened."""
        self.result.fault_notes.append(text)


def stamp(instant: datetime) -> str:
    return f"{instant:%m-%d %H:%M}"


class Fault:
    """One kind of fault. Subclasses set ``kind`` and say how the seed schedules them and how they start."""

    kind: ClassVar[str]
    rare: ClassVar[bool] = False           # scheduled 1.5 times less often than the others
    lasts: ClassVar[tuple[float, float] | None] = None  # hours it lasts, drawn (in whole steps) when scheduled
    fired_at_start: ClassVar[bool] = True  # False: counted as fired when it really hits (see the subclass)

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec

    @classmethod
    def schedule(cls, spec: FaultSpec, s: Schedule) -> bool:
        """Fill in what the seed decides beyond the start; False drops the fault (no room for it)."""
        if cls.lasts is not None:
            spec.until = spec.at + s.hours(*cls.lasts)
        return True

    def start(self, world: World, now: datetime) -> Undo | None:
        """Make the fault happen at ``now``; return what ends it at ``spec.until`` (None: nothing to end)."""
        raise NotImplementedError

    def note_until(self, world: World, now: datetime, what: str | None = None) -> None:
        world.note(f"{stamp(now)} {what or self.kind} until {stamp(self.spec.until)}")
