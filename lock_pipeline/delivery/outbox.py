"""pipeline.delivery_outbox and pipeline.delivery_channels, and the only module that writes them.

A transactional outbox: :func:`enqueue_code_event` is called inside the transaction that changes
the code (access/store.py), so an event exists exactly when the change it announces was committed.
One row per event and configured channel; the delivery job claims due rows and records each attempt
here. No row holds a PIN in clear (a backup code's digits come as Fernet ciphertext, like
access_codes'), and ``last_error`` never holds what a receiver answered.

The ``announce_*`` functions decide which event a state change is (the life cycle calls them):
- a code the lock took: ``code.active`` (again after a move: the guest's times changed), or
  ``code.changed`` when it carries new digits for a stay that had others;
- a code whose retries are spent: ``code.failed``, once per code;
- a code gone from the lock: ``code.revoked``, only when the stay has no other live code (a
  replacement is announced by its own ``code.changed``) and something had been announced.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from lock_pipeline.delivery.rules import STOPPED_CHANNEL_PROBE_EVERY
from lock_pipeline.vocabulary import (
    ANNOUNCING_EVENTS,
    CHANNEL_EVENTS,
    ENDED_STATES,
    CodeEvent,
    DeliveryChannel,
    OutboxState,
)

_ANNOUNCING = sorted(e.value for e in ANNOUNCING_EVENTS)
_ENDED = sorted(s.value for s in ENDED_STATES)
_WAITING = [OutboxState.PENDING.value, OutboxState.FAILED.value]


def new_event_id() -> str:
    """An event's id, also its notification's ``webhook-id``: the same on every retry."""
    return "msg_" + secrets.token_hex(12)


# ---------------------------------------------------------------- enqueue (in the caller's transaction)

def enqueue_code_event(conn: Connection, *, event: CodeEvent, reservation_id: str, code_id: int | None,
                       device_id: str, valid_from: datetime | None, valid_until: datetime | None,
                       channels: Sequence[str], now: datetime, pin_ciphertext: bytes | None = None) -> str | None:
    """Queue one code event for every configured channel that carries it; returns its event id (None: no
    channel carries it). Call it in the transaction of the change it announces.

    ``pin_ciphertext``: only for digits that are not the code row's own, i.e. an offline backup code
    (``code.backup_issued``), as Fernet ciphertext; otherwise the code row's PIN is read at send time.
    """
    event = CodeEvent(event)
    targets = [channel for channel in channels if event in CHANNEL_EVENTS[DeliveryChannel(channel)]]
    if not targets:
        return None
    event_id = new_event_id()
    conn.execute(text("""
        INSERT INTO pipeline.delivery_outbox (event_id, event_type, channel, reservation_id, code_id, device_id,
            valid_from, valid_until, pin_ciphertext, occurred_at, state, next_attempt_at)
        VALUES (:event_id, :event, :channel, :r, :code, :device, :f, :u, :cipher, :now, :pending, :now)
    """), [{"event_id": event_id, "event": event.value, "channel": channel, "r": reservation_id, "code": code_id,
            "device": device_id, "f": valid_from, "u": valid_until, "cipher": pin_ciphertext, "now": now,
            "pending": OutboxState.PENDING.value} for channel in targets])
    return event_id


@dataclass(frozen=True)
class _Code:
    code_id: int
    reservation_id: str
    device_id: str
    valid_from: datetime
    valid_until: datetime
    digits_changed_at: datetime | None


def _code(conn: Connection, code_id: int) -> _Code:
    row = conn.execute(text("""
        SELECT code_id, reservation_id, device_id, valid_from, valid_until, digits_changed_at
        FROM pipeline.access_codes WHERE code_id = :c
    """), {"c": code_id}).mappings().one()
    return _Code(**row)


def announce_activation(conn: Connection, code_id: int, *, channels: Sequence[str], now: datetime) -> str | None:
    """The lock took this code: ``code.changed`` the first time a code with new digits is announced,
    else ``code.active`` (a first PIN, or the same digits with a new window after a move)."""
    if not channels:
        return None
    code = _code(conn, code_id)
    announced_before = conn.execute(text("""
        SELECT EXISTS (SELECT 1 FROM pipeline.delivery_outbox WHERE code_id = :c AND event_type = ANY(:announcing))
    """), {"c": code_id, "announcing": _ANNOUNCING}).scalar()
    event = CodeEvent.CHANGED if code.digits_changed_at is not None and not announced_before else CodeEvent.ACTIVE
    return enqueue_code_event(conn, event=event, reservation_id=code.reservation_id, code_id=code_id,
                              device_id=code.device_id, valid_from=code.valid_from, valid_until=code.valid_until,
                              channels=channels, now=now)


def announce_failure(conn: Connection, code_id: int, *, channels: Sequence[str], now: datetime) -> str | None:
    """The code's retries are spent (it is retried on a schedule, and admin.attention lists it): told
    once per code, not at every scheduled retry."""
    if not channels:
        return None
    told = conn.execute(text("SELECT EXISTS (SELECT 1 FROM pipeline.delivery_outbox WHERE code_id = :c "
                             "AND event_type = :failed)"), {"c": code_id, "failed": CodeEvent.FAILED.value}).scalar()
    if told:
        return None
    code = _code(conn, code_id)
    return enqueue_code_event(conn, event=CodeEvent.FAILED, reservation_id=code.reservation_id, code_id=code_id,
                              device_id=code.device_id, valid_from=code.valid_from, valid_until=code.valid_until,
                              channels=channels, now=now)


def announce_revocation(conn: Connection, code_id: int, *, channels: Sequence[str], now: datetime) -> str | None:
    """The code is gone from the lock. Announced only when the guest is left without a code (no other live
    code of the stay: a replacement is announced by its own event) and a code had been announced since
    the last revocation (nothing to take back otherwise)."""
    if not channels:
        return None
    code = _code(conn, code_id)
    worth_telling = conn.execute(text("""
        SELECT NOT EXISTS (SELECT 1 FROM pipeline.access_codes
                           WHERE reservation_id = :r AND code_id <> :c AND state <> ALL(:ended))
           AND EXISTS (SELECT 1 FROM pipeline.delivery_outbox o
                       WHERE o.reservation_id = :r AND o.event_type = ANY(:announcing)
                         AND o.outbox_id > COALESCE((SELECT max(outbox_id) FROM pipeline.delivery_outbox
                                                     WHERE reservation_id = :r AND event_type = :revoked), 0))
    """), {"r": code.reservation_id, "c": code_id, "ended": _ENDED, "announcing": _ANNOUNCING,
                        "revoked": CodeEvent.REVOKED.value}).scalar()
    if not worth_telling:
        return None
    return enqueue_code_event(conn, event=CodeEvent.REVOKED, reservation_id=code.reservation_id, code_id=code_id,
                              device_id=code.device_id, valid_from=code.valid_from, valid_until=code.valid_until,
                              channels=channels, now=now)


# ---------------------------------------------------------------- what is due (the sensor: a read)

@dataclass(frozen=True)
class DueRow:
    outbox_id: int
    attempts: int
    reservation_code: str
    event_type: str


def due(conn: Connection, now: datetime, channels: Sequence[str], limit: int = 100) -> list[DueRow]:
    """Rows whose next attempt is due, on configured channels that are not stopped (or whose hourly probe
    is due), oldest first. A notification waits behind an older one of the same stay that is still
    waiting, so a stay's events reach the receiver in order."""
    if not channels:
        return []
    return [DueRow(**row) for row in conn.execute(text("""
        SELECT o.outbox_id, o.attempts, r.code AS reservation_code, o.event_type
        FROM pipeline.delivery_outbox o
        JOIN pipeline.reservations r USING (reservation_id)
        LEFT JOIN pipeline.delivery_channels ch ON ch.channel = o.channel
        WHERE o.state = ANY(:waiting) AND o.next_attempt_at <= :now AND o.channel = ANY(:channels)
          AND (ch.stopped_at IS NULL OR COALESCE(ch.last_probe_at, ch.stopped_at) + :probe <= :now)
          AND NOT (o.channel = :notify AND EXISTS (
                SELECT 1 FROM pipeline.delivery_outbox older
                WHERE older.reservation_id = o.reservation_id AND older.channel = o.channel
                  AND older.outbox_id < o.outbox_id AND older.state = ANY(:waiting)))
        ORDER BY o.outbox_id LIMIT :limit
    """), {"waiting": _WAITING, "now": now, "channels": list(channels), "probe": STOPPED_CHANNEL_PROBE_EVERY,
           "notify": DeliveryChannel.NOTIFY.value, "limit": limit}).mappings()]


