"""What a season is judged by: the incidents (a guest locked out, a PIN opening for a stranger),
the counts, and the targets missed.

A minute figure has the step's resolution (season/measure.py samples once a step), and each
incident carries how much of it the pipeline could have avoided: the targets are about those.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta


SURFACE_AHEAD = timedelta(hours=1)  # a lockout nobody can prevent must be shown this long before arrival


@dataclass
class Incident:
    """A stay locked out (or a PIN opening for a stranger) over one or more samples."""

    code: str
    lock: str
    first_at: datetime
    minutes: int = 0
    avoidable_minutes: int = 0
    reason: str = ""
    check_in_at: datetime | None = None
    booked_at: datetime | None = None
    surfaced_at: datetime | None = None
    surfaced_as: str = ""
    minutes_by_cause: Counter = field(default_factory=Counter)


@dataclass
class SeasonResult:
    seed: int
    days: int
    listings: int
    step_minutes: int
    bookings: int = 0
    guest_stays: int = 0
    stays_arrived: int = 0
    cancelled: int = 0
    modified: int = 0
    blocks: int = 0
    last_minute: int = 0
    same_day_turnovers: int = 0
    pins_issued: int = 0
    pin_codes_in_db: int = 0
    lockouts: dict[str, Incident] = field(default_factory=dict)
    strangers: dict[tuple[str, str], Incident] = field(default_factory=dict)
    duplicates: set = field(default_factory=set)
    lost: list[str] = field(default_factory=list)
    wrongly_cancelled: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    flagged_missing: list[str] = field(default_factory=list)
    end_state_problems: list[str] = field(default_factory=list)
    quarantined: int = 0
    faults: Counter = field(default_factory=Counter)
    faults_fired: Counter = field(default_factory=Counter)
    fault_notes: list[str] = field(default_factory=list)
    attention: dict[str, dict[str, tuple[datetime, datetime | None]]] = field(default_factory=dict)
    attention_leads: dict[str, list[float]] = field(default_factory=dict)
    syncs: int = 0
    syncs_failed: int = 0
    runs: int = 0
    webhook_runs: int = 0
    webhooks_sent: int = 0
    webhooks_delivered: int = 0
    delivery_runs: int = 0
    webhooks_dropped: int = 0                                # by the fault, never sent
    backup_codes_issued: int = 0
    backup_codes_used: set = field(default_factory=set)     # stays whose guest opened the door with one
    date_changes_same_lock: int = 0                         # stays moved on the same lock (dates changed)
    date_changes_kept_digits: int = 0                       # ... whose guest kept the same digits
    offline_code_strangers: dict[str, Incident] = field(default_factory=dict)  # outstanding backup codes that open
    spent_keys_skipped: int = 0
    wall_seconds: float = 0.0

    # -- the figures the targets are about --------------------------------------------------

    @property
    def avoidable_lockouts(self) -> list[Incident]:
        return [i for i in self.lockouts.values() if i.avoidable_minutes > 0]

    @property
    def unavoidable_lockouts(self) -> list[Incident]:
        return [i for i in self.lockouts.values() if i.avoidable_minutes == 0]

    @property
    def lockout_minutes(self) -> tuple[int, int]:
        avoidable = sum(i.avoidable_minutes for i in self.lockouts.values())
        return avoidable, sum(i.minutes for i in self.lockouts.values()) - avoidable

    @property
    def stranger_minutes(self) -> tuple[int, int]:
        avoidable = sum(i.avoidable_minutes for i in self.strangers.values())
        return avoidable, sum(i.minutes for i in self.strangers.values()) - avoidable

    @property
    def lockout_minutes_by_cause(self) -> Counter:
        total: Counter = Counter()
        for incident in self.lockouts.values():
            total.update(incident.minutes_by_cause)
        return total

    @property
    def offline_code_stranger_minutes(self) -> tuple[int, int]:
        """(minutes nobody had been told of, all minutes) an outstanding offline code could open a door."""
        return (sum(i.avoidable_minutes for i in self.offline_code_strangers.values()),
                sum(i.minutes for i in self.offline_code_strangers.values()))

    @property
    def unsurfaced_unavoidable(self) -> list[Incident]:
        """Unavoidable lockouts admin.attention did not show at least an hour before the guest's arrival
        (check-in time; for a booking made later than that, by the step the booking was made)."""
        return [i for i in self.unavoidable_lockouts
                if i.surfaced_at is None or i.surfaced_at > max(i.check_in_at - SURFACE_AHEAD, i.booked_at)]

    def problems(self) -> list[str]:
        """Every target missed, in words (empty when the season met them all)."""
        out = []
        if self.avoidable_lockouts:
            out.append(f"avoidable lockouts: {[(i.code, i.first_at.isoformat(), i.avoidable_minutes, i.reason) for i in self.avoidable_lockouts]}")
        if self.stranger_minutes[0]:
            out.append(f"stranger-minutes: {[(k, i.first_at.isoformat(), i.avoidable_minutes, i.reason) for k, i in self.strangers.items() if i.avoidable_minutes]}")
        if self.offline_code_stranger_minutes[0]:
            out.append(f"offline codes opening for someone without access, nobody told: "
                       f"{[(k, i.first_at.isoformat(), i.avoidable_minutes) for k, i in self.offline_code_strangers.items() if i.avoidable_minutes]}")
        if self.date_changes_kept_digits < self.date_changes_same_lock:
            out.append(f"date changes on the same lock that changed the guest's digits: "
                       f"{self.date_changes_same_lock - self.date_changes_kept_digits} of {self.date_changes_same_lock}")
        if self.duplicates:
            out.append(f"duplicate PINs: {sorted(self.duplicates)[:10]}")
        if self.lost or self.wrongly_cancelled or self.mismatched or self.flagged_missing:
            out.append(f"lost {self.lost}, wrongly cancelled {self.wrongly_cancelled}, mismatched {self.mismatched}, "
                       f"flagged missing {self.flagged_missing}")
        if self.unsurfaced_unavoidable:
            out.append(f"unavoidable lockouts not surfaced 1 h before arrival: {[i.code for i in self.unsurfaced_unavoidable]}")
        out.extend(self.end_state_problems)
        return out
