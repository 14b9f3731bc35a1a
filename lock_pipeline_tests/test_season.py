"""A short simulated season with every fault kind: nobody locked out, nobody let in, nothing lost.

The full season (60 days, 50 listings) is ``scripts/season``; this is the same simulator over a
few days with a busier calendar (more short-notice bookings and changes) and at least one fault
of every kind, the Postgres fault being a real ``pg_ctl restart`` of the test server mid-run.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from season.bookings import check_in_at, window_of
from season.config import SeasonConfig
from season.faults import FAULT_KINDS
from season.measure import LOCK, UNDELIVERED
from season.plan import build_plan
from season.report import format_report
from season.run import simulate

SHORT = SeasonConfig(days=2, listings=10, seed=70, every_fault_kind=True, change_rate=3.0, short_notice_rate=3.0,
                     stay_nights=(1, 1, 2, 2, 3), stays_timeout=1.0, tuya_timeout=1.0, postgres_fault="restart")


def test_a_short_season_with_every_fault_kind_meets_the_targets(database_url, tmp_path):
    result = simulate(SHORT, database_url, tmp_path)
    report = format_report([result])
    assert not result.problems(), report
    assert [kind for kind in FAULT_KINDS if result.faults_fired[kind] < 1] == [], report
    assert result.lockout_minutes[0] == 0 and result.stranger_minutes[0] == 0, report
    assert not result.duplicates and not result.lost and not result.wrongly_cancelled, report
    # The calendar really had what the season is about.
    assert result.stays_arrived >= 5 and result.cancelled >= 1 and result.modified >= 1, report
    assert result.last_minute >= 1 and result.same_day_turnovers >= 1 and result.pins_issued >= 10, report
    # The lock planned to be unreachable from a short-notice booking to its arrival: a lockout nobody can
    # prevent, and a person was told before the guest arrived.
    assert result.unavoidable_lockouts and not result.unsurfaced_unavoidable, report
    assert set(result.lockout_minutes_by_cause) == {LOCK}, report
    # The last mile: what Stays announced came by webhook, a date change kept the guest's digits, and a
    # guest whose lock was offline from before the PIN was due opened the door with the offline code.
    assert result.webhooks_delivered >= 5 and result.webhook_runs >= 1, report
    # Guests know only what the write-back put in their Stays reservation: no lockout was for want of it.
    assert result.delivery_runs >= 5 and result.lockout_minutes_by_cause[UNDELIVERED] == 0, report
    assert result.date_changes_same_lock >= 1 and result.date_changes_kept_digits == result.date_changes_same_lock, report
    assert result.backup_codes_used and result.offline_code_stranger_minutes == (0, 0), report


def test_the_plan_is_reproducible_from_the_seed():
    first, again, other = build_plan(SHORT), build_plan(SHORT), build_plan(SeasonConfig(**{**SHORT.__dict__, "seed": 5}))
    shape = lambda plan: ([(e.at, e.kind, e.rid, e.change_kind) for e in plan.events],  # noqa: E731
                          [(f.kind, f.at, f.until, f.lock, f.point, f.count) for f in plan.faults],
                          sorted(r["_id"] for r in plan.seed.reservations))
    assert shape(first) == shape(again)
    assert shape(first) != shape(other)


def test_the_full_season_plan_has_every_kind_of_booking_change_and_fault():
    plan = build_plan(SeasonConfig())
    leads = {b.lead_class for b in plan.bookings.values() if b.kind == "guest"}
    assert leads == {"months", "weeks", "days", "hours", "minutes"}
    changes = {e.change_kind for e in plan.events if e.change_kind}
    assert changes == {"cancel_before_pin", "cancel_after_pin", "earlier", "later", "longer", "shorter", "move"}
    assert {b.kind for b in plan.bookings.values()} == {"guest", "block"}
    assert {f.kind for f in plan.faults} == set(FAULT_KINDS)
    assert {f.point for f in plan.faults if f.kind == "kill"} >= {"generate:after_tuya", "generate:start"}
    same_day = sum(1 for a in plan.bookings.values() for b in plan.bookings.values()
                   if a.listing == b.listing and a.check_out == b.check_in and a.kind == b.kind == "guest")
    assert same_day > 50


def test_no_listing_is_ever_double_booked_whatever_the_changes():
    """Every booking stays inside its own envelope of nights on every listing it uses, so the truth the
    simulator serves is a calendar Stays could really hold at every moment."""
    plan = build_plan(SeasonConfig())
    nights = defaultdict(list)
    for b in plan.bookings.values():
        versions = [(b.listing, b.check_in, b.check_out)]
        if b.change is not None and b.change.check_in is not None:
            versions.append((b.change.listing if b.change.listing is not None else b.listing,
                             b.change.check_in, b.change.check_out))
        for listing, first, last in versions:
            day = first
            while day < last:
                nights[(listing, day)].append(b.rid)
                day += timedelta(days=1)
    doubled = {key: rids for key, rids in nights.items() if len(set(rids)) > 1}
    assert doubled == {}
    for b in plan.bookings.values():  # windows are well formed and bookings exist before they change
        start, end = window_of(b)
        assert start < end and check_in_at(b) - start == timedelta(hours=2)
        if b.change is not None:
            assert b.change.at > b.created_at
