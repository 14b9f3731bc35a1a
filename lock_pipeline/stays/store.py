"""The Stays tables in Postgres, and the only module that writes them.

pipeline.listings, pipeline.reservations, pipeline.reconciliation_logs and
pipeline.quarantined_records. The reconciliation rules (what a feed means for the rows) live in
:mod:`lock_pipeline.stays.sync`; this module only reads and writes rows, fast: new reservations
are COPYed straight into the table, changed ones go through a temp table and one upsert.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cached_property
from typing import TYPE_CHECKING, TextIO

from psycopg2.extras import execute_values
from sqlalchemy import Connection, Engine, bindparam, text

from lock_pipeline.stays.records import ListingRecord, ReservationRecord

if TYPE_CHECKING:
    from lock_pipeline.stays.sync import SyncResult, SyncWindow

log = logging.getLogger(__name__)

_SYNC_LOCK_KEY = 0x53594E43  # "SYNC": one reservation write at a time, whoever started it
RESERVATION_COLUMNS = (
    "reservation_id", "code", "listing_id", "stays_type", "kind", "status", "check_in_date", "check_in_time",
    "check_out_date", "check_out_time", "time_zone", "check_in_at", "check_out_at", "guest_first_name",
    "content_hash", "source_fingerprint", "first_seen_at", "last_seen_at", "updated_at", "cancelled_at",
    "missing_since",
)
# Also what the operator writes on a reservation: with write-back on, appCustomFields holds the door code.
_PERSONAL_FIELDS = frozenset({"guestsDetails", "_idclient", "price", "stats", "appCustomFields", "internalNote"})


# ---------------------------------------------------------------- row shapes

@dataclass(frozen=True)
class ListingDefaults:
    """What a listing's stays need to become instants: its zone and default times."""

    time_zone: str
    check_in: time
    check_out: time

    @cached_property
    def fingerprint_salt(self) -> str:
        """What a stay's row depends on besides its own record."""
        return f"{self.time_zone}|{self.check_in}|{self.check_out}"


@dataclass(frozen=True)
class PreparedReservation:
    """A valid record turned into the row it will be: instants in the listing's zone, a row hash."""

    record: ReservationRecord
    time_zone: str
    check_in_at: datetime
    check_out_at: datetime
    row_hash: str
    fingerprint: str | None = None

    @property
    def status(self) -> str:
        if self.record.cancelled:
            return "cancelled"
        return "blocked" if self.record.kind == "block" else "confirmed"


@dataclass(frozen=True)
class ExistingReservation:
    row_hash: str
    status: str
    missing_since: datetime | None
    fingerprint: str | None = None


@dataclass
class Quarantined:
    entity: str
    record_id: str | None
    reason: str
    payload: object


# ---------------------------------------------------------------- listings

def listing_defaults(conn: Connection, account: ListingDefaults) -> dict[str, ListingDefaults]:
    """Each listing's effective zone and default times: its own (an override), else the account's."""
    rows = conn.execute(text(
        "SELECT listing_id, time_zone, default_check_in_time, default_check_out_time FROM pipeline.listings"
    )).all()
    return {r.listing_id: ListingDefaults(
        account.time_zone if r.time_zone is None else r.time_zone,
        account.check_in if r.default_check_in_time is None else r.default_check_in_time,
        account.check_out if r.default_check_out_time is None else r.default_check_out_time,
    ) for r in rows}


# A listing's own settings (NULL: it follows the account setting), by the names people use for them
# (vocabulary.OverrideSetting) -> the column that holds each. Written only by set_listing_overrides.
LISTING_OVERRIDE_COLUMNS = {
    "time_zone": "time_zone",
    "check_in_time": "default_check_in_time",
    "check_out_time": "default_check_out_time",
    "lead_minutes": "access_lead_minutes",
    "grace_minutes": "access_grace_minutes",
}


def listing_overrides(conn: Connection, listing_id: str, *, for_update: bool = False) -> dict[str, object]:
    """The listing's own settings by name (None: follows the account setting); locked until the caller's
    transaction ends when ``for_update`` (two admins cannot race)."""
    columns = ", ".join(f"{column} AS {name}" for name, column in LISTING_OVERRIDE_COLUMNS.items())
    row = conn.execute(text(f"SELECT {columns} FROM pipeline.listings WHERE listing_id = :l"
                            f"{' FOR UPDATE' if for_update else ''}"), {"l": listing_id}).mappings().one()
    return dict(row)


