"""Postgres side of the PIN life cycle: rows for the planner, and state transitions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, text

from lock_pipeline.access.planning import AccessCode, AccessPolicy, StayAccess

_STAY_COLUMNS = """
    r.reservation_id, r.code, r.listing_id, r.kind, r.status, r.check_in_at, r.check_out_at,
    r.guest_first_name, r.missing_since, l.access_lead_minutes AS lead_minutes,
    l.access_grace_minutes AS grace_minutes, m.device_id
"""
_STAY_FROM = """
    FROM pipeline.reservations r
    JOIN pipeline.listings l USING (listing_id)
    LEFT JOIN pipeline.lock_mappings m ON m.listing_id = r.listing_id AND m.status = 'confirmed'
"""
_CODE_COLUMNS = ("code_id, reservation_id, device_id, valid_from, valid_until, state, attempts, updated_at, "
                 "next_attempt_at, tuya_password_id, tuya_phase")
_MAX_LEAD_OR_GRACE = timedelta(hours=24)  # listings.access_*_minutes are capped at 1440


def load_for_planning(conn: Connection, now: datetime, policy: AccessPolicy) -> tuple[dict[str, StayAccess], list[AccessCode]]:
    """Stays whose access window may open within the programming horizon, and every live code.

    Uses the partial index on confirmed guest stays, so a tick stays fast with 100k stays.
    """
    codes = [AccessCode(**row) for row in conn.execute(text(
        f"SELECT {_CODE_COLUMNS} FROM pipeline.access_codes WHERE state NOT IN ('revoked', 'cancelled')"
    )).mappings()]
    stays = {row["reservation_id"]: StayAccess(**row) for row in conn.execute(text(f"""
        SELECT {_STAY_COLUMNS} {_STAY_FROM}
        WHERE r.status = 'confirmed' AND r.kind = 'guest'
          AND r.check_in_at < :horizon AND r.check_out_at > :past
    """), {"horizon": now + policy.program_ahead + _MAX_LEAD_OR_GRACE, "past": now - _MAX_LEAD_OR_GRACE}).mappings()}
    orphaned = sorted({c.reservation_id for c in codes} - stays.keys())
    if orphaned:
        for row in conn.execute(text(f"SELECT {_STAY_COLUMNS} {_STAY_FROM} WHERE r.reservation_id = ANY(:ids)"),
                                {"ids": orphaned}).mappings():
            stays[row["reservation_id"]] = StayAccess(**row)
    return stays, codes


def load_stay(conn: Connection, reservation_id: str) -> tuple[StayAccess | None, list[AccessCode]]:
    row = conn.execute(text(f"SELECT {_STAY_COLUMNS} {_STAY_FROM} WHERE r.reservation_id = :r"),
                       {"r": reservation_id}).mappings().one_or_none()
    codes = [AccessCode(**c) for c in conn.execute(text(
        f"SELECT {_CODE_COLUMNS} FROM pipeline.access_codes WHERE reservation_id = :r AND state NOT IN ('revoked', 'cancelled')"
    ), {"r": reservation_id}).mappings()]
    return (StayAccess(**row) if row else None), codes


def find_stay_by_code(conn: Connection, reservation_code: str) -> str | None:
    """A stay's Stays _id from its short code (what people type) or from the _id itself."""
    rows = conn.execute(text(
        "SELECT reservation_id FROM pipeline.reservations WHERE upper(code) = upper(:c) OR reservation_id = :c"
    ), {"c": reservation_code.strip()}).scalars().all()
    return rows[0] if len(rows) == 1 else None


@contextmanager
def lock_device(engine: Engine, device_id: str) -> Iterator[None]:
    """Two runs never work on one lock at once: a Postgres advisory lock per device."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": f"lock_pipeline:device:{device_id}"})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": f"lock_pipeline:device:{device_id}"})
            conn.commit()


def record_event(conn: Connection, *, code_id: int | None, reservation_id: str, device_id: str, action: str,
                 outcome: str, run_id: str | None, at: datetime, password_id: str | None = None,
                 detail: str | None = None) -> None:
    conn.execute(text("""
        INSERT INTO pipeline.access_code_events (code_id, reservation_id, device_id, action, outcome,
            tuya_password_id, detail, run_id, at)
        VALUES (:code_id, :reservation_id, :device_id, :action, :outcome, :password_id, :detail, :run_id, :at)
    """), {"code_id": code_id, "reservation_id": reservation_id, "device_id": device_id, "action": action,
           "outcome": outcome, "password_id": password_id, "detail": detail, "run_id": run_id, "at": at})


def failed_runs_since_reset(conn: Connection, code_id: int) -> int:
    """Runs that ended a code `failed` since it was created or last reset by a reprocess."""
    return int(conn.execute(text("""
        SELECT count(*) FROM pipeline.access_code_events
        WHERE code_id = :c AND action = 'generate' AND outcome = 'failed'
          AND event_id > COALESCE((SELECT max(event_id) FROM pipeline.access_code_events
                                   WHERE code_id = :c AND action = 'reprocess'), 0)
    """), {"c": code_id}).scalar())


def other_pins_ciphertexts(conn: Connection, device_id: str, except_code_id: int | None) -> list[bytes]:
    return [bytes(r) for r in conn.execute(text("""
        SELECT pin_ciphertext FROM pipeline.access_codes
        WHERE device_id = :d AND state NOT IN ('revoked', 'cancelled') AND pin_ciphertext IS NOT NULL
          AND code_id IS DISTINCT FROM :c
    """), {"d": device_id, "c": except_code_id}).scalars()]


def lock_pin_length(conn: Connection, device_id: str) -> int:
    return int(conn.execute(text("SELECT COALESCE((SELECT pin_length FROM pipeline.locks WHERE device_id = :d), 7)"),
                            {"d": device_id}).scalar())
