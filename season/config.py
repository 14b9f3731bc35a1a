"""What a season is, and the product's values it plans and judges with.

The product values are read from lock_pipeline.settings (the defaults the season's pipeline runs
with, see :func:`season_settings`) and from the access sensor, never written again here: a copy
of the access lead that drifted from the product's would judge lockouts against the wrong window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from lock_pipeline.orchestration.access import CURSOR_MEMORY
from lock_pipeline.settings import DEFAULTS, Settings, load_settings

TIMEZONE = DEFAULTS.timezone
ZONE = ZoneInfo(TIMEZONE)
LEAD = DEFAULTS.access_lead              # access opens this long before check-in
GRACE = DEFAULTS.access_grace            # and ends this long after check-out
PROGRAM_AHEAD = DEFAULTS.program_ahead   # a PIN falls due this long before its access opens
DEFAULT_CHECK_IN, DEFAULT_CHECK_OUT = DEFAULTS.default_check_in, DEFAULTS.default_check_out
# A killed run's work is launched again once the sensor no longer remembers the launch (its
# cursor and run-key slot): the next half-hour slot.
RELAUNCH_AFTER_KILL = CURSOR_MEMORY


def season_settings(workdir: Path, *, write_back: bool = True) -> Settings:
    """The settings the season's pipeline runs with: the defaults above, in the season's own home, and
    the code written back to the guest's Stays reservation (what the guest reads, see measure.py)."""
    env = {"LOCK_PIPELINE_HOME": str(Path(workdir) / "home"), "LOCK_PIPELINE_TIMEZONE": TIMEZONE}
    if write_back:
        env["LOCK_PIPELINE_STAYS_WRITE_BACK"] = "pin"
    return load_settings(env)


@dataclass(frozen=True)
class SeasonConfig:
    days: int = 60
    listings: int = 50
    seed: int = 1
    step_minutes: int = 30
    start: date = date(2026, 12, 1)
    every_fault_kind: bool = False      # at least one fault of every kind (the short test)
    faults_per_kind_per_30_days: float = 3.0
    change_rate: float = 1.0            # x the share of stays modified or cancelled (a short run wants more)
    short_notice_rate: float = 1.0      # x the share of bookings made days, hours or minutes ahead
    stay_nights: tuple[int, ...] = (1, 2, 2, 3, 3, 3, 4, 5, 7, 10)  # drawn from for each guest stay
    postgres_fault: str = "restart"     # restart (pg_ctl restart of the embedded server) | terminate
    stays_timeout: float = 2.0
    tuya_timeout: float = 2.0
    fast_step_retries: bool = True      # shorten only the wall-clock wait between step retries
    max_ticks_per_step: int = 8
    webhooks: bool = True               # Stays sends webhooks to the real receiver (the fast path); the syncs stay
    write_back: bool = True             # the code reaches the guest through the Stays reservation; the guest
                                        # knows only what is there (False: every guest knows every code)
    progress: bool = False

    @property
    def step(self) -> timedelta:
        return timedelta(minutes=self.step_minutes)

    @property
    def steps(self) -> int:
        """Steps in the season (the loop runs one more, at its end)."""
        return self.days * 24 * 60 // self.step_minutes

    @property
    def begin(self) -> datetime:
        return datetime.combine(self.start, time(0, 0), ZONE)

    @property
    def end(self) -> datetime:
        return self.begin + timedelta(days=self.days)

    def on_grid(self, instant: datetime) -> datetime:
        """The first step at or after ``instant`` (when the pipeline's sync can first see it)."""
        steps = math.ceil((instant - self.begin) / self.step)
        return self.begin + max(0, steps) * self.step