def set_listing_overrides(conn: Connection, listing_id: str, values: Mapping[str, object]) -> None:
    """Write the listing's own settings (None: follow the account setting again)."""
    if values:
        assignments = ", ".join(f"{LISTING_OVERRIDE_COLUMNS[name]} = :{name}" for name in values)
        conn.execute(text(f"UPDATE pipeline.listings SET {assignments} WHERE listing_id = :listing_id"),
                     {**values, "listing_id": listing_id})


def upsert_listings(conn: Connection, listings: Sequence[ListingRecord], now: datetime) -> int:
    """Insert new listings and update changed ones; return how many were written.

    The per-listing settings (zone, default times, access lead and grace) are never written here: a
    new listing has none of its own (NULL: it follows the account settings) and they belong to the
    operator (lock-pipeline listing set).
    """
    if not listings:
        return 0
    known = dict(conn.execute(text("SELECT listing_id, content_hash FROM pipeline.listings")).all())
    changed = [listing for listing in listings if known.get(listing.listing_id) != listing_hash(listing)]
    if changed:
        rows = [(l.listing_id, l.short_code, l.internal_name, l.title, l.address, l.city, l.status,
                 listing_hash(l), now, now, now)
                for l in changed]
        with conn.connection.dbapi_connection.cursor() as cursor:
            execute_values(cursor, """
                INSERT INTO pipeline.listings (listing_id, short_code, internal_name, title, address, city, status,
                    content_hash, first_seen_at, last_seen_at, updated_at)
                VALUES %s
                ON CONFLICT (listing_id) DO UPDATE SET
                    short_code = EXCLUDED.short_code, internal_name = EXCLUDED.internal_name,
                    title = EXCLUDED.title, address = EXCLUDED.address, city = EXCLUDED.city,
                    status = EXCLUDED.status, content_hash = EXCLUDED.content_hash,
                    last_seen_at = EXCLUDED.last_seen_at, updated_at = EXCLUDED.updated_at
            """, rows, page_size=1000)
    return len(changed)


def listing_hash(listing: ListingRecord) -> str:
    return hashlib.sha256("|".join((
        listing.short_code, listing.internal_name, listing.title, listing.address, listing.city, listing.status,
    )).encode()).hexdigest()


# ---------------------------------------------------------------- reservations

@contextmanager
def sync_lock(engine: Engine) -> Iterator[Connection]:
    """One writer of reservations at a time: hold the sync lock from reading the rows to the commit."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _SYNC_LOCK_KEY})
        try:
            yield conn
        finally:
            _release_sync_lock(conn)


def existing_in_window(conn: Connection, window: SyncWindow) -> dict[str, ExistingReservation]:
    if window.date_type == "arrival":
        condition = "check_in_date BETWEEN :from_date AND :to_date"
    else:
        condition = "check_in_date <= :to_date AND check_out_date >= :from_date"
    rows = conn.execute(
        text("SELECT reservation_id, content_hash, status, missing_since, source_fingerprint "
             f"FROM pipeline.reservations WHERE {condition}"),
        {"from_date": window.from_date, "to_date": window.to_date},
    ).all()
    return {r[0]: ExistingReservation(r[1], r[2], r[3], r[4]) for r in rows}


def existing_by_ids(conn: Connection, reservation_ids: Sequence[str]) -> dict[str, ExistingReservation]:
    if not reservation_ids:
        return {}
    rows = conn.execute(text("SELECT reservation_id, content_hash, status, missing_since, source_fingerprint "
                             "FROM pipeline.reservations WHERE reservation_id = ANY(:ids)"),
                        {"ids": list(reservation_ids)}).all()
    return {r[0]: ExistingReservation(r[1], r[2], r[3], r[4]) for r in rows}


def find_stay_by_code(conn: Connection, reservation_code: str) -> str | None:
    """A stay's Stays _id from its short code (what people type) or from the _id itself."""
    rows = conn.execute(text(
        "SELECT reservation_id FROM pipeline.reservations WHERE upper(code) = upper(:c) OR reservation_id = :c"
    ), {"c": reservation_code.strip()}).scalars().all()
    return rows[0] if len(rows) == 1 else None


def reservation_copy_line(out: TextIO, item: PreparedReservation, now_text: str) -> None:
    """One row of COPY text in RESERVATION_COLUMNS order; only the free-text fields from Stays can need escaping."""
    r = item.record
    out.write("\t".join((
        _copy_text(r.reservation_id), _copy_text(r.code), _copy_text(r.listing_id), r.stays_type, r.kind,
        item.status, r.check_in_date.isoformat(), _copy_time(r.check_in_time), r.check_out_date.isoformat(),
        _copy_time(r.check_out_time), _copy_text(item.time_zone), item.check_in_at.isoformat(),
        item.check_out_at.isoformat(), _copy_text(r.guest_first_name), item.row_hash,
        item.fingerprint or _COPY_NULL, now_text, now_text, now_text,
        now_text if item.status == "cancelled" else _COPY_NULL, _COPY_NULL,
    )))
    out.write("\n")


