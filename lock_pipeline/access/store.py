"""The PIN life cycle's tables, and the only module that writes them.

pipeline.access_codes (one row per stay, lock and window, with its encrypted PIN and state),
pipeline.access_code_events (every action and its outcome: the audit trail in SQL) and
pipeline.pin_reveals (who saw a PIN in clear). Each state change is one named function, so the
life cycle reads in one place; the rules of when to change what are in planning.py and executor.py.

The changes a guest must hear about (the lock took a code, its retries are spent, it was revoked)
queue their code event for the configured delivery ``channels`` in the same transaction
(delivery/outbox.py, a transactional outbox); without channels nothing is queued.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, text

from lock_pipeline.access.audit import KnownCode
from lock_pipeline.access.planning import AccessCode, AccessPolicy, StayAccess, Window
from lock_pipeline.delivery import outbox
from lock_pipeline.vocabulary import ENDED_STATES, ActionKind, CodeState, EventAction

_STAY_COLUMNS = """
    r.reservation_id, r.code, r.listing_id, r.kind, r.status, r.check_in_at, r.check_out_at,
    r.guest_first_name, r.missing_since, l.access_lead_minutes AS lead_minutes,
    l.access_grace_minutes AS grace_minutes, m.device_id, prev.previous_check_out, k.offline_codes,
    k.online AS lock_online
"""
# The previous guest's check-out on the same listing, when it is within two days of this check-in
# (the longest lead plus the longest grace): the planner keeps two guests' windows from overlapping.
_STAY_FROM = """
    FROM pipeline.reservations r
    JOIN pipeline.listings l USING (listing_id)
    LEFT JOIN pipeline.lock_mappings m ON m.listing_id = r.listing_id AND m.status = 'confirmed'
    LEFT JOIN pipeline.locks k ON k.device_id = m.device_id
    LEFT JOIN LATERAL (
        SELECT max(p.check_out_at) AS previous_check_out FROM pipeline.reservations p
        WHERE p.listing_id = r.listing_id AND p.status = 'confirmed' AND p.kind = 'guest'
          AND p.check_out_at > r.check_in_at - interval '2 days' AND p.check_in_at < r.check_in_at
          AND p.reservation_id <> r.reservation_id
    ) prev ON true
"""
_CODE_COLUMNS = ("code_id, reservation_id, device_id, valid_from, valid_until, state, attempts, updated_at, "
                 "next_attempt_at, tuya_password_id, tuya_phase, retry_requested_at, modify_refused_at, programmed_at")
_LIVE = "state NOT IN (" + ", ".join(f"'{state}'" for state in sorted(ENDED_STATES)) + ")"
_MAX_LEAD_OR_GRACE = timedelta(hours=24)  # listings.access_*_minutes are capped at 1440


# ---------------------------------------------------------------- what the planner reads

def load_for_planning(conn: Connection, now: datetime, policy: AccessPolicy) -> tuple[dict[str, StayAccess], list[AccessCode]]:
    """Stays whose access window may open within the programming horizon, and every live code.

    Uses the partial index on confirmed guest stays, so a tick stays fast with 100k stays.
    """
    codes = [AccessCode(**row) for row in conn.execute(text(
        f"SELECT {_CODE_COLUMNS} FROM pipeline.access_codes WHERE {_LIVE}"
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


def stays_by_id(conn: Connection, reservation_ids: Iterable[str]) -> dict[str, StayAccess]:
    ids = list(reservation_ids)
    if not ids:
        return {}
    return {row["reservation_id"]: StayAccess(**row) for row in conn.execute(text(
        f"SELECT {_STAY_COLUMNS} {_STAY_FROM} WHERE r.reservation_id = ANY(:ids)"), {"ids": ids}).mappings()}


def load_stay(conn: Connection, reservation_id: str) -> tuple[StayAccess | None, list[AccessCode]]:
    stay = stays_by_id(conn, [reservation_id]).get(reservation_id)
    codes = [AccessCode(**c) for c in conn.execute(text(
        f"SELECT {_CODE_COLUMNS} FROM pipeline.access_codes WHERE reservation_id = :r AND {_LIVE}"
    ), {"r": reservation_id}).mappings()]
    return stay, codes


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


# ---------------------------------------------------------------- generate

@dataclass(frozen=True)
class CodeForWindow:
    code_id: int
    state: str
    pin_ciphertext: bytes
    lock_label: str
    attempts: int


def live_code_for_window(conn: Connection, reservation_id: str, device_id: str, window: Window) -> CodeForWindow | None:
    """The live code of this stay, lock and window, locked until the caller's transaction ends."""
    row = conn.execute(text(f"""
        SELECT code_id, state, pin_ciphertext, lock_label, attempts FROM pipeline.access_codes
        WHERE reservation_id = :r AND device_id = :d AND valid_from = :f AND valid_until = :u AND {_LIVE} FOR UPDATE
    """), {"r": reservation_id, "d": device_id, "f": window.start, "u": window.end}).one_or_none()
    return CodeForWindow(row.code_id, row.state, bytes(row.pin_ciphertext), row.lock_label, row.attempts) if row else None