# ---------------------------------------------------------------- one attempt (the delivery run)

@dataclass(frozen=True)
class OutboxRow:
    outbox_id: int
    event_id: str
    event_type: str
    channel: str
    reservation_id: str
    code_id: int | None
    device_id: str
    valid_from: datetime | None
    valid_until: datetime | None
    pin_ciphertext: bytes | None
    occurred_at: datetime
    state: str
    attempts: int


def claim(conn: Connection, outbox_id: int, now: datetime) -> OutboxRow | None:
    """The row, if it is still due, locked until the caller's transaction ends (two runs never send it at once)."""
    row = conn.execute(text("""
        SELECT outbox_id, event_id, event_type, channel, reservation_id, code_id, device_id, valid_from, valid_until,
               pin_ciphertext, occurred_at, state, attempts
        FROM pipeline.delivery_outbox
        WHERE outbox_id = :id AND state = ANY(:waiting) AND next_attempt_at <= :now
        FOR UPDATE SKIP LOCKED
    """), {"id": outbox_id, "waiting": _WAITING, "now": now}).mappings().one_or_none()
    if row is None:
        return None
    cipher = row["pin_ciphertext"]
    return OutboxRow(**{**row, "pin_ciphertext": bytes(cipher) if cipher is not None else None})


def newer_row_exists(conn: Connection, row: OutboxRow) -> bool:
    """A later event of the same stay on the same channel: for the Stays field, the newest event wins."""
    return bool(conn.execute(text("""
        SELECT EXISTS (SELECT 1 FROM pipeline.delivery_outbox WHERE reservation_id = :r AND channel = :ch
                       AND outbox_id > :id AND state <> :skipped)
    """), {"r": row.reservation_id, "ch": row.channel, "id": row.outbox_id,
           "skipped": OutboxState.SKIPPED.value}).scalar())


