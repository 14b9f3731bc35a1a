"""The season's end state: the database and the locks against the truth, once every fault healed
and the pipeline settled.

Nothing lost, nothing wrongly cancelled, no dates or listing left behind, no stay flagged missing
that Stays still has; every code the database calls active is on its lock, and no live PIN is
for a stay without access there.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import text

from season.config import ZONE
from season.measure import labelled_code

if TYPE_CHECKING:
    from season.driver import PipelineDriver
    from season.plan import SeasonPlan
    from season.result import SeasonResult
    from season.truth import Truth


def compare_database(now: datetime, plan: SeasonPlan, truth: Truth, driver: PipelineDriver,
                     result: SeasonResult) -> None:
    with driver.engine.connect() as conn:
        rows = {r.reservation_id: r for r in conn.execute(text(
            "SELECT reservation_id, code, listing_id, status, check_in_date, check_out_date, missing_since "
            "FROM pipeline.reservations"))}
        result.quarantined = conn.execute(text("SELECT count(*) FROM pipeline.quarantined_records")).scalar()
        result.pin_codes_in_db = conn.execute(text(
            "SELECT count(*) FROM pipeline.access_codes WHERE tuya_password_id IS NOT NULL")).scalar()
        doubled = conn.execute(text("""
            SELECT reservation_id FROM pipeline.access_codes WHERE state NOT IN ('revoked', 'cancelled')
            GROUP BY reservation_id, device_id, valid_from, valid_until HAVING count(*) > 1""")).scalars().all()
        actives = conn.execute(text("""
            SELECT r.code, c.device_id, c.tuya_password_id FROM pipeline.access_codes c
            JOIN pipeline.reservations r USING (reservation_id)
            WHERE c.state = 'active' AND c.valid_until > :now"""), {"now": now}).all()
    if doubled:
        result.end_state_problems.append(f"database holds two live codes for one stay and window: {doubled}")
    sync_from = (now.astimezone(ZONE).date() - timedelta(days=30)).replace(day=1)
    for rid, stay in truth.stays.items():
        if stay.check_in < sync_from:
            continue
        row = rows.get(rid)
        if row is None:
            result.lost.append(stay.booking.code)
            continue
        if row.status != stay.status:
            (result.wrongly_cancelled if row.status == "cancelled" else result.mismatched).append(
                f"{stay.booking.code}: {row.status} in the database, {stay.status} in Stays")
        elif (row.check_in_date, row.check_out_date) != (stay.check_in, stay.check_out) \
                or row.listing_id != plan.seed.listings[stay.listing]["_id"]:
            result.mismatched.append(f"{stay.booking.code}: dates or listing differ")
        if row.missing_since is not None:
            result.flagged_missing.append(stay.booking.code)
    unknown = [r.code for rid, r in rows.items() if rid not in truth.stays]
    if unknown:
        result.end_state_problems.append(f"stays in the database that Stays never had: {unknown[:10]}")
    _compare_locks(now, plan, truth, driver, result, actives)


def _compare_locks(now: datetime, plan: SeasonPlan, truth: Truth, driver: PipelineDriver, result: SeasonResult,
                   actives: list) -> None:
    tuya = driver.tuya
    for code, device, password_id in actives:
        on_lock = {p.password_id: p for p in tuya.pins(device)}
        if password_id not in on_lock or on_lock[password_id].phase != 2:
            result.end_state_problems.append(f"{code}: active in the database but not on lock {device}")
    for listing, lock in enumerate(plan.seed.locks):
        for pin in tuya.pins(lock.device_id):
            code = labelled_code(pin)
            if code is not None and pin.is_live(now):
                stay = truth.by_code.get(code)
                if stay is None or stay.status != "confirmed" or stay.listing != listing:
                    result.end_state_problems.append(
                        f"{code}: a live PIN on lock {lock.device_id} for a stay that has no access there")