def insert_programming_code(conn: Connection, *, reservation_id: str, device_id: str, window: Window,
                            pin_ciphertext: bytes, pin_masked: str, lock_label: str, run_id: str | None,
                            now: datetime, digits_changed: bool) -> int:
    """The code row, with its encrypted PIN, committed before Tuya is called (exactly once).

    ``digits_changed``: the stay had other digits before, which the guest may have been given; a
    person must tell them the new ones (admin.attention pin_changed).
    """
    return conn.execute(text("""
        INSERT INTO pipeline.access_codes (reservation_id, device_id, valid_from, valid_until, state,
            pin_ciphertext, pin_masked, lock_label, attempts, last_run_id, created_at, updated_at, digits_changed_at)
        VALUES (:r, :d, :f, :u, :state, :cipher, :masked, :label, 1, :run, :now, :now,
                CASE WHEN :changed THEN CAST(:now AS timestamptz) END)
        RETURNING code_id
    """), {"r": reservation_id, "d": device_id, "f": window.start, "u": window.end, "state": CodeState.PROGRAMMING,
           "cipher": pin_ciphertext, "masked": pin_masked, "label": lock_label, "run": run_id, "now": now,
           "changed": digits_changed}).scalar_one()


def previous_pin_ciphertext(conn: Connection, reservation_id: str) -> bytes | None:
    """The digits the stay was last given (its newest code that reached the cloud), so a new code can keep them."""
    value = conn.execute(text("""
        SELECT pin_ciphertext FROM pipeline.access_codes
        WHERE reservation_id = :r AND tuya_password_id IS NOT NULL AND pin_ciphertext IS NOT NULL
        ORDER BY code_id DESC LIMIT 1
    """), {"r": reservation_id}).scalar()
    return bytes(value) if value is not None else None


def mark_programming(conn: Connection, code_id: int, *, attempts: int, run_id: str | None, now: datetime) -> None:
    """Another attempt at an existing code; a pending reprocess request is taken up by it."""
    conn.execute(text("""
        UPDATE pipeline.access_codes SET state = :state, attempts = :a, updated_at = :now, last_run_id = :run,
            next_attempt_at = NULL, retry_requested_at = NULL WHERE code_id = :c
    """), {"state": CodeState.PROGRAMMING, "a": attempts, "now": now, "run": run_id, "c": code_id})


def replace_pin(conn: Connection, code_id: int, *, pin_ciphertext: bytes, pin_masked: str, digits_changed: bool,
                now: datetime) -> None:
    """Other digits for a code the lock refused as a duplicate (a PIN the pipeline does not manage)."""
    conn.execute(text("""
        UPDATE pipeline.access_codes SET pin_ciphertext = :c, pin_masked = :m,
            digits_changed_at = CASE WHEN :changed THEN CAST(:now AS timestamptz) ELSE digits_changed_at END
        WHERE code_id = :id
    """), {"c": pin_ciphertext, "m": pin_masked, "changed": digits_changed, "now": now, "id": code_id})


def record_programmed(conn: Connection, code_id: int, *, state: str, password_id: str, phase: int | None,
                      run_id: str | None, now: datetime, channels: Sequence[str] = ()) -> None:
    """Tuya has the PIN; ``active`` when the lock's list already showed it taken (an adopted PIN)."""
    conn.execute(text("""
        UPDATE pipeline.access_codes SET state = :s, tuya_password_id = :p, tuya_phase = :phase,
            programmed_at = :now, active_at = CASE WHEN :s = :active THEN CAST(:now AS timestamptz) END,
            last_error = NULL, updated_at = :now, last_run_id = :run WHERE code_id = :c
    """), {"s": state, "active": CodeState.ACTIVE, "p": password_id, "phase": phase, "now": now, "run": run_id,
           "c": code_id})
    if state == CodeState.ACTIVE:
        outbox.announce_activation(conn, code_id, channels=channels, now=now)


