"""Arrival-month partitions, so an admin can re-sync any past or future month from the UI."""


import math
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dagster import MonthlyPartitionsDefinition, PartitionKeyRange, TimeWindow

from lock_pipeline.stays.sync import SyncWindow

PARTITIONS_START = "2024-01-01"


def arrival_month_partitions(timezone: str, days_ahead: int) -> MonthlyPartitionsDefinition:
    """Months in the account's zone, reaching far enough ahead to hold the whole sync window."""
    return MonthlyPartitionsDefinition(
        start_date=PARTITIONS_START,
        timezone=timezone,
        end_offset=math.ceil(days_ahead / 28) + 1,
    )


def sync_window_for(time_window: TimeWindow) -> SyncWindow:
    """The arrival dates a run over these months covers (end is exclusive in Dagster)."""
    return SyncWindow(
        from_date=time_window.start.date(),
        to_date=(time_window.end - timedelta(days=1)).date(),
        date_type="arrival",
    )


def months_covering(now: datetime, timezone: str, days_back: int, days_ahead: int) -> PartitionKeyRange:
    """The partition range the 30-minute schedule refreshes: every month touching the sync window."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    first = _month_start(today - timedelta(days=days_back))
    last = _month_start(today + timedelta(days=days_ahead))
    return PartitionKeyRange(first.isoformat(), last.isoformat())


def _month_start(day: date) -> date:
    return day.replace(day=1)
