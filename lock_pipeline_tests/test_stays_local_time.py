"""Stays wall-clock times -> UTC instants, across real DST transitions."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from lock_pipeline.stays.local_time import local_instant

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("day, at, zone, expected", [
    (date(2026, 7, 10), time(15, 0), "America/Sao_Paulo", utc(2026, 7, 10, 18, 0)),
    (date(2026, 1, 10), time(15, 0), "America/Sao_Paulo", utc(2026, 1, 10, 18, 0)),  # no DST since 2019
    (date(2026, 7, 10), time(15, 0), "America/New_York", utc(2026, 7, 10, 19, 0)),
    (date(2026, 1, 10), time(15, 0), "America/New_York", utc(2026, 1, 10, 20, 0)),
    (date(2026, 7, 10), time(15, 0), "Europe/Lisbon", utc(2026, 7, 10, 14, 0)),
    (date(2026, 1, 10), time(15, 0), "Europe/Lisbon", utc(2026, 1, 10, 15, 0)),
    (date(2018, 12, 10), time(15, 0), "America/Sao_Paulo", utc(2018, 12, 10, 17, 0)),  # summer time then
    (date(2026, 7, 10), time(0, 0), "America/Sao_Paulo", utc(2026, 7, 10, 3, 0)),
    (date(2026, 12, 31), time(23, 59), "America/Sao_Paulo", utc(2027, 1, 1, 2, 59)),
])
def test_ordinary_wall_times(day: date, at: time, zone: str, expected: datetime) -> None:
    assert local_instant(day, at, zone) == expected


@pytest.mark.parametrize("day, at, zone, expected_utc, expected_wall", [
    # New York springs forward 02:00 -> 03:00: 02:30 does not exist; the first instant after is 03:00.
    (date(2026, 3, 8), time(2, 30), "America/New_York", utc(2026, 3, 8, 7, 0), "2026-03-08T03:00:00-04:00"),
    (date(2026, 3, 8), time(2, 59, 59), "America/New_York", utc(2026, 3, 8, 7, 0), "2026-03-08T03:00:00-04:00"),
    (date(2026, 3, 8), time(2, 0), "America/New_York", utc(2026, 3, 8, 7, 0), "2026-03-08T03:00:00-04:00"),
    # Lisbon springs forward 01:00 -> 02:00.
    (date(2026, 3, 29), time(1, 30), "Europe/Lisbon", utc(2026, 3, 29, 1, 0), "2026-03-29T02:00:00+01:00"),
    # Sao Paulo's last spring-forward: midnight 2018-11-04 never happened; the day began at 01:00.
    (date(2018, 11, 4), time(0, 0), "America/Sao_Paulo", utc(2018, 11, 4, 3, 0), "2018-11-04T01:00:00-02:00"),
    (date(2018, 11, 4), time(0, 45), "America/Sao_Paulo", utc(2018, 11, 4, 3, 0), "2018-11-04T01:00:00-02:00"),
])
def test_time_in_a_gap_becomes_the_first_instant_after_it(day: date, at: time, zone: str, expected_utc: datetime,
                                                 expected_wall: str) -> None:
    instant = local_instant(day, at, zone)
    assert instant == expected_utc
    assert instant.astimezone(ZoneInfo(zone)).isoformat() == expected_wall


@pytest.mark.parametrize("day, at, zone, earlier, later", [
    (date(2026, 11, 1), time(1, 30), "America/New_York", utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)),
    (date(2026, 10, 25), time(1, 30), "Europe/Lisbon", utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)),
    # Sao Paulo's last fall-back: 2019-02-16 23:00-24:00 happened twice.
    (date(2019, 2, 16), time(23, 30), "America/Sao_Paulo", utc(2019, 2, 17, 1, 30), utc(2019, 2, 17, 2, 30)),
])
def test_ambiguous_time_takes_the_earlier_instant(day: date, at: time, zone: str, earlier: datetime,
                                                  later: datetime) -> None:
    assert later - earlier == timedelta(hours=1)
    assert later.astimezone(ZoneInfo(zone)).replace(tzinfo=None) == datetime.combine(day, at)  # truly ambiguous
    assert local_instant(day, at, zone) == earlier
    assert local_instant(day, at.replace(fold=1), zone) == earlier


@pytest.mark.parametrize("zone, day", [
    ("America/New_York", date(2026, 3, 8)), ("America/New_York", date(2026, 11, 1)),
    ("Europe/Lisbon", date(2026, 3, 29)), ("Europe/Lisbon", date(2026, 10, 25)),
    ("America/Sao_Paulo", date(2018, 11, 4)), ("America/Sao_Paulo", date(2019, 2, 16)),
])
def test_transition_days_never_go_backwards_and_round_trip_outside_gaps(zone: str, day: date) -> None:
    tz = ZoneInfo(zone)
    previous = None
    for minutes in range(0, 24 * 60, 5):
        at = time(minutes // 60, minutes % 60)
        instant = local_instant(day, at, zone)
        assert instant.tzinfo is UTC
        if previous is not None:
            assert instant >= previous
        previous = instant
        back = instant.astimezone(tz)
        wall = datetime.combine(day, at)
        # Either the wall time exists and comes back unchanged, or it was in the gap and moved ahead
        # to the transition (on the hour in all these zones).
        if back.replace(tzinfo=None) != wall:
            assert timedelta(0) < back.replace(tzinfo=None) - wall <= timedelta(hours=1)
            assert (back.minute, back.second) == (0, 0)


def test_same_day_window_across_a_gap_keeps_its_order() -> None:
    start = local_instant(date(2026, 3, 8), time(2, 30), "America/New_York")
    end = local_instant(date(2026, 3, 8), time(3, 15), "America/New_York")
    assert start < end


def test_accepts_a_zoneinfo_and_returns_aware_utc() -> None:
    instant = local_instant(date(2026, 7, 10), time(15, 0), ZoneInfo("America/Sao_Paulo"))
    assert instant.tzinfo is UTC
    assert instant == local_instant(date(2026, 7, 10), time(15, 0), "America/Sao_Paulo")


def test_unknown_zone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        local_instant(date(2026, 7, 10), time(15, 0), "Mars/Olympus")


def test_aware_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        local_instant(date(2026, 7, 10), time(15, 0, tzinfo=UTC), "America/Sao_Paulo")