def write_reservations(conn: Connection, *, new_rows: io.StringIO | None, changed_rows: io.StringIO | None,
                       fingerprint_refresh: Mapping[str, str]) -> None:
    """New rows are COPYed straight in; changed rows go through a temp table and one upsert."""
    columns = ", ".join(RESERVATION_COLUMNS)
    raw = conn.connection.dbapi_connection
    if new_rows is not None:
        new_rows.seek(0)
        with raw.cursor() as cursor:
            cursor.copy_expert(f"COPY pipeline.reservations ({columns}) FROM STDIN", new_rows, size=1 << 20)
    if changed_rows is not None:
        conn.execute(text(
            "CREATE TEMP TABLE incoming_reservations (LIKE pipeline.reservations INCLUDING DEFAULTS) ON COMMIT DROP"
        ))
        changed_rows.seek(0)
        with raw.cursor() as cursor:
            cursor.copy_expert(f"COPY incoming_reservations ({columns}) FROM STDIN", changed_rows, size=1 << 20)
        conn.execute(text(f"""
            INSERT INTO pipeline.reservations AS r ({columns})
            SELECT {columns} FROM incoming_reservations
            ON CONFLICT (reservation_id) DO UPDATE SET
                code = EXCLUDED.code, listing_id = EXCLUDED.listing_id, stays_type = EXCLUDED.stays_type,
                kind = EXCLUDED.kind, status = EXCLUDED.status,
                check_in_date = EXCLUDED.check_in_date, check_in_time = EXCLUDED.check_in_time,
                check_out_date = EXCLUDED.check_out_date, check_out_time = EXCLUDED.check_out_time,
                time_zone = EXCLUDED.time_zone, check_in_at = EXCLUDED.check_in_at,
                check_out_at = EXCLUDED.check_out_at, guest_first_name = EXCLUDED.guest_first_name,
                content_hash = EXCLUDED.content_hash, source_fingerprint = EXCLUDED.source_fingerprint,
                last_seen_at = EXCLUDED.last_seen_at, updated_at = EXCLUDED.updated_at, missing_since = NULL,
                cancelled_at = CASE WHEN EXCLUDED.status = 'cancelled' THEN coalesce(r.cancelled_at, EXCLUDED.cancelled_at) END
        """))
    if fingerprint_refresh:
        conn.execute(text("""
            UPDATE pipeline.reservations r SET source_fingerprint = f.fingerprint
            FROM unnest(CAST(:ids AS text[]), CAST(:fingerprints AS text[])) AS f(reservation_id, fingerprint)
            WHERE r.reservation_id = f.reservation_id
        """), {"ids": list(fingerprint_refresh), "fingerprints": list(fingerprint_refresh.values())})


def flag_missing(conn: Connection, reservation_ids: Sequence[str], now: datetime) -> None:
    """Stays the feed left out: flagged, never deleted (the PIN life cycle waits out a tolerance)."""
    if reservation_ids:
        conn.execute(
            text("UPDATE pipeline.reservations SET missing_since = :now "
                 "WHERE reservation_id IN :ids AND missing_since IS NULL").bindparams(bindparam("ids", expanding=True)),
            {"now": now, "ids": list(reservation_ids)},
        )


# ---------------------------------------------------------------- quarantine

def store_quarantine(conn: Connection, quarantine: Sequence[Quarantined], sync_id: int | None, now: datetime) -> None:
    """Keep each unusable record once, with its reason and without the guest's contact data."""
    if not quarantine:
        return
    rows = []
    for q in quarantine:
        payload = json.dumps(strip_personal_data(q.payload), default=str, ensure_ascii=False)
        rows.append({
            "entity": q.entity, "record_id": q.record_id, "reason": q.reason[:1000], "payload": payload,
            "payload_hash": hashlib.sha256(f"{q.reason}|{payload}".encode()).hexdigest(),
            "sync_id": sync_id, "now": now,
        })
    conn.execute(text("""
        INSERT INTO pipeline.quarantined_records
            (entity, record_id, reason, payload, payload_hash, first_sync_id, first_seen_at, last_seen_at)
        VALUES (:entity, :record_id, :reason, CAST(:payload AS jsonb), :payload_hash, :sync_id, :now, :now)
        ON CONFLICT (entity, payload_hash) DO NOTHING
    """), rows)


