"""One attempt at each due outbox row: at least once, in order per stay, never a PIN in a log.

Each row is claimed (locked) in its own transaction, sent, and its outcome recorded in the same
transaction; a run killed between the send and the commit sends it again (same ``webhook-id``):
at least once. The digits are read from the code row (or the row's own ciphertext for a backup
code) and decrypted only here, at send time.

- Stays field: the newest event of a stay wins (an older one still waiting is skipped), so a late
  retry never writes stale digits over newer ones. A 403/404 stops the channel (one alert); it is
  tried again once an hour, and its rows wait, unspent.
- Notifications: a stay's events go in order (one waits while an older one is still waiting),
  retried 1, 2, 4, ... minutes apart for 24 h, then dead (admin.attention).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from lock_pipeline.access import store as access_store
from lock_pipeline.access.pins import PinVault
from lock_pipeline.delivery import outbox
from lock_pipeline.delivery.notify import EventFacts, Notifier, NotifyFailed, event_body
from lock_pipeline.delivery.rules import next_attempt_at, probe_due, stays_field_value
from lock_pipeline.delivery.stays_field import (
    ReservationGone,
    StaysFieldWriter,
    WriteBackFailed,
    WriteBackRefused,
)
from lock_pipeline.stays.client import StaysClient
from lock_pipeline.vocabulary import ANNOUNCING_EVENTS, CodeEvent, CodeState, DeliveryChannel, EventAction, OutboxState

STOPPED = "stopped"   # an attempt's outcome: the channel was refused and is stopped (the row waits)
HELD = "held"         # not tried: its channel is stopped, or an older event of the stay goes first


@dataclass(frozen=True)
class Attempt:
    """What one attempt did (never the digits): for the run's log and the stay's history."""

    outbox_id: int
    reservation_code: str
    device_id: str
    event_type: str
    channel: str
    outcome: str  # delivered | failed | dead | skipped | stopped | held
    detail: str


class DeliverySender:
    def __init__(self, engine: Engine, vault: PinVault, *, now: Callable[[], datetime], channels: Sequence[str],
                 run_id: str | None, stays_client: StaysClient | None = None, stays_field_name: str = "door_code",
                 notifier: Notifier | None = None, include_pin: bool = False) -> None:
        self.engine = engine
        self.vault = vault
        self.now = now
        self.channels = tuple(channels)
        self.run_id = run_id
        self.writer = StaysFieldWriter(stays_client, stays_field_name) if stays_client is not None else None
        self.field_name = stays_field_name
        self.notifier = notifier
        self.include_pin = include_pin

    def deliver(self, outbox_ids: Sequence[int]) -> list[Attempt]:
        attempts = []
        for outbox_id in sorted(outbox_ids):
            attempt = self._one(outbox_id)
            if attempt is not None:
                attempts.append(attempt)
        return attempts

    # ------------------------------------------------------------------ one row

    def _one(self, outbox_id: int) -> Attempt | None:
        now = self.now()
        with self.engine.connect() as conn, conn.begin():
            row = outbox.claim(conn, outbox_id, now)
            if row is None:
                return None  # sent by another run meanwhile, or not due any more
            context = outbox.event_context(conn, row)
            if row.channel not in self.channels:
                return self._skip(conn, row, context, now, "its channel is switched off")
            if row.event_type != CodeEvent.REVOKED and row.valid_until is not None and row.valid_until <= now:
                return self._skip(conn, row, context, now, "the code's window is over: nothing to tell any more")
            if row.channel == DeliveryChannel.STAYS_FIELD:
                return self._stays_field(conn, row, context, now)
            return self._notify(conn, row, context, now)

    def _stays_field(self, conn: Connection, row: outbox.OutboxRow, context: outbox.EventContext,
                     now: datetime) -> Attempt:
        if self.writer is None:
            raise RuntimeError("write-back is configured but the delivery run has no Stays client")
        if outbox.newer_row_exists(conn, row):
            return self._skip(conn, row, context, now, "a newer event of the stay writes the field")
        state = outbox.channel_state(conn, DeliveryChannel.STAYS_FIELD, for_update=True)
        if state.stopped_at is not None:
            if not probe_due(state.stopped_at, state.last_probe_at, now):
                outbox.record_held(conn, row.outbox_id, reason=f"write-back stopped: {state.stopped_reason}",
                                   run_id=self.run_id)
                return self._attempt(row, context, HELD, "write-back is stopped; tried again hourly")
            outbox.record_probe(conn, DeliveryChannel.STAYS_FIELD, now=now)
        remembered = state.stays_field_id if state.stays_field_name == self.field_name else None
        value = self._field_value(conn, row)
        try:
            result = self.writer.write(row.reservation_id, value, remembered)
        except WriteBackRefused as refused:
            outbox.stop_channel(conn, DeliveryChannel.STAYS_FIELD, reason=str(refused), now=now)
            outbox.record_held(conn, row.outbox_id, reason=str(refused), run_id=self.run_id)
            return self._history(conn, row, context, now, STOPPED,
                                 f"write-back stopped, the event waits: {refused}")
        except ReservationGone as gone:
            return self._skip(conn, row, context, now, str(gone))
        except WriteBackFailed as failed:
            return self._failed(conn, row, context, now, str(failed))
        if result.field_id != remembered:
            outbox.remember_stays_field(conn, name=self.field_name, field_id=result.field_id, now=now)
        if state.stopped_at is not None:
            outbox.resume_channel(conn, DeliveryChannel.STAYS_FIELD, now=now)
        outbox.record_delivered(conn, row.outbox_id, now=now, run_id=self.run_id)
        what = ("cleared" if not value else "written") if result.written else "already held the value"
        return self._history(conn, row, context, now, OutboxState.DELIVERED,
                             f"Stays field {self.field_name} {what}")

    def _notify(self, conn: Connection, row: outbox.OutboxRow, context: outbox.EventContext,
                now: datetime) -> Attempt | None:
        if self.notifier is None:
            raise RuntimeError("notifications are configured but the delivery run has no notifier")
        if outbox.older_row_waiting(conn, row):
            return None  # an older event of this stay failed just now: this one keeps its place behind it
        announcing = row.event_type in ANNOUNCING_EVENTS
        pin = self._digits(conn, row) if announcing and self.include_pin else None
        facts = EventFacts(
            event_type=row.event_type, occurred_at=row.occurred_at, reservation_code=context.reservation_code,
            reservation_id=row.reservation_id, listing=context.listing, listing_code=context.listing_code,
            lock_id=row.device_id, lock_name=context.lock_name, time_zone=context.time_zone,
            access_from=row.valid_from, access_until=row.valid_until, check_in_at=context.check_in_at,
            check_out_at=context.check_out_at, pin_masked=context.pin_masked if row.code_id is not None else None,
            reason=context.code_error)
        stays_field = self.field_name if DeliveryChannel.STAYS_FIELD in self.channels else None
        body = event_body(facts, pin=pin, stays_field=stays_field)
        try:
            status = self.notifier.send(row.event_id, body)
        except NotifyFailed as failed:
            return self._failed(conn, row, context, now, str(failed))
        outbox.record_delivered(conn, row.outbox_id, now=now, run_id=self.run_id)
        return self._history(conn, row, context, now, OutboxState.DELIVERED,
                             f"notification {row.event_id} taken (HTTP {status})")

    # ------------------------------------------------------------------ the digits, at send time only

    def _digits(self, conn: Connection, row: outbox.OutboxRow) -> str:
        if row.pin_ciphertext is not None:
            return self.vault.decrypt(row.pin_ciphertext)
        if row.code_id is None:
            raise ValueError(f"outbox row {row.outbox_id} announces digits but names no code")
        return self.vault.decrypt(access_store.pin_ciphertext_of(conn, row.code_id))

    def _field_value(self, conn: Connection, row: outbox.OutboxRow) -> str:
        """What the field says after this event (the newest of its stay): the online code and any backup."""
        if row.event_type == CodeEvent.REVOKED:
            return ""
        if row.event_type == CodeEvent.BACKUP_ISSUED:
            current = access_store.current_pin(conn, row.reservation_id)
            online = (self.vault.decrypt(current.pin_ciphertext)
                      if current is not None and current.state == CodeState.ACTIVE else None)
            return stays_field_value(online, self._digits(conn, row))
        backup = outbox.latest_backup_ciphertext(conn, row.reservation_id)
        return stays_field_value(self._digits(conn, row), self.vault.decrypt(backup) if backup else None)

    # ------------------------------------------------------------------ outcomes

    def _failed(self, conn: Connection, row: outbox.OutboxRow, context: outbox.EventContext, now: datetime,
                error: str) -> Attempt:
        retry_at = next_attempt_at(row.attempts + 1, row.occurred_at, now)
        state = outbox.record_failed(conn, row.outbox_id, error=error, retry_at=retry_at, now=now, run_id=self.run_id)
        then = f"next try {retry_at.isoformat()}" if retry_at is not None else "gave up: retries spent"
        return self._history(conn, row, context, now, state, f"attempt {row.attempts + 1} failed ({error}); {then}")

    def _skip(self, conn: Connection, row: outbox.OutboxRow, context: outbox.EventContext, now: datetime,
              reason: str) -> Attempt:
        outbox.record_skipped(conn, row.outbox_id, reason=reason, now=now, run_id=self.run_id)
        return self._history(conn, row, context, now, OutboxState.SKIPPED, reason)

    def _history(self, conn: Connection, row: outbox.OutboxRow, context: outbox.EventContext, now: datetime,
                 outcome: str, detail: str) -> Attempt:
        """The attempt in the stay's history (admin.access_history), beside its PIN actions."""
        attempt = self._attempt(row, context, str(outcome), detail)
        access_store.record_event(conn, code_id=row.code_id, reservation_id=row.reservation_id,
                                  device_id=row.device_id, action=EventAction.DELIVERY, outcome=attempt.outcome,
                                  run_id=self.run_id, at=now, detail=f"{row.event_type} to {row.channel}: {detail}")
        return attempt

    @staticmethod
    def _attempt(row: outbox.OutboxRow, context: outbox.EventContext, outcome: str, detail: str) -> Attempt:
        return Attempt(row.outbox_id, context.reservation_code, row.device_id, row.event_type, row.channel,
                       str(outcome), detail)