def older_row_waiting(conn: Connection, row: OutboxRow) -> bool:
    """An earlier event of the same stay on the same channel still waits (a notification keeps its order)."""
    return bool(conn.execute(text("""
        SELECT EXISTS (SELECT 1 FROM pipeline.delivery_outbox WHERE reservation_id = :r AND channel = :ch
                       AND outbox_id < :id AND state = ANY(:waiting))
    """), {"r": row.reservation_id, "ch": row.channel, "id": row.outbox_id, "waiting": _WAITING}).scalar())


def latest_backup_ciphertext(conn: Connection, reservation_id: str) -> bytes | None:
    """The stay's offline backup code announced since its code was last revoked, if any (encrypted)."""
    value = conn.execute(text("""
        SELECT pin_ciphertext FROM pipeline.delivery_outbox
        WHERE reservation_id = :r AND event_type = :backup AND pin_ciphertext IS NOT NULL
          AND outbox_id > COALESCE((SELECT max(outbox_id) FROM pipeline.delivery_outbox
                                    WHERE reservation_id = :r AND event_type = :revoked), 0)
        ORDER BY outbox_id DESC LIMIT 1
    """), {"r": reservation_id, "backup": CodeEvent.BACKUP_ISSUED.value, "revoked": CodeEvent.REVOKED.value}).scalar()
    return bytes(value) if value is not None else None


def record_delivered(conn: Connection, outbox_id: int, *, now: datetime, run_id: str | None) -> None:
    conn.execute(text("""
        UPDATE pipeline.delivery_outbox SET state = :delivered, attempts = attempts + 1, last_attempt_at = :now,
            delivered_at = :now, last_error = NULL, run_id = :run WHERE outbox_id = :id
    """), {"delivered": OutboxState.DELIVERED.value, "now": now, "run": run_id, "id": outbox_id})


def record_failed(conn: Connection, outbox_id: int, *, error: str, retry_at: datetime | None, now: datetime,
                  run_id: str | None) -> str:
    """A failed attempt: ``failed`` until ``retry_at``, or ``dead`` when there is none (retries spent)."""
    state = OutboxState.FAILED if retry_at is not None else OutboxState.DEAD
    conn.execute(text("""
        UPDATE pipeline.delivery_outbox SET state = :state, attempts = attempts + 1, last_attempt_at = :now,
            next_attempt_at = COALESCE(:retry, next_attempt_at), last_error = :error, run_id = :run
        WHERE outbox_id = :id
    """), {"state": state.value, "now": now, "retry": retry_at, "error": error[:500], "run": run_id, "id": outbox_id})
    return state.value