def strip_personal_data(payload: object) -> object:
    """Keep a quarantined record useful for diagnosis without the guest's contact data (LGPD)."""
    if not isinstance(payload, dict):
        return payload if isinstance(payload, (list, str, int, float, bool, type(None))) else repr(payload)[:2000]
    cleaned = {k: v for k, v in payload.items() if k not in _PERSONAL_FIELDS}
    guests = payload.get("guestsDetails")
    if isinstance(guests, dict):
        cleaned["guestsDetails"] = {"list_length": len(guests.get("list") or []) if isinstance(guests.get("list"), list) else None}
    return cleaned


# ---------------------------------------------------------------- the sync log

def open_sync_log(engine: Engine, *, window_from: date | None, window_to: date | None, date_type: str,
                  run_id: str | None, now: datetime) -> int:
    with engine.begin() as conn:
        return int(conn.execute(text("""
            INSERT INTO pipeline.reconciliation_logs (run_id, window_from, window_to, date_type, started_at, status)
            VALUES (:run_id, :from_date, :to_date, :date_type, :now, 'running') RETURNING sync_id
        """), {"run_id": run_id, "from_date": window_from, "to_date": window_to, "date_type": date_type,
               "now": now}).scalar_one())


def close_sync_log(engine: Engine, sync_id: int, *, now: datetime, duration_ms: int, status: str,
                   message: str | None, errors: int = 0, result: SyncResult | None = None) -> None:
    figures = {"fetched": 0, "created": 0, "updated": 0, "unchanged": 0, "cancelled": 0, "missing": 0,
               "quarantined": 0, "errors": errors}
    if result is not None:
        figures.update({key: getattr(result, key) for key in figures})
    with engine.begin() as conn:
        conn.execute(text("""
            UPDATE pipeline.reconciliation_logs SET completed_at = :now, duration_ms = :duration,
                fetched = :fetched, created = :created, updated = :updated, unchanged = :unchanged,
                cancelled = :cancelled, missing = :missing, quarantined = :quarantined,
                errors = :errors, status = :status, message = :message, feed_suspect = :suspect
            WHERE sync_id = :sync_id
        """), {**figures, "now": now, "duration": duration_ms, "status": status, "message": message,
               "sync_id": sync_id, "suspect": result.feed_suspect if result is not None else None})


def last_sync_started(conn: Connection, date_type: str) -> datetime | None:
    """When the last sync of this kind that Stays answered started (a failed one read nothing)."""
    return conn.execute(text("SELECT max(started_at) FROM pipeline.reconciliation_logs "
                             "WHERE date_type = :t AND status IN ('success', 'partial')"), {"t": date_type}).scalar()


def prune_sync_logs(conn: Connection, older_than: datetime) -> int:
    """Old log rows go, except those a quarantined record still points at."""
    return conn.execute(text(
        "DELETE FROM pipeline.reconciliation_logs WHERE started_at < :cutoff "
        "AND sync_id NOT IN (SELECT first_sync_id FROM pipeline.quarantined_records WHERE first_sync_id IS NOT NULL)"
    ), {"cutoff": older_than}).rowcount


def recent_syncs(conn: Connection, limit: int = 10) -> list[dict]:
    return [dict(row) for row in conn.execute(text(
        "SELECT sync_id, started_at, status, fetched, created, updated, cancelled, missing, quarantined, message "
        "FROM pipeline.reconciliation_logs ORDER BY started_at DESC LIMIT :limit"
    ), {"limit": limit}).mappings()]


def syncs_by_status(conn: Connection) -> dict[str, int]:
    return dict(conn.execute(text("SELECT status, count(*) FROM pipeline.reconciliation_logs GROUP BY status")).all())


# ---------------------------------------------------------------- helpers

def _release_sync_lock(conn: Connection) -> None:
    """Unlock; a connection that cannot is dropped from the pool, and its lock with it."""
    try:
        conn.rollback()
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _SYNC_LOCK_KEY})
        conn.commit()
    except Exception:  # noqa: BLE001 - the database went away; the server freed the lock with the session
        log.warning("could not release the sync lock cleanly; discarding the connection", exc_info=True)
        conn.invalidate()


_COPY_NULL = "\\N"
_COPY_SPECIALS = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _copy_text(value: str | None) -> str:
    """A text-format COPY field: NULL as \\N; backslash, tab and line breaks escaped."""
    if value is None:
        return _COPY_NULL
    if _COPY_SPECIALS.search(value) is None:
        return value
    return _COPY_SPECIALS.sub(lambda match: _COPY_ESCAPES[match.group()], value)


def _copy_time(value: time | None) -> str:
    return _COPY_NULL if value is None else value.isoformat()