def record_generate_error(conn: Connection, code_id: int, *, error: str, final: bool, retry_at: datetime | None,
                          run_id: str | None, now: datetime, channels: Sequence[str] = ()) -> None:
    """A failed attempt; on the run's final attempt the code is ``failed`` with its next retry."""
    conn.execute(text("""
        UPDATE pipeline.access_codes SET last_error = :e, updated_at = :now, last_run_id = :run,
            state = CASE WHEN :final THEN :failed ELSE state END, next_attempt_at = :retry
        WHERE code_id = :c
    """), {"e": error, "now": now, "run": run_id, "final": final, "failed": CodeState.FAILED, "retry": retry_at,
           "c": code_id})
    if final:
        outbox.announce_failure(conn, code_id, channels=channels, now=now)


def failed_runs_since_reset(conn: Connection, code_id: int) -> int:
    """Runs that ended a code `failed` since it was created or last reset by a reprocess."""
    return int(conn.execute(text("""
        SELECT count(*) FROM pipeline.access_code_events
        WHERE code_id = :c AND action = :generate AND outcome = :failed
          AND event_id > COALESCE((SELECT max(event_id) FROM pipeline.access_code_events
                                   WHERE code_id = :c AND action = :reprocess), 0)
    """), {"c": code_id, "generate": ActionKind.GENERATE, "failed": CodeState.FAILED,
           "reprocess": EventAction.REPROCESS}).scalar())


def other_pins_ciphertexts(conn: Connection, device_id: str, except_code_id: int | None) -> list[bytes]:
    return [bytes(r) for r in conn.execute(text(f"""
        SELECT pin_ciphertext FROM pipeline.access_codes
        WHERE device_id = :d AND {_LIVE} AND pin_ciphertext IS NOT NULL AND code_id IS DISTINCT FROM :c
    """), {"d": device_id, "c": except_code_id}).scalars()]


# ---------------------------------------------------------------- confirm and revoke

@dataclass(frozen=True)
class CodeRow:
    code_id: int
    reservation_id: str
    device_id: str
    state: str
    tuya_password_id: str | None
    lock_label: str
    valid_from: datetime
    valid_until: datetime


def code_for_update(conn: Connection, code_id: int) -> CodeRow | None:
    row = conn.execute(text("""
        SELECT code_id, reservation_id, device_id, state, tuya_password_id, lock_label, valid_from, valid_until
        FROM pipeline.access_codes WHERE code_id = :c FOR UPDATE
    """), {"c": code_id}).mappings().one_or_none()
    return CodeRow(**row) if row else None


def record_confirmation(conn: Connection, code_id: int, *, phase: int | None, now: datetime,
                        channels: Sequence[str] = ()) -> str:
    """What the lock says of a pending PIN: ``active`` once it has it (phase 2), else still pending.
    A code that becomes active again after a move announces its new window."""
    state = CodeState.ACTIVE if phase == 2 else CodeState.PENDING_ON_LOCK
    conn.execute(text("""
        UPDATE pipeline.access_codes SET state = :s, tuya_phase = :phase, updated_at = :now,
            active_at = CASE WHEN :s = :active THEN CAST(:now AS timestamptz) ELSE active_at END
        WHERE code_id = :c
    """), {"s": state, "active": CodeState.ACTIVE, "phase": phase, "now": now, "c": code_id})
    if state == CodeState.ACTIVE:
        outbox.announce_activation(conn, code_id, channels=channels, now=now)
    return state


def record_moved(conn: Connection, code_id: int, *, window: Window, run_id: str | None, now: datetime) -> None:
    """The lock accepted the new window (same digits): it is the code's window now, and whether the
    lock holds it yet is read by a confirm, as after a create."""
    conn.execute(text("""
        UPDATE pipeline.access_codes SET valid_from = :f, valid_until = :u, state = :pending, tuya_phase = NULL,
            programmed_at = :now, last_error = NULL, updated_at = :now, last_run_id = :run WHERE code_id = :c
    """), {"f": window.start, "u": window.end, "pending": CodeState.PENDING_ON_LOCK, "now": now, "run": run_id,
           "c": code_id})


GONE_FROM_LOCK = "the PIN is no longer on the lock (deleted outside the pipeline?): it is programmed again, same digits"


def record_gone_from_lock(conn: Connection, code_id: int, *, now: datetime) -> None:
    """The lock no longer holds a PIN the database called live: the code is due again at once, keeping its
    digits (the row's ciphertext), so the guest's code works again without anyone telling them new ones."""
    conn.execute(text("""
        UPDATE pipeline.access_codes SET state = :failed, tuya_password_id = NULL, tuya_phase = NULL, last_error = :e,
            next_attempt_at = :now, updated_at = :now WHERE code_id = :c
    """), {"failed": CodeState.FAILED, "e": GONE_FROM_LOCK, "now": now, "c": code_id})


