"""Reading the admin views (sql/views/) from Python, for the operator's commands."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, text


def reconciliation_status(conn: Connection) -> dict | None:
    """The last sync, its figures, and when the schedule runs next (admin.reconciliation_status)."""
    row = conn.execute(text("SELECT * FROM admin.reconciliation_status")).mappings().one_or_none()
    return dict(row) if row else None


def attention(conn: Connection) -> list[dict]:
    """What a person must act on, most urgent first (admin.attention)."""
    return [dict(row) for row in conn.execute(text("SELECT * FROM admin.attention")).mappings()]


def listing_settings(conn: Connection, listing_id: str) -> dict | None:
    """A listing's effective settings and where each comes from (admin.listings)."""
    row = conn.execute(text("SELECT * FROM admin.listings WHERE listing_id = :l"), {"l": listing_id}).mappings().one_or_none()
    return dict(row) if row else None


def lock(conn: Connection, device_id: str) -> dict | None:
    """A lock, its PIN length and where that comes from, and its listing (admin.locks)."""
    row = conn.execute(text("SELECT * FROM admin.locks WHERE lock_id = :d"), {"d": device_id}).mappings().one_or_none()
    return dict(row) if row else None


def day_board(conn: Connection, now: datetime) -> list[dict]:
    """Today's and tomorrow's arrivals and departures as of ``now`` (admin.day_board, on the pipeline's
    clock: the view's "now" is moved for this transaction only)."""
    conn.execute(text("SELECT set_config('lock_pipeline.now', :now, true)"), {"now": now.isoformat()})
    return [dict(row) for row in conn.execute(text("SELECT * FROM admin.day_board")).mappings()]
