"""Stays dates and times are the listing's wall clock with no offset; the pipeline stores instants.

A wall-clock time can be missing (the spring-forward gap) or happen twice (the fall-back hour):
- in a gap, the answer is the first instant after it, the transition itself (02:30 on the New
  York spring-forward day is 03:00 EDT; Sao Paulo's 2018-11-04 00:00 is 01:00 -02);
- in an overlap, the answer is the earlier of the two instants (PEP 495's ``fold=0``).
Both rules keep the conversion monotonic: a later wall time never gives an earlier instant.
Python's own ``fold=0`` reading of a gap time (shift by the whole gap) is not monotonic: on a
spring-forward day it would put a 02:30-03:15 block's end before its start.
"""

from __future__ import annotations

import math
from functools import lru_cache
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=65536)
def local_instant(day: date, at: time, zone: str | ZoneInfo) -> datetime:
    """The aware UTC instant of ``day`` ``at`` on the wall clock of ``zone``.

    Cached: a feed of 100,000 stays has a few thousand distinct (day, time, zone) triples.
    """
    if at.tzinfo is not None:
        raise ValueError(f"{at!r} carries a time zone: pass the listing's wall-clock time, naive")
    tz = zone if isinstance(zone, ZoneInfo) else _zone(zone)
    wall = datetime.combine(day, at.replace(fold=0))
    instant = wall.replace(tzinfo=tz).astimezone(timezone.utc)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant  # the wall time exists (fold=0 took the earlier one if it exists twice)
    return _end_of_gap(wall, tz)


def _end_of_gap(wall: datetime, tz: ZoneInfo) -> datetime:
    """The transition that skipped ``wall``: the first instant whose wall clock is past it.

    Read with the offset after the transition, ``wall`` lands before it; read with the offset
    before, at or after it. Transitions fall on whole seconds, so bisect the seconds between.
    """
    before = math.floor(wall.replace(tzinfo=tz, fold=1).timestamp())
    after = math.ceil(wall.replace(tzinfo=tz, fold=0).timestamp())
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, tz).replace(tzinfo=None) > wall:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, timezone.utc)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone name (e.g. America/Sao_Paulo)") from None
