"""Stays -> Postgres reconciliation: fetch, validate per record, write only what changed.

Rules that protect guests (design invariants 5 and "nothing lost"):
- a failed fetch changes nothing but the log row;
- a malformed record is quarantined with its reason, the rest of the batch is stored;
- nothing is ever deleted; a cancellation is a status; a stay absent from the feed is only
  flagged ``missing_since`` (the PIN life cycle waits out a tolerance before acting), and an
  empty or collapsed feed flags nothing at all;
- a rerun with nothing changed writes no listing or reservation row.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time as monotonic_time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Protocol

from sqlalchemy import Connection, Engine, bindparam, text

from lock_pipeline.stays.local_time import local_instant
from lock_pipeline.stays.records import (
    InvalidRecord,
    ListingRecord,
    ReservationRecord,
    parse_listing,
    parse_reservation,
)

log = logging.getLogger(__name__)

# Below this many expected stays a shrinking feed is plausible (a quiet listing), above it a
# feed that lost more than this share of the stays we hold is treated as a broken feed.
_COLLAPSE_MIN_EXPECTED = 10
_COLLAPSE_SHARE = 0.5
_MAX_INDIVIDUAL_LOOKUPS = 50


class StaysSource(Protocol):
    def list_listings(self, status: str | None = None) -> list[object]: ...
    def list_reservations(self, from_date: date, to_date: date, *, date_type: str = ...) -> list[object]: ...
    def get_reservation(self, id_or_code: str) -> object: ...


@dataclass(frozen=True)
class SyncWindow:
    from_date: date
    to_date: date
    date_type: str = "arrival"  # "arrival" (partitions) or "included" (stays overlapping the window)

    def __post_init__(self) -> None:
        if self.to_date < self.from_date:
            raise ValueError(f"sync window ends ({self.to_date}) before it starts ({self.from_date})")
        if self.date_type not in {"arrival", "included"}:
            raise ValueError(f"unsupported date_type {self.date_type!r}")


@dataclass(frozen=True)
class ListingDefaults:
    time_zone: str
    check_in: time
    check_out: time


@dataclass(frozen=True)
class PreparedReservation:
    record: ReservationRecord
    time_zone: str
    check_in_at: datetime
    check_out_at: datetime
    row_hash: str

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


@dataclass
class Quarantined:
    entity: str
    record_id: str | None
    reason: str
    payload: object


@dataclass
class ReservationPlan:
    to_write: list[PreparedReservation] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    unchanged: int = 0
    missing_candidates: list[str] = field(default_factory=list)


@dataclass
class SyncResult:
    sync_id: int
    status: str
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    cancelled: int = 0
    missing: int = 0
    quarantined: int = 0
    errors: int = 0
    message: str = ""
    duration_ms: int = 0
    fetch_seconds: float = 0.0
    write_seconds: float = 0.0
    changed_codes: list[str] = field(default_factory=list)
    quarantine_reasons: list[str] = field(default_factory=list)


@dataclass
class ListingSyncResult:
    fetched: int
    written: int
    quarantined: int
    quarantine_reasons: list[str]


class StaysFetchFailed(RuntimeError):
    """Stays could not be read; the sync changed nothing but its log row."""

    def __init__(self, message: str, sync_id: int | None) -> None:
        super().__init__(message)
        self.sync_id = sync_id


# ---------------------------------------------------------------- pure steps

def prepare_reservation(record: ReservationRecord, defaults: ListingDefaults) -> PreparedReservation:
    """Turn Stays' offset-less local dates into instants in the listing's own zone."""
    check_in_at = local_instant(record.check_in_date, record.check_in_time or defaults.check_in, defaults.time_zone)
    check_out_at = local_instant(record.check_out_date, record.check_out_time or defaults.check_out, defaults.time_zone)
    if check_out_at < check_in_at:
        raise InvalidRecord(record.reservation_id, f"check-out {check_out_at.isoformat()} is before check-in {check_in_at.isoformat()}")
    row_hash = hashlib.sha256(
        f"{record.content_hash}|{defaults.time_zone}|{defaults.check_in}|{defaults.check_out}".encode()
    ).hexdigest()
    return PreparedReservation(record, defaults.time_zone, check_in_at, check_out_at, row_hash)


def plan_reservations(existing: Mapping[str, ExistingReservation], incoming: Iterable[PreparedReservation]) -> ReservationPlan:
    """Decide what to write: new rows, changed rows, and which known stays the feed left out."""
    plan = ReservationPlan()
    seen: set[str] = set()
    for item in incoming:
        rid = item.record.reservation_id
        seen.add(rid)
        before = existing.get(rid)
        if before is None:
            plan.created.append(rid)
        elif before.row_hash != item.row_hash or before.missing_since is not None:
            plan.updated.append(rid)
        else:
            plan.unchanged += 1
            continue
        if item.status == "cancelled" and (before is None or before.status != "cancelled"):
            plan.cancelled.append(rid)
        plan.to_write.append(item)
    plan.missing_candidates = sorted(
        rid for rid, row in existing.items() if rid not in seen and row.missing_since is None and row.status != "cancelled"
    )
    return plan


def feed_looks_broken(expected: int, received: int, missing: int) -> str | None:
    """Why a feed must not be trusted to flag stays as missing, or None when it can be."""
    if expected > 0 and received == 0:
        return f"empty feed while {expected} stays are expected in the window"
    if expected >= _COLLAPSE_MIN_EXPECTED and missing > expected * _COLLAPSE_SHARE:
        return f"feed left out {missing} of {expected} known stays"
    return None


def strip_personal_data(payload: object) -> object:
    """Keep a quarantined record useful for diagnosis without the guest's contact data (LGPD)."""
    if not isinstance(payload, dict):
        return payload if isinstance(payload, (list, str, int, float, bool, type(None))) else repr(payload)[:2000]
    cleaned = {k: v for k, v in payload.items() if k not in {"guestsDetails", "_idclient", "price", "stats"}}
    guests = payload.get("guestsDetails")
    if isinstance(guests, dict):
        cleaned["guestsDetails"] = {"list_length": len(guests.get("list") or []) if isinstance(guests.get("list"), list) else None}
    return cleaned


