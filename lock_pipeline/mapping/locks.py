"""The locks the Tuya cloud reports (pipeline.locks), and the only module that writes them.

A lock is keyed by its Tuya device id and never deleted: a lock absent from Tuya's answer gets
``missing_since`` (the mapping's check reports a confirmed lock that vanished).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, text

from lock_pipeline.tuya.client import TuyaDevice


def store_locks(conn: Connection, devices: Sequence[TuyaDevice], now: datetime) -> dict[str, int]:
    """Upsert the locks Tuya reported; a lock absent from the answer is flagged, never deleted."""
    known = {r.device_id: r.content_hash for r in conn.execute(text("SELECT device_id, content_hash FROM pipeline.locks"))}
    seen = set()
    written = 0
    for d in devices:
        seen.add(d.device_id)
        digest = f"{d.name}|{d.category}|{d.product_name}|{d.online}"
        if known.get(d.device_id) == digest:
            continue
        written += 1
        conn.execute(text("""
            INSERT INTO pipeline.locks (device_id, name, category, product_name, online, first_seen_at, last_seen_at,
                last_online_at, content_hash)
            VALUES (:id, :name, :category, :product, :online, :now, :now, CASE WHEN :online THEN CAST(:now AS timestamptz) END, :digest)
            ON CONFLICT (device_id) DO UPDATE SET name = EXCLUDED.name, category = EXCLUDED.category,
                product_name = EXCLUDED.product_name, online = EXCLUDED.online, last_seen_at = EXCLUDED.last_seen_at,
                last_online_at = COALESCE(EXCLUDED.last_online_at, pipeline.locks.last_online_at),
                missing_since = NULL, content_hash = EXCLUDED.content_hash
        """), {"id": d.device_id, "name": d.name, "category": d.category, "product": d.product_name,
               "online": d.online, "now": now, "digest": digest})
    vanished = [device for device in known if device not in seen]
    if vanished and devices:
        conn.execute(text(
            "UPDATE pipeline.locks SET missing_since = :now, content_hash = '' WHERE device_id = ANY(:ids) AND missing_since IS NULL"
        ), {"now": now, "ids": vanished})
    return {"reported": len(devices), "written": written, "missing": len(vanished) if devices else 0}


def present_locks(conn: Connection) -> list[tuple[str, str]]:
    """(device id, name) of every lock Tuya still reports, for the matcher."""
    return [(r.device_id, r.name) for r in conn.execute(text(
        "SELECT device_id, name FROM pipeline.locks WHERE missing_since IS NULL ORDER BY device_id"))]


def is_known(conn: Connection, device_id: str) -> bool:
    return bool(conn.execute(text("SELECT 1 FROM pipeline.locks WHERE device_id = :d"), {"d": device_id}).scalar())


def pin_length(conn: Connection, device_id: str, account_default: int) -> int:
    """How many digits the lock takes: its own length, else the account's (LOCK_PIPELINE_PIN_LENGTH)."""
    value = conn.execute(text("SELECT pin_length FROM pipeline.locks WHERE device_id = :d"), {"d": device_id}).scalar()
    return int(value) if value is not None else account_default