def record_skipped(conn: Connection, outbox_id: int, *, reason: str, now: datetime, run_id: str | None) -> None:
    conn.execute(text("""
        UPDATE pipeline.delivery_outbox SET state = :skipped, last_attempt_at = :now, last_error = :reason,
            run_id = :run WHERE outbox_id = :id
    """), {"skipped": OutboxState.SKIPPED.value, "now": now, "reason": reason[:500], "run": run_id, "id": outbox_id})


def record_held(conn: Connection, outbox_id: int, *, reason: str, run_id: str | None) -> None:
    """Not tried: its channel is stopped. It stays pending, its attempts unspent, until the channel resumes."""
    conn.execute(text("UPDATE pipeline.delivery_outbox SET last_error = :reason, run_id = :run WHERE outbox_id = :id"),
                 {"reason": reason[:500], "run": run_id, "id": outbox_id})


# ---------------------------------------------------------------- the channels' own state

@dataclass(frozen=True)
class ChannelState:
    channel: str
    stopped_at: datetime | None = None
    stopped_reason: str | None = None
    last_probe_at: datetime | None = None
    stays_field_name: str | None = None
    stays_field_id: str | None = None


def channel_state(conn: Connection, channel: str, *, for_update: bool = False) -> ChannelState:
    row = conn.execute(text(
        "SELECT channel, stopped_at, stopped_reason, last_probe_at, stays_field_name, stays_field_id "
        "FROM pipeline.delivery_channels WHERE channel = :ch" + (" FOR UPDATE" if for_update else "")
    ), {"ch": channel}).mappings().one_or_none()
    return ChannelState(**row) if row else ChannelState(channel)


def _upsert_channel(conn: Connection, channel: str, now: datetime, assignments: str, values: dict) -> None:
    conn.execute(text("INSERT INTO pipeline.delivery_channels (channel, updated_at) VALUES (:ch, :now) "
                      "ON CONFLICT (channel) DO NOTHING"), {"ch": channel, "now": now})
    conn.execute(text(f"UPDATE pipeline.delivery_channels SET {assignments}, updated_at = :now WHERE channel = :ch"),
                 {"ch": channel, "now": now, **values})


def stop_channel(conn: Connection, channel: str, *, reason: str, now: datetime) -> None:
    """The channel is refused for good (Stays: 403/404 on a write): one admin.attention row, no retry storm."""
    _upsert_channel(conn, channel, now, "stopped_at = COALESCE(stopped_at, :now), stopped_reason = :reason, "
                                        "last_probe_at = :now", {"reason": reason[:500]})


def record_probe(conn: Connection, channel: str, *, now: datetime) -> None:
    _upsert_channel(conn, channel, now, "last_probe_at = :now", {})


def resume_channel(conn: Connection, channel: str, *, now: datetime) -> None:
    _upsert_channel(conn, channel, now, "stopped_at = NULL, stopped_reason = NULL, last_probe_at = NULL", {})


def remember_stays_field(conn: Connection, *, name: str, field_id: str | None, now: datetime) -> None:
    """The Stays custom field's id for ``name`` (None forgets it: the field was deleted in Stays)."""
    _upsert_channel(conn, DeliveryChannel.STAYS_FIELD.value, now, "stays_field_name = :name, stays_field_id = :id",
                    {"name": name, "id": field_id})


# ---------------------------------------------------------------- what an event says (read at send time)

@dataclass(frozen=True)
class EventContext:
    """The names a code event carries besides the row itself: never a secret."""

    reservation_code: str
    time_zone: str
    check_in_at: datetime
    check_out_at: datetime
    listing: str
    listing_code: str
    lock_name: str | None
    pin_masked: str | None
    code_error: str | None


def event_context(conn: Connection, row: OutboxRow) -> EventContext:
    return EventContext(**conn.execute(text("""
        SELECT r.code AS reservation_code, r.time_zone, r.check_in_at, r.check_out_at,
               COALESCE(NULLIF(l.internal_name, ''), l.title) AS listing, l.short_code AS listing_code,
               k.name AS lock_name, c.pin_masked, c.last_error AS code_error
        FROM pipeline.reservations r
        JOIN pipeline.listings l USING (listing_id)
        LEFT JOIN pipeline.access_codes c ON c.code_id = :code
        LEFT JOIN pipeline.locks k ON k.device_id = :device
        WHERE r.reservation_id = :r
    """), {"r": row.reservation_id, "code": row.code_id, "device": row.device_id}).mappings().one())