# ---------------------------------------------------------------- the sync

class StaysSync:
    """One reconciliation of a window of Stays into Postgres."""

    def __init__(self, engine: Engine, source: StaysSource, *, now: Callable[[], datetime],
                 default_time_zone: str, default_check_in: time, default_check_out: time,
                 run_id: str | None = None, progress: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.source = source
        self.now = now
        self.defaults = ListingDefaults(default_time_zone, default_check_in, default_check_out)
        self.run_id = run_id
        self.progress = progress or (lambda message: log.info(message))

    def sync_listings(self) -> ListingSyncResult:
        """Upsert every listing Stays returns; a listing absent from the feed is never touched."""
        try:
            raw_listings = self.source.list_listings()
        except Exception as error:  # noqa: BLE001 - any failure to read Stays is an outage here
            message = f"Stays listings fetch failed, nothing changed: {error}"
            sync_id = self._open_log(None)
            self._close_log(sync_id, monotonic_time.monotonic(), status="failed", message=message, errors=1)
            raise StaysFetchFailed(message, sync_id) from error
        self.progress(f"fetched {len(raw_listings)} listings from Stays")
        quarantine: list[Quarantined] = []
        listings = self._valid_listings(raw_listings, quarantine)
        now = self.now()
        with self.engine.begin() as conn:
            written = self._upsert_listings(conn, listings, now)
            self._store_quarantine(conn, quarantine, None, now)
        return ListingSyncResult(
            fetched=len(raw_listings), written=written, quarantined=len(quarantine),
            quarantine_reasons=[f"listing {q.record_id or '?'}: {q.reason}" for q in quarantine[:20]],
        )

    def sync_reservations(self, window: SyncWindow) -> SyncResult:
        """Reconcile one window of reservations; always leaves one reconciliation_logs row."""
        started = monotonic_time.monotonic()
        sync_id = self._open_log(window)
        result = SyncResult(sync_id=sync_id, status="running")
        try:
            fetch_started = monotonic_time.monotonic()
            raw_reservations = self.source.list_reservations(window.from_date, window.to_date, date_type=window.date_type)
            result.fetch_seconds = monotonic_time.monotonic() - fetch_started
            self.progress(f"fetched {len(raw_reservations)} reservations for {window.from_date}..{window.to_date} ({window.date_type})")
        except Exception as error:  # noqa: BLE001 - any failure to read Stays is an outage here
            message = f"Stays fetch failed, nothing changed: {error}"
            self._close_log(sync_id, started, status="failed", message=message, errors=1)
            raise StaysFetchFailed(message, sync_id) from error

        write_started = monotonic_time.monotonic()
        try:
            with self.engine.begin() as conn:
                self._reconcile(conn, window, raw_reservations, result)
        except Exception as error:
            message = f"writing the sync to Postgres failed, nothing changed: {error}"
            self._close_log(sync_id, started, status="failed", message=message, errors=1)
            raise
        result.write_seconds = monotonic_time.monotonic() - write_started
        result.status = "partial" if (result.quarantined or result.errors or result.message) else "success"
        result.duration_ms = int((monotonic_time.monotonic() - started) * 1000)
        self._close_log(sync_id, started, status=result.status, message=result.message or None, result=result)
        return result

    # -------------------------------------------------------- reconciliation

    def _reconcile(self, conn: Connection, window: SyncWindow, raw_reservations: Sequence[object],
                   result: SyncResult) -> None:
        now = self.now()
        quarantine: list[Quarantined] = []
        defaults = self._listing_defaults(conn)

        incoming: dict[str, PreparedReservation] = {}
        unusable: set[str] = set()  # in the feed but malformed: present, so never flagged missing
        for raw in raw_reservations:
            try:
                record = parse_reservation(raw)
                if record.listing_id not in defaults:
                    raise InvalidRecord(record.reservation_id, f"_idlisting {record.listing_id!r} is not a known listing")
                if record.reservation_id in incoming:
                    raise InvalidRecord(record.reservation_id, f"duplicate _id {record.reservation_id!r} in the feed (first copy kept)")
                incoming[record.reservation_id] = prepare_reservation(record, defaults[record.listing_id])
            except InvalidRecord as bad:
                quarantine.append(Quarantined("reservation", bad.record_id, bad.reason, raw))
                if _raw_id(raw):
                    unusable.add(_raw_id(raw))
        result.fetched = len(raw_reservations)

        existing = self._existing_in_window(conn, window)
        plan = plan_reservations(existing, incoming.values())
        plan.missing_candidates = [rid for rid in plan.missing_candidates if rid not in unusable]
        broken = feed_looks_broken(len(existing), len(incoming), len(plan.missing_candidates))
        missing: list[str] = []
        if broken:
            result.message = f"{broken}: no stay flagged missing"
            self.progress(result.message)
        else:
            missing = self._confirm_missing(plan, defaults, quarantine, existing)

        self._write_reservations(conn, plan.to_write, now)
        if missing:
            conn.execute(
                text("UPDATE pipeline.reservations SET missing_since = :now WHERE reservation_id IN :ids AND missing_since IS NULL")
                .bindparams(bindparam("ids", expanding=True)),
                {"now": now, "ids": missing},
            )
        self._store_quarantine(conn, quarantine, result.sync_id, now)

        result.created, result.updated = len(plan.created), len(plan.updated)
        result.cancelled, result.unchanged, result.missing = len(plan.cancelled), plan.unchanged, len(missing)
        result.quarantined = len(quarantine)
        result.quarantine_reasons = [f"{q.entity} {q.record_id or '?'}: {q.reason}" for q in quarantine[:20]]
        result.changed_codes = [item.record.code for item in plan.to_write[:50]]
        self.progress(
            f"reservations: {result.created} new, {result.updated} changed, {result.cancelled} cancelled, "
            f"{result.unchanged} unchanged, {result.missing} missing, {result.quarantined} quarantined"
        )

    def _confirm_missing(self, plan: ReservationPlan, defaults: Mapping[str, ListingDefaults],
                         quarantine: list[Quarantined], existing: Mapping[str, ExistingReservation]) -> list[str]:
        """Ask Stays about each stay the feed left out: moved out of the window, or really gone?"""
        missing: list[str] = []
        for position, rid in enumerate(plan.missing_candidates):
            if position >= _MAX_INDIVIDUAL_LOOKUPS:
                missing.extend(plan.missing_candidates[position:])
                break
            try:
                raw = self.source.get_reservation(rid)
            except Exception:  # noqa: BLE001 - not found or unreachable: flag it, flagging is harmless
                missing.append(rid)
                continue
            try:
                record = parse_reservation(raw)
                if record.reservation_id != rid or record.listing_id not in defaults:
                    raise InvalidRecord(rid, "lookup by _id returned a different or unknown stay")
                prepared = prepare_reservation(record, defaults[record.listing_id])
            except InvalidRecord as bad:
                quarantine.append(Quarantined("reservation", bad.record_id, bad.reason, raw))
                if _raw_id(raw) != rid:  # Stays answered with another stay: this one is absent
                    missing.append(rid)
                continue  # present but malformed: quarantined, never flagged missing (its PIN must not go)
            before = existing[rid]
            if prepared.row_hash != before.row_hash:
                plan.updated.append(rid)
                plan.to_write.append(prepared)
                if prepared.status == "cancelled" and before.status != "cancelled":
                    plan.cancelled.append(rid)
            else:
                plan.unchanged += 1
        return missing

    def _valid_listings(self, raw_listings: Sequence[object], quarantine: list[Quarantined]) -> list[ListingRecord]:
        listings: dict[str, ListingRecord] = {}
        for raw in raw_listings:
            try:
                record = parse_listing(raw)
            except InvalidRecord as bad:
                quarantine.append(Quarantined("listing", bad.record_id, bad.reason, raw))
                continue
            listings[record.listing_id] = record
        return list(listings.values())

    def _upsert_listings(self, conn: Connection, listings: Sequence[ListingRecord], now: datetime) -> int:
        if not listings:
            return 0
        rows = [
            {
                "listing_id": l.listing_id, "short_code": l.short_code, "internal_name": l.internal_name,
                "title": l.title, "address": l.address, "city": l.city, "status": l.status,
                "content_hash": _listing_hash(l), "now": now, "time_zone": self.defaults.time_zone,
                "check_in": self.defaults.check_in, "check_out": self.defaults.check_out,
            }
            for l in listings
        ]
        known = dict(conn.execute(text("SELECT listing_id, content_hash FROM pipeline.listings")).all())
        changed = [row for row in rows if known.get(row["listing_id"]) != row["content_hash"]]
        if changed:
            conn.execute(text("""
                INSERT INTO pipeline.listings (listing_id, short_code, internal_name, title, address, city, status,
                    time_zone, default_check_in_time, default_check_out_time, content_hash,
                    first_seen_at, last_seen_at, updated_at)
                VALUES (:listing_id, :short_code, :internal_name, :title, :address, :city, :status,
                    :time_zone, :check_in, :check_out, :content_hash, :now, :now, :now)
                ON CONFLICT (listing_id) DO UPDATE SET
                    short_code = EXCLUDED.short_code, internal_name = EXCLUDED.internal_name,
                    title = EXCLUDED.title, address = EXCLUDED.address, city = EXCLUDED.city,
                    status = EXCLUDED.status, content_hash = EXCLUDED.content_hash,
                    last_seen_at = EXCLUDED.last_seen_at, updated_at = EXCLUDED.updated_at
            """), changed)
        return len(changed)

    @staticmethod
    def _listing_defaults(conn: Connection) -> dict[str, ListingDefaults]:
        rows = conn.execute(text(
            "SELECT listing_id, time_zone, default_check_in_time, default_check_out_time FROM pipeline.listings"
        )).all()
        return {r.listing_id: ListingDefaults(r.time_zone, r.default_check_in_time, r.default_check_out_time) for r in rows}

    @staticmethod
    def _existing_in_window(conn: Connection, window: SyncWindow) -> dict[str, ExistingReservation]:
        if window.date_type == "arrival":
            condition = "check_in_date BETWEEN :from_date AND :to_date"
        else:
            condition = "check_in_date <= :to_date AND check_out_date >= :from_date"
        rows = conn.execute(
            text(f"SELECT reservation_id, content_hash, status, missing_since FROM pipeline.reservations WHERE {condition}"),
            {"from_date": window.from_date, "to_date": window.to_date},
        ).all()
        return {r.reservation_id: ExistingReservation(r.content_hash, r.status, r.missing_since) for r in rows}

    @staticmethod
    def _write_reservations(conn: Connection, items: Sequence[PreparedReservation], now: datetime) -> None:
        """COPY the changed rows into a temp table, then one set-based upsert (fast at 100k rows)."""
        if not items:
            return
        conn.execute(text("""
            CREATE TEMP TABLE incoming_reservations (LIKE pipeline.reservations INCLUDING DEFAULTS) ON COMMIT DROP
        """))
        buffer = io.StringIO()
        for item in items:
            r = item.record
            cancelled_at = now if item.status == "cancelled" else None
            buffer.write("\t".join(_copy_value(v) for v in (
                r.reservation_id, r.code, r.listing_id, r.stays_type, r.kind, item.status,
                r.check_in_date, r.check_in_time, r.check_out_date, r.check_out_time, item.time_zone,
                item.check_in_at, item.check_out_at, r.guest_first_name, item.row_hash,
                now, now, now, cancelled_at, None,
            )))
            buffer.write("\n")
        buffer.seek(0)
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cursor:
            cursor.copy_expert(
                "COPY incoming_reservations (reservation_id, code, listing_id, stays_type, kind, status,"
                " check_in_date, check_in_time, check_out_date, check_out_time, time_zone, check_in_at,"
                " check_out_at, guest_first_name, content_hash, first_seen_at, last_seen_at, updated_at,"
                " cancelled_at, missing_since) FROM STDIN",
                buffer,
            )
        conn.execute(text("""
            INSERT INTO pipeline.reservations AS r
            SELECT * FROM incoming_reservations
            ON CONFLICT (reservation_id) DO UPDATE SET
                code = EXCLUDED.code, listing_id = EXCLUDED.listing_id, stays_type = EXCLUDED.stays_type,
                kind = EXCLUDED.kind, status = EXCLUDED.status,
                check_in_date = EXCLUDED.check_in_date, check_in_time = EXCLUDED.check_in_time,
                check_out_date = EXCLUDED.check_out_date, check_out_time = EXCLUDED.check_out_time,
                time_zone = EXCLUDED.time_zone, check_in_at = EXCLUDED.check_in_at,
                check_out_at = EXCLUDED.check_out_at, guest_first_name = EXCLUDED.guest_first_name,
                content_hash = EXCLUDED.content_hash, last_seen_at = EXCLUDED.last_seen_at,
                updated_at = EXCLUDED.updated_at, missing_since = NULL,
                cancelled_at = CASE WHEN EXCLUDED.status = 'cancelled' THEN coalesce(r.cancelled_at, EXCLUDED.cancelled_at) END
        """))

    @staticmethod
    def _store_quarantine(conn: Connection, quarantine: Sequence[Quarantined], sync_id: int | None, now: datetime) -> None:
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

    # -------------------------------------------------------- the log row

    def _open_log(self, window: SyncWindow | None) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(text("""
                INSERT INTO pipeline.reconciliation_logs (run_id, window_from, window_to, date_type, started_at, status)
                VALUES (:run_id, :from_date, :to_date, :date_type, :now, 'running') RETURNING sync_id
            """), {"run_id": self.run_id, "from_date": window and window.from_date,
                   "to_date": window and window.to_date,
                   "date_type": window.date_type if window else "listings", "now": self.now()}).scalar_one())

    def _close_log(self, sync_id: int, started: float, *, status: str, message: str | None,
                   errors: int = 0, result: SyncResult | None = None) -> None:
        figures = {
            "fetched": 0, "created": 0, "updated": 0, "unchanged": 0, "cancelled": 0,
            "missing": 0, "quarantined": 0, "errors": errors,
        }
        if result is not None:
            figures.update({key: getattr(result, key) for key in figures if key != "errors"})
            figures["errors"] = result.errors
        with self.engine.begin() as conn:
            conn.execute(text("""
                UPDATE pipeline.reconciliation_logs SET completed_at = :now, duration_ms = :duration,
                    fetched = :fetched, created = :created, updated = :updated, unchanged = :unchanged,
                    cancelled = :cancelled, missing = :missing, quarantined = :quarantined,
                    errors = :errors, status = :status, message = :message
                WHERE sync_id = :sync_id
            """), {**figures, "now": self.now(), "duration": int((monotonic_time.monotonic() - started) * 1000),
                   "status": status, "message": message, "sync_id": sync_id})


def _listing_hash(listing: ListingRecord) -> str:
    return hashlib.sha256("|".join((
        listing.short_code, listing.internal_name, listing.title, listing.address, listing.city, listing.status,
    )).encode()).hexdigest()


def _raw_id(raw: object) -> str | None:
    """The Stays _id of a raw record, even a malformed one."""
    value = raw.get("_id") if isinstance(raw, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _copy_value(value: object) -> str:
    """Text-format COPY field: NULL as \\N, tabs/newlines/backslashes escaped."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    text_value = str(value)
    return text_value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
