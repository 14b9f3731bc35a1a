"""Stored Stays webhooks (pipeline.stays_webhooks), and the only module that writes them.

An accepted webhook is written before the receiver answers 2xx: durable before acknowledged.
One row per distinct body, so a duplicate delivery changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from lock_pipeline.stays.webhooks import Verdict
from lock_pipeline.vocabulary import WebhookState


@dataclass(frozen=True)
class StoredWebhook:
    webhook_id: int
    received_at: datetime
    action: str
    event_at: datetime | None
    reservation_ref: str | None
    listing_ref: str | None


REJECTED_ROWS_PER_HOUR = 1000  # a flood of refused requests cannot fill the table


def record(conn: Connection, verdict: Verdict, received_at: datetime) -> tuple[int | None, bool]:
    """Store what the receiver decided; returns (row id, whether it was a duplicate of a stored body).

    Refused requests are recorded up to REJECTED_ROWS_PER_HOUR an hour (then only answered).
    """
    webhook_id = conn.execute(text("""
        INSERT INTO pipeline.stays_webhooks (received_at, state, action, event_at, reservation_ref, listing_ref,
            body_sha256, reason)
        SELECT :at, :state, :action, :event_at, :reservation_ref, :listing_ref, :digest, :reason
        WHERE :state <> :rejected OR (SELECT count(*) FROM pipeline.stays_webhooks
                                      WHERE state = :rejected AND received_at > :at - interval '1 hour') < :cap
        ON CONFLICT (body_sha256) WHERE body_sha256 IS NOT NULL DO NOTHING
        RETURNING webhook_id
    """), {"at": received_at, "state": verdict.state, "action": verdict.action, "event_at": verdict.event_at,
           "reservation_ref": verdict.reservation_ref, "listing_ref": verdict.listing_ref,
           "digest": verdict.body_sha256, "reason": verdict.reason[:500], "rejected": WebhookState.REJECTED,
           "cap": REJECTED_ROWS_PER_HOUR}).scalar()
    return webhook_id, webhook_id is None and verdict.body_sha256 is not None


def pending(conn: Connection, limit: int = 200) -> list[StoredWebhook]:
    return [StoredWebhook(**row) for row in conn.execute(text("""
        SELECT webhook_id, received_at, action, event_at, reservation_ref, listing_ref
        FROM pipeline.stays_webhooks WHERE state = :pending ORDER BY webhook_id LIMIT :limit
    """), {"pending": WebhookState.PENDING, "limit": limit}).mappings()]


def claim(conn: Connection, webhook_ids: Sequence[int]) -> list[StoredWebhook]:
    """The given webhooks still pending, locked for this transaction (two runs never apply one twice)."""
    return [StoredWebhook(**row) for row in conn.execute(text("""
        SELECT webhook_id, received_at, action, event_at, reservation_ref, listing_ref
        FROM pipeline.stays_webhooks WHERE webhook_id = ANY(:ids) AND state = :pending
        ORDER BY webhook_id FOR UPDATE SKIP LOCKED
    """), {"ids": list(webhook_ids), "pending": WebhookState.PENDING}).mappings()]


def finish(conn: Connection, webhook_id: int, *, state: WebhookState, reason: str, now: datetime,
           run_id: str | None, reservation_id: str | None = None, error: str | None = None) -> None:
    conn.execute(text("""
        UPDATE pipeline.stays_webhooks SET state = :state, reason = :reason, applied_at = :now, run_id = :run,
            reservation_id = COALESCE(:reservation_id, reservation_id), last_error = :error
        WHERE webhook_id = :id
    """), {"state": state, "reason": reason[:500], "now": now, "run": run_id, "reservation_id": reservation_id,
           "error": error[:500] if error else None, "id": webhook_id})


def prune(conn: Connection, older_than: datetime) -> int:
    """Refused and finished webhooks are history: kept a while, then pruned (pending ones never)."""
    return conn.execute(text("DELETE FROM pipeline.stays_webhooks WHERE received_at < :cutoff AND state <> :pending"),
                        {"cutoff": older_than, "pending": WebhookState.PENDING}).rowcount
