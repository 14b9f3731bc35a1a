"""The locks the Tuya cloud reports (pipeline.locks), and the only module that writes them.

A lock is keyed by its Tuya device id and never deleted: a lock absent from Tuya's answer gets
``missing_since`` (the mapping's check reports a confirmed lock that vanished).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from lock_pipeline.tuya.client import TuyaDevice
from lock_pipeline.vocabulary import OfflineCodes

_RADIO_IN_PRODUCT_NAME = re.compile(r"\b(zigbee|bluetooth|ble|wi-?fi)\b", re.IGNORECASE)


def store_locks(conn: Connection, devices: Sequence[TuyaDevice], now: datetime) -> dict[str, int]:
    """Upsert the locks Tuya reported; a lock absent from the answer is flagged, never deleted."""
    known = {r.device_id: r.content_hash for r in conn.execute(text("SELECT device_id, content_hash FROM pipeline.locks"))}
    seen = set()
    written = 0
    for d in devices:
        seen.add(d.device_id)
        battery = d.battery
        digest = f"{d.name}|{d.category}|{d.product_name}|{d.online}|{battery.value if battery else ''}"
        if known.get(d.device_id) == digest:
            continue
        written += 1
        conn.execute(text("""
            INSERT INTO pipeline.locks (device_id, name, category, product_name, online, first_seen_at, last_seen_at,
                last_online_at, content_hash, battery, battery_kind, battery_percent, battery_reported_at)
            VALUES (:id, :name, :category, :product, :online, :now, :now, CASE WHEN :online THEN CAST(:now AS timestamptz) END,
                    :digest, :battery, :battery_kind, :battery_percent, CASE WHEN :has_battery THEN CAST(:now AS timestamptz) END)
            ON CONFLICT (device_id) DO UPDATE SET name = EXCLUDED.name, category = EXCLUDED.category,
                product_name = EXCLUDED.product_name, online = EXCLUDED.online, last_seen_at = EXCLUDED.last_seen_at,
                last_online_at = COALESCE(EXCLUDED.last_online_at, pipeline.locks.last_online_at),
                missing_since = NULL, content_hash = EXCLUDED.content_hash,
                battery = COALESCE(EXCLUDED.battery, pipeline.locks.battery),
                battery_kind = COALESCE(EXCLUDED.battery_kind, pipeline.locks.battery_kind),
                battery_percent = CASE WHEN EXCLUDED.battery IS NULL THEN pipeline.locks.battery_percent
                                       ELSE EXCLUDED.battery_percent END,
                battery_reported_at = COALESCE(EXCLUDED.battery_reported_at, pipeline.locks.battery_reported_at)
        """), {"id": d.device_id, "name": d.name, "category": d.category, "product": d.product_name,
               "online": d.online, "now": now, "digest": digest, "has_battery": battery is not None,
               "battery": battery.value if battery else None, "battery_kind": battery.kind if battery else None,
               "battery_percent": battery.percent if battery else None})
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


def offline_codes(conn: Connection, device_id: str) -> str:
    """Whether the lock supports offline codes, as far as the cloud has told us (OfflineCodes)."""
    value = conn.execute(text("SELECT offline_codes FROM pipeline.locks WHERE device_id = :d"), {"d": device_id}).scalar()
    return value or OfflineCodes.UNKNOWN


def record_offline_codes(conn: Connection, device_id: str, support: OfflineCodes, now: datetime) -> None:
    """What the cloud's answer to an offline-code request says of the lock's model."""
    conn.execute(text("UPDATE pipeline.locks SET offline_codes = :s, offline_codes_checked_at = :now WHERE device_id = :d"),
                 {"s": support, "now": now, "d": device_id})


def pin_length(conn: Connection, device_id: str, account_default: int) -> int:
    """How many digits the lock takes: its own length, else the account's (LOCK_PIPELINE_PIN_LENGTH)."""
    value = conn.execute(text("SELECT pin_length FROM pipeline.locks WHERE device_id = :d"), {"d": device_id}).scalar()
    return int(value) if value is not None else account_default


# ------------------------------------------------------------------ a lock's own settings

@dataclass(frozen=True)
class LockRow:
    device_id: str
    name: str
    category: str
    product_name: str
    pin_length: int | None        # the lock's own; None: the account setting
    pin_length_asked: int | None  # what its cloud asked for when it last refused a PIN for its length
    pin_length_asked_at: datetime | None


def lock_row(conn: Connection, device_id: str, *, for_update: bool = False) -> LockRow | None:
    """The lock's row; locked until the caller's transaction ends when ``for_update`` (two admins cannot race)."""
    row = conn.execute(text(f"""
        SELECT device_id, name, category, product_name, pin_length, pin_length_asked, pin_length_asked_at
        FROM pipeline.locks WHERE device_id = :d{' FOR UPDATE' if for_update else ''}
    """), {"d": device_id}).mappings().one_or_none()
    return LockRow(**row) if row else None


def set_pin_length(conn: Connection, device_id: str, length: int | None) -> None:
    """The lock's own PIN length (None: the account setting); the next new PIN on it has this many digits."""
    conn.execute(text("UPDATE pipeline.locks SET pin_length = :n WHERE device_id = :d"), {"n": length, "d": device_id})


def record_pin_length_asked(conn: Connection, device_id: str, length: int, now: datetime) -> None:
    """The lock's cloud refused a PIN for its length and named the length it takes (admin.attention)."""
    conn.execute(text("UPDATE pipeline.locks SET pin_length_asked = :n, pin_length_asked_at = :now WHERE device_id = :d"),
                 {"n": length, "now": now, "d": device_id})


def clear_pin_length_asked(conn: Connection, device_id: str) -> None:
    """The lock took a PIN: whatever it asked for before is answered."""
    conn.execute(text("UPDATE pipeline.locks SET pin_length_asked = NULL, pin_length_asked_at = NULL "
                      "WHERE device_id = :d AND pin_length_asked IS NOT NULL"), {"d": device_id})


def pin_length_hint(lock: LockRow) -> tuple[int, str] | None:
    """What the lock's product name says of its PIN length, if anything: Tuya's docs give Wi-Fi locks 7
    digits and Zigbee and Bluetooth locks 6. Tuya's category (``ms``, ``jtmspro``, ...) does not tell the
    radio, so this is a hint to show a person, never a rule."""
    match = _RADIO_IN_PRODUCT_NAME.search(lock.product_name or "")
    if match is None:
        return None
    radio = match.group(1).lower()
    return (7, "Wi-Fi") if radio.startswith("wi") else (6, "Zigbee" if radio == "zigbee" else "Bluetooth")