def record_modify_refused(conn: Connection, code_id: int, *, error: str, now: datetime) -> None:
    """The lock will not move this PIN: the planner replaces it with new digits instead."""
    conn.execute(text("UPDATE pipeline.access_codes SET modify_refused_at = :now, last_error = :e, updated_at = :now "
                      "WHERE code_id = :c"), {"now": now, "e": error, "c": code_id})


def mark_revoking(conn: Connection, code_id: int, *, run_id: str | None, now: datetime) -> None:
    conn.execute(text("""
        UPDATE pipeline.access_codes SET state = :state, updated_at = :now, last_run_id = :run,
            retry_requested_at = NULL WHERE code_id = :c
    """), {"state": CodeState.REVOKING, "now": now, "run": run_id, "c": code_id})


def pin_ciphertext_of(conn: Connection, code_id: int) -> bytes:
    return bytes(conn.execute(text("SELECT pin_ciphertext FROM pipeline.access_codes WHERE code_id = :c"),
                              {"c": code_id}).scalar_one())


def record_error(conn: Connection, code_id: int, *, error: str, now: datetime) -> None:
    """An action on a live code failed; the code stays as it was, with the reason, until it is retried."""
    conn.execute(text("UPDATE pipeline.access_codes SET last_error = :e, updated_at = :now WHERE code_id = :c"),
                 {"e": error, "now": now, "c": code_id})


def record_revoked(conn: Connection, code_id: int, *, password_id: str | None, now: datetime,
                   channels: Sequence[str] = ()) -> str:
    """Gone from the lock: ``revoked``; never reached it: ``cancelled``. The guest hears of it when they
    are left without a code they had been given (delivery/outbox.py announce_revocation)."""
    final = CodeState.REVOKED if password_id is not None else CodeState.CANCELLED
    conn.execute(text("""
        UPDATE pipeline.access_codes SET state = :s, revoked_at = :now, updated_at = :now, last_error = NULL,
            tuya_password_id = COALESCE(tuya_password_id, :p), next_attempt_at = NULL
        WHERE code_id = :c
    """), {"s": final, "now": now, "p": password_id, "c": code_id})
    outbox.announce_revocation(conn, code_id, channels=channels, now=now)
    return final


# ---------------------------------------------------------------- reprocess

def request_retry(conn: Connection, reservation_id: str, *, run_id: str | None, now: datetime) -> int:
    """A person asked for a stay's PIN work to run now: codes that are failed or stuck mid-action
    get a fresh retry budget and ``retry_requested_at``; the planner acts on them at once."""
    reset = conn.execute(text("""
        UPDATE pipeline.access_codes SET attempts = 0, retry_requested_at = :now, updated_at = :now,
            last_run_id = :run
        WHERE reservation_id = :r AND state IN (:failed, :programming, :revoking)
        RETURNING code_id, device_id
    """), {"now": now, "run": run_id, "r": reservation_id, "failed": CodeState.FAILED,
           "programming": CodeState.PROGRAMMING, "revoking": CodeState.REVOKING}).all()
    for code_id, device_id in reset:  # the retry schedule restarts from here (failed_runs_since_reset)
        record_event(conn, code_id=code_id, reservation_id=reservation_id, device_id=device_id,
                     action=EventAction.REPROCESS, outcome="reset", run_id=run_id, at=now,
                     detail="retry budget reset by reprocess")
    return len(reset)


def request_retry_for_lock(conn: Connection, device_id: str, *, reason: str, run_id: str | None,
                           now: datetime) -> int:
    """A person fixed what a lock's failed codes were waiting for (its PIN length): they get a fresh retry
    budget and ``retry_requested_at``, so the planner retries them at once, as after a reprocess."""
    reset = conn.execute(text("""
        UPDATE pipeline.access_codes SET attempts = 0, retry_requested_at = :now, updated_at = :now,
            last_run_id = :run
        WHERE device_id = :d AND state = :failed AND valid_until > :now
        RETURNING code_id, reservation_id
    """), {"now": now, "run": run_id, "d": device_id, "failed": CodeState.FAILED}).all()
    for code_id, reservation_id in reset:
        record_event(conn, code_id=code_id, reservation_id=reservation_id, device_id=device_id,
                     action=EventAction.REPROCESS, outcome="reset", run_id=run_id, at=now, detail=reason)
    return len(reset)


# ---------------------------------------------------------------- events and reveals

