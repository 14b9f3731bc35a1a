"""Offline backup codes (pipeline.backup_codes), and the only module that writes them.

Exactly once, as far as the cloud allows: the request row is committed before the cloud is asked.
The cloud has no way to list offline codes, so a request whose answer never reached the database
(a run killed in between) cannot be adopted: it is marked ``lost`` (its digits were given to nobody,
and it only works inside that stay's window) and the next attempt asks again under another name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from lock_pipeline.access.planning import BackupCode, Window
from lock_pipeline.delivery import outbox
from lock_pipeline.vocabulary import BackupState, CodeEvent


@dataclass(frozen=True)
class IssuedBackup:
    backup_id: int
    reservation_id: str
    device_id: str
    name: str
    tuya_offline_id: str
    code_ciphertext: bytes
    effective_from: datetime
    invalid_at: datetime


# A request still unanswered after this long belongs to a run that died: it no longer covers the stay,
# so the next plan asks again (and the executor marks it lost first).
UNANSWERED_AFTER = timedelta(minutes=10)


def live_backups(conn: Connection, reservation_ids: Sequence[str], now: datetime) -> list[BackupCode]:
    """Codes issued (or being requested right now) for these stays that still work or may, in the cloud's window."""
    if not reservation_ids:
        return []
    return [BackupCode(row.reservation_id, row.device_id,
                       Window(row.effective_from or row.requested_from, row.invalid_at or row.requested_until))
            for row in conn.execute(text("""
                SELECT reservation_id, device_id, requested_from, requested_until, effective_from, invalid_at
                FROM pipeline.backup_codes
                WHERE reservation_id = ANY(:ids) AND COALESCE(invalid_at, requested_until) > :now
                  AND (state = :issued OR (state = :requesting AND created_at > :unanswered))
            """), {"ids": list(reservation_ids), "now": now, "issued": BackupState.ISSUED,
                   "requesting": BackupState.REQUESTING, "unanswered": now - UNANSWERED_AFTER})]


def mark_unanswered_lost(conn: Connection, reservation_id: str, device_id: str) -> int:
    """Earlier requests whose answer never came back (their run died); returns how many."""
    return conn.execute(text("""
        UPDATE pipeline.backup_codes SET state = :lost WHERE reservation_id = :r AND device_id = :d AND state = :requesting
    """), {"lost": BackupState.LOST, "requesting": BackupState.REQUESTING, "r": reservation_id,
           "d": device_id}).rowcount


def requests_so_far(conn: Connection, reservation_id: str, device_id: str) -> int:
    return int(conn.execute(text("SELECT count(*) FROM pipeline.backup_codes WHERE reservation_id = :r AND device_id = :d"),
                            {"r": reservation_id, "d": device_id}).scalar())


def insert_request(conn: Connection, *, reservation_id: str, device_id: str, name: str, window: Window,
                   run_id: str | None, now: datetime) -> int:
    return conn.execute(text("""
        INSERT INTO pipeline.backup_codes (reservation_id, device_id, name, requested_from, requested_until, state,
            run_id, created_at)
        VALUES (:r, :d, :name, :f, :u, :requesting, :run, :now) RETURNING backup_id
    """), {"r": reservation_id, "d": device_id, "name": name, "f": window.start, "u": window.end,
           "requesting": BackupState.REQUESTING, "run": run_id, "now": now}).scalar_one()


def record_issued(conn: Connection, backup_id: int, *, tuya_offline_id: str, code_ciphertext: bytes, code_masked: str,
                  effective_from: datetime, invalid_at: datetime, now: datetime, channels: Sequence[str] = ()) -> None:
    """The cloud computed the code; in the same transaction it is queued for the guest's channels
    (``code.backup_issued``: the guest needs it before standing at an offline lock)."""
    row = conn.execute(text("""
        UPDATE pipeline.backup_codes SET state = :issued, tuya_offline_id = :id, code_ciphertext = :c, code_masked = :m,
            effective_from = :f, invalid_at = :u, issued_at = :now WHERE backup_id = :b
        RETURNING reservation_id, device_id
    """), {"issued": BackupState.ISSUED, "id": tuya_offline_id, "c": code_ciphertext, "m": code_masked,
           "f": effective_from, "u": invalid_at, "now": now, "b": backup_id}).one()
    outbox.enqueue_code_event(conn, event=CodeEvent.BACKUP_ISSUED, reservation_id=row.reservation_id, code_id=None,
                              device_id=row.device_id, valid_from=effective_from, valid_until=invalid_at,
                              channels=channels, now=now, pin_ciphertext=code_ciphertext)


def record_refused(conn: Connection, backup_id: int) -> None:
    """The cloud answered no, or no answer came: no code to give anyone (kept, so the next request takes
    another name; a code the cloud may have made anyway works only inside this stay's window)."""
    conn.execute(text("UPDATE pipeline.backup_codes SET state = :lost WHERE backup_id = :b"),
                 {"lost": BackupState.LOST, "b": backup_id})


def current_backup(conn: Connection, reservation_id: str) -> IssuedBackup | None:
    """The stay's newest issued code (what `pin show` reveals beside the PIN, and what a clear code clears)."""
    row = conn.execute(text("""
        SELECT backup_id, reservation_id, device_id, name, tuya_offline_id, code_ciphertext, effective_from, invalid_at
        FROM pipeline.backup_codes WHERE reservation_id = :r AND state = :issued ORDER BY backup_id DESC LIMIT 1
    """), {"r": reservation_id, "issued": BackupState.ISSUED}).mappings().one_or_none()
    return IssuedBackup(**{**row, "code_ciphertext": bytes(row["code_ciphertext"])}) if row else None


def record_clear_requested(conn: Connection, backup_id: int, *, clear_ciphertext: bytes, by: str, now: datetime) -> None:
    conn.execute(text("""
        UPDATE pipeline.backup_codes SET clear_ciphertext = :c, clear_requested_at = :now, clear_requested_by = :by
        WHERE backup_id = :b
    """), {"c": clear_ciphertext, "now": now, "by": by, "b": backup_id})


def record_cleared(conn: Connection, backup_id: int, *, by: str, now: datetime) -> None:
    """A person typed the clear code at the lock: the code no longer works, nothing is outstanding."""
    conn.execute(text("UPDATE pipeline.backup_codes SET cleared_at = :now, cleared_by = :by WHERE backup_id = :b"),
                 {"now": now, "by": by, "b": backup_id})