def record_event(conn: Connection, *, code_id: int | None, reservation_id: str, device_id: str, action: str,
                 outcome: str, run_id: str | None, at: datetime, password_id: str | None = None,
                 detail: str | None = None) -> None:
    conn.execute(text("""
        INSERT INTO pipeline.access_code_events (code_id, reservation_id, device_id, action, outcome,
            tuya_password_id, detail, run_id, at)
        VALUES (:code_id, :reservation_id, :device_id, :action, :outcome, :password_id, :detail, :run_id, :at)
    """), {"code_id": code_id, "reservation_id": reservation_id, "device_id": device_id, "action": action,
           "outcome": outcome, "password_id": password_id, "detail": detail, "run_id": run_id, "at": at})


def stay_history(conn: Connection, reservation_code: str, limit: int = 100) -> list[dict]:
    """The newest ``limit`` entries of a stay's history (PIN actions, Stays changes, deliveries), oldest first."""
    rows = [dict(row) for row in conn.execute(text("""
        SELECT e.at, e.action, e.outcome, e.detail, e.device_id AS lock_id, e.run_id
        FROM pipeline.access_code_events e JOIN pipeline.reservations r USING (reservation_id)
        WHERE r.code = :code ORDER BY e.at DESC, e.event_id DESC LIMIT :limit
    """), {"code": reservation_code, "limit": limit}).mappings()]
    return rows[::-1]


@dataclass(frozen=True)
class StoredPin:
    code_id: int
    reservation_id: str
    reservation_code: str
    state: str
    pin_ciphertext: bytes


def current_pin(conn: Connection, reservation_id: str) -> StoredPin | None:
    """The stay's current code (pipeline.current_access_codes) with its encrypted PIN, if it has one."""
    row = conn.execute(text("""
        SELECT c.code_id, c.reservation_id, r.code AS reservation_code, c.state, c.pin_ciphertext
        FROM pipeline.current_access_codes c JOIN pipeline.reservations r USING (reservation_id)
        WHERE c.reservation_id = :r AND c.pin_ciphertext IS NOT NULL
    """), {"r": reservation_id}).mappings().one_or_none()
    return StoredPin(**{**row, "pin_ciphertext": bytes(row["pin_ciphertext"])}) if row else None


def record_reveal(conn: Connection, reservation_id: str, *, code_id: int | None, backup_id: int | None,
                  revealed_by: str, reason: str | None, at: datetime) -> None:
    """Who saw a stay's PIN (``code_id``) or its backup code (``backup_id``) in clear, and why."""
    conn.execute(text("""
        INSERT INTO pipeline.pin_reveals (code_id, backup_id, reservation_id, revealed_by, reason, at)
        VALUES (:c, :b, :r, :by, :reason, :at)
    """), {"c": code_id, "b": backup_id, "r": reservation_id, "by": revealed_by, "reason": reason, "at": at})


def latest_pin_ciphertext(conn: Connection) -> bytes | None:
    """The newest stored PIN, to check at start that the PIN key can read what is stored."""
    value = conn.execute(text("SELECT pin_ciphertext FROM pipeline.access_codes WHERE pin_ciphertext IS NOT NULL "
                              "ORDER BY code_id DESC LIMIT 1")).scalar()
    return bytes(value) if value is not None else None


# ---------------------------------------------------------------- the lock audit

def devices_to_audit(conn: Connection) -> list[str]:
    """Every lock a listing is confirmed on, and every lock a live code is on."""
    return sorted(conn.execute(text(f"""
        SELECT device_id FROM pipeline.lock_mappings WHERE status = 'confirmed' AND device_id IS NOT NULL
        UNION SELECT DISTINCT device_id FROM pipeline.access_codes WHERE {_LIVE}
    """)).scalars().all())


def known_codes_on(conn: Connection, devices: Sequence[str]) -> list[KnownCode]:
    if not devices:
        return []
    return [KnownCode(**row) for row in conn.execute(text("""
        SELECT c.code_id, c.reservation_id, r.code AS reservation_code, c.state, c.lock_label, c.valid_from,
               c.valid_until, c.tuya_password_id, c.device_id
        FROM pipeline.access_codes c JOIN pipeline.reservations r USING (reservation_id)
        WHERE c.device_id = ANY(:devices)
    """), {"devices": list(devices)}).mappings()]


def live_states_by_stay(conn: Connection, reservation_ids: Sequence[str]) -> dict[str, set[str]]:
    """The states of each stay's live codes."""
    states: dict[str, set[str]] = {}
    for reservation_id, state in conn.execute(text(f"""
        SELECT reservation_id, state FROM pipeline.access_codes WHERE reservation_id = ANY(:ids) AND {_LIVE}
    """), {"ids": list(reservation_ids)}).all():
        states.setdefault(reservation_id, set()).add(state)
    return states
