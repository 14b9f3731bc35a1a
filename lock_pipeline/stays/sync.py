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
import logging
import math
import time as monotonic_time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from lock_pipeline import checkpoints
from lock_pipeline.stays import store
from lock_pipeline.stays.local_time import local_instant
from lock_pipeline.stays.records import (
    InvalidRecord,
    ListingRecord,
    ReservationRecord,
    parse_listing,
    parse_reservation,
    reservation_fingerprint,
)
from lock_pipeline.stays.store import ExistingReservation, ListingDefaults, PreparedReservation, Quarantined

log = logging.getLogger(__name__)

# Below this many expected stays a shrinking feed is plausible (a quiet listing), above it a
# feed that lost more than this share of the stays we hold is treated as a broken feed.
_COLLAPSE_MIN_EXPECTED = 10
_COLLAPSE_SHARE = 0.5
_MAX_INDIVIDUAL_LOOKUPS = 50
_PROGRESS_EVERY_PAGES = 500
_CHANGED_CODES_SHOWN = 50


class StaysSource(Protocol):
    def list_listings(self, status: str | None = None) -> list[object]: ...
    def get_listing(self, id_or_code: str) -> object: ...
    def iter_reservation_pages(self, from_date: date, to_date: date, *,
                               date_type: str = ...) -> Iterator[list[object]]: ...
    def get_reservation(self, id_or_code: str) -> object: ...


@dataclass(frozen=True)
class SyncWindow:
    from_date: date
    to_date: date
    # "arrival" (the partitions), "included" (stays overlapping the window) or "creation" (booked in it)
    date_type: str = "arrival"

    def __post_init__(self) -> None:
        if self.to_date < self.from_date:
            raise ValueError(f"sync window ends ({self.to_date}) before it starts ({self.from_date})")
        if self.date_type not in {"arrival", "included", "creation"}:
            raise ValueError(f"unsupported date_type {self.date_type!r}")

    @property
    def flags_missing(self) -> bool:
        """A stored stay the window should contain but the feed left out may be gone; a creation window
        says nothing of stays booked before it."""
        return self.date_type != "creation"


@dataclass
class RefreshResult:
    """One stay re-fetched by its id (a webhook): what applying it did."""

    reservation_id: str | None
    code: str | None
    change: str  # created | updated | cancelled | unchanged | quarantined | missing
    detail: str = ""


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
    feed_suspect: str | None = None  # why the feed was not trusted to flag missing stays
    duration_ms: int = 0
    pages: int = 0
    fetch_seconds: float = 0.0  # reading the feed, with the per-record planning that overlaps it
    plan_seconds: float = 0.0   # of which: parsing and planning records in this thread
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

def prepare_reservation(record: ReservationRecord, defaults: ListingDefaults,
                        fingerprint: str | None = None) -> PreparedReservation:
    """Turn Stays' offset-less local dates into instants in the listing's own zone."""
    check_in_at = local_instant(record.check_in_date, record.check_in_time or defaults.check_in, defaults.time_zone)
    check_out_at = local_instant(record.check_out_date, record.check_out_time or defaults.check_out, defaults.time_zone)
    if check_out_at < check_in_at:
        raise InvalidRecord(record.reservation_id, f"check-out {check_out_at.isoformat()} is before check-in {check_in_at.isoformat()}")
    row_hash = hashlib.sha256(f"{record.content_hash}|{defaults.fingerprint_salt}".encode()).hexdigest()
    return PreparedReservation(record, defaults.time_zone, check_in_at, check_out_at, row_hash, fingerprint)


class ReservationPlan:
    """What one feed means for the rows we hold, decided record by record as pages arrive.

    No I/O: it is given the stored rows of the window and the listings' defaults up front, and
    builds the COPY text of new and changed rows as it goes, so the raw records can be dropped
    page by page. A record whose raw fingerprint equals the stored one is not even parsed.
    """

    def __init__(self, existing: Mapping[str, ExistingReservation], defaults: Mapping[str, ListingDefaults],
                 now: datetime) -> None:
        self.existing = existing
        self.defaults = defaults
        self.now = now
        self._now_text = now.isoformat()
        self._salts = {listing_id: d.fingerprint_salt for listing_id, d in defaults.items()}
        self.fetched = 0
        self.seen: set[str] = set()        # valid records in the feed, unchanged ones included
        self.unusable: set[str] = set()    # in the feed but malformed: present, so never flagged missing
        self.created: list[str] = []
        self.updated: list[str] = []
        self.cancelled: list[str] = []
        self.unchanged = 0
        self.changed_codes: list[str] = []
        self.quarantine: list[Quarantined] = []
        self.fingerprint_refresh: dict[str, str] = {}  # same row, new raw form: store the new fingerprint
        self.new_rows = io.StringIO()
        self.changed_rows = io.StringIO()
        self.awaiting_listing: dict[str, list[object]] = {}  # records of listings not stored yet, by listing _id

    def take_page(self, page: Sequence[object]) -> None:
        for raw in page:
            self.take(raw)

    def take(self, raw: object, *, counted: bool = True) -> None:
        if counted:
            self.fetched += 1
        rid = _raw_id(raw)
        listing_id = raw.get("_idlisting") if isinstance(raw, dict) else None
        if isinstance(listing_id, str) and listing_id and listing_id not in self.defaults:
            self.awaiting_listing.setdefault(listing_id, []).append(raw)  # decided once the listing is known
            return
        fingerprint = self.fingerprint_of(raw)
        before = self.existing.get(rid) if rid else None
        if (before is not None and fingerprint is not None and before.fingerprint == fingerprint
                and before.missing_since is None and rid not in self.seen):
            self.seen.add(rid)
            self.unchanged += 1
            return
        try:
            record = parse_reservation(raw)
            if record.listing_id not in self.defaults:
                raise InvalidRecord(record.reservation_id, f"_idlisting {record.listing_id!r} is not a known listing")
            if record.reservation_id in self.seen:
                raise InvalidRecord(record.reservation_id, f"duplicate _id {record.reservation_id!r} in the feed (first copy kept)")
            prepared = prepare_reservation(record, self.defaults[record.listing_id], fingerprint)
        except InvalidRecord as bad:
            self.quarantine.append(Quarantined("reservation", bad.record_id, bad.reason, raw))
            if rid:
                self.unusable.add(rid)
            return
        self.seen.add(prepared.record.reservation_id)
        self.decide(prepared)

    def take_listing(self, listing_id: str, defaults: ListingDefaults | None) -> None:
        """The records that waited for ``listing_id``: decided now that it is known, or quarantined."""
        waiting = self.awaiting_listing.pop(listing_id, [])
        if defaults is not None:
            self.defaults = {**self.defaults, listing_id: defaults}
            self._salts[listing_id] = defaults.fingerprint_salt
        for raw in waiting:
            if defaults is None:
                rid = _raw_id(raw)
                self.quarantine.append(Quarantined("reservation", rid, f"_idlisting {listing_id!r} is not a known listing", raw))
                if rid:
                    self.unusable.add(rid)
            else:
                self.take(raw, counted=False)

    def fingerprint_of(self, raw: object) -> str | None:
        listing_id = raw.get("_idlisting") if isinstance(raw, dict) else None
        salt = self._salts.get(listing_id) if isinstance(listing_id, str) else None
        return reservation_fingerprint(raw, salt) if salt is not None else None

    def decide(self, item: PreparedReservation) -> None:
        """New, changed or unchanged against the stored row; the first two become COPY lines."""
        rid = item.record.reservation_id
        before = self.existing.get(rid)
        if before is None:
            self.created.append(rid)
            out = self.new_rows
        elif before.row_hash != item.row_hash or before.missing_since is not None:
            self.updated.append(rid)
            out = self.changed_rows
        else:
            self.unchanged += 1
            if item.fingerprint is not None and before.fingerprint != item.fingerprint:
                self.fingerprint_refresh[rid] = item.fingerprint
            return
        if item.status == "cancelled" and (before is None or before.status != "cancelled"):
            self.cancelled.append(rid)
        if len(self.changed_codes) < _CHANGED_CODES_SHOWN:
            self.changed_codes.append(item.record.code)
        store.reservation_copy_line(out, item, self._now_text)

    def missing_candidates(self, in_windows: set[str] | None = None) -> list[str]:
        """Stored, live stays of the window(s) that the feed left out (malformed ones count as present).

        ``in_windows``: the stored stays that the windows able to flag missing should contain (by
        default every stored row the plan was given).
        """
        return sorted(
            rid for rid, row in self.existing.items()
            if (in_windows is None or rid in in_windows)
            and rid not in self.seen and rid not in self.unusable and row.missing_since is None and row.status != "cancelled"
        )


def near_term_windows(now: datetime, zone: str, program_ahead: timedelta, created_since: date | None) -> list[SyncWindow]:
    """What the 30-minute sync reads: every stay that can touch a door soon, and every booking made since the
    last one (Stays' `included` and `creation` date types). The whole window is swept on a slower schedule.

    A stay touches a door soon when it is in the house or its access window may open within the
    programming horizon: stays overlapping yesterday .. today + horizon + 1 day (the longest lead).
    """
    today = now.astimezone(ZoneInfo(zone)).date()
    last = today + timedelta(days=math.ceil(program_ahead / timedelta(days=1)) + 1)
    since = min(created_since or today, today) - timedelta(days=1)  # creation dates are days: overlap one
    return [SyncWindow(today - timedelta(days=1), last, "included"), SyncWindow(since, today, "creation")]


def feed_looks_broken(expected: int, received: int, missing: int) -> str | None:
    """Why a feed must not be trusted to flag stays as missing, or None when it can be."""
    if expected > 0 and received == 0:
        return f"empty feed while {expected} stays are expected in the window"
    if expected >= _COLLAPSE_MIN_EXPECTED and missing > expected * _COLLAPSE_SHARE:
        return f"feed left out {missing} of {expected} known stays"
    return None


# ---------------------------------------------------------------- the sync

class StaysSync:
    """One reconciliation of a window of Stays into Postgres."""

    def __init__(self, engine: Engine, source: StaysSource, *, now: Callable[[], datetime],
                 default_time_zone: str, default_check_in: time, default_check_out: time,
                 run_id: str | None = None, progress: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.source = source
        self.now = now
        # The account settings: what a listing without its own zone or default times uses (store.listing_defaults).
        self.defaults = ListingDefaults(default_time_zone, default_check_in, default_check_out)
        self.run_id = run_id
        self.progress = progress or (lambda message: log.info(message))

    def sync_listings(self) -> ListingSyncResult:
        """Upsert every listing Stays returns; a listing absent from the feed is never touched."""
        try:
            raw_listings = self.source.list_listings()
        except Exception as error:  # noqa: BLE001 - any failure to read Stays is an outage here
            message = f"Stays listings fetch failed, nothing changed: {error}"
            sync_id = store.open_sync_log(self.engine, window_from=None, window_to=None, date_type="listings",
                                          run_id=self.run_id, now=self.now())
            self._close_log(sync_id, monotonic_time.monotonic(), status="failed", message=message, errors=1)
            raise StaysFetchFailed(message, sync_id) from error
        self.progress(f"fetched {len(raw_listings)} listings from Stays")
        quarantine: list[Quarantined] = []
        listings = self._valid_listings(raw_listings, quarantine)
        now = self.now()
        with self.engine.begin() as conn:
            written = store.upsert_listings(conn, listings, now)
            store.store_quarantine(conn, quarantine, None, now)
        return ListingSyncResult(
            fetched=len(raw_listings), written=written, quarantined=len(quarantine),
            quarantine_reasons=[f"listing {q.record_id or '?'}: {q.reason}" for q in quarantine[:20]],
        )

    def sync_reservations(self, window: SyncWindow | Sequence[SyncWindow]) -> SyncResult:
        """Reconcile one window (or several read as one feed) of reservations; always leaves one
        reconciliation_logs row.

        Pages are planned as they arrive (the raw records are dropped page by page) and
        everything is written in one transaction at the end, so a feed that fails half-way
        changes nothing. One sync at a time holds the sync lock from reading the stored rows
        to the commit, so the rows it planned against cannot change under it. Only windows that
        can flag missing stays do (a creation window cannot: stays booked before it are not in it).
        """
        windows = [window] if isinstance(window, SyncWindow) else list(window)
        started = monotonic_time.monotonic()
        sync_id = store.open_sync_log(self.engine, window_from=min(w.from_date for w in windows),
                                      window_to=max(w.to_date for w in windows),
                                      date_type="+".join(w.date_type for w in windows), run_id=self.run_id,
                                      now=self.now())
        result = SyncResult(sync_id=sync_id, status="running")
        try:
            buffered = [raw for w in windows if not w.flags_missing for raw in self._read_all(w, result)]
            with store.sync_lock(self.engine) as conn:
                in_windows: dict[str, ExistingReservation] = {}
                for w in windows:
                    if w.flags_missing:
                        in_windows.update(store.existing_in_window(conn, w))
                others = {_raw_id(raw) for raw in buffered} - in_windows.keys() - {None}
                existing = {**store.existing_by_ids(conn, sorted(others)), **in_windows}
                plan = ReservationPlan(existing, store.listing_defaults(conn, self.defaults), self.now())
                conn.commit()
                for w in windows:
                    if w.flags_missing:
                        self._read_feed(w, plan, result)
                for raw in buffered:
                    if _raw_id(raw) not in plan.seen:  # the same stay may come in two windows: read once
                        plan.take(raw)
                result.fetched = plan.fetched
                listings = self._fetch_listings_awaited(plan)
                write_started = monotonic_time.monotonic()
                with conn.begin():
                    store.upsert_listings(conn, listings, plan.now)
                    self._apply(conn, plan, result, set(in_windows))
                result.write_seconds = monotonic_time.monotonic() - write_started
        except StaysFetchFailed as failed:
            failed.sync_id = sync_id
            self._close_log(sync_id, started, status="failed", message=str(failed), errors=1)
            raise
        except Exception as error:
            message = f"writing the sync to Postgres failed, nothing changed: {error}"
            self._close_log(sync_id, started, status="failed", message=message, errors=1)
            raise
        result.status = "partial" if (result.quarantined or result.errors or result.message) else "success"
        result.duration_ms = int((monotonic_time.monotonic() - started) * 1000)
        self._close_log(sync_id, started, status=result.status, message=result.message or None, result=result)
        return result

    def refresh_reservation(self, ref: str) -> RefreshResult:
        """Re-fetch one stay by its ``_id`` or code and apply it as a sync would (a webhook's fast path).

        Under the sync lock, so a sync that read the feed before this change cannot write over it.
        Stays answering 404 means what a stay missing from the feed means: flagged, not revoked
        (the PIN life cycle waits out the tolerance); any other failure changes nothing.
        """
        from lock_pipeline.stays.client import StaysNotFound

        with store.sync_lock(self.engine) as conn:
            try:
                raw = self.source.get_reservation(ref)
            except StaysNotFound:
                with conn.begin():
                    rid = store.find_stay_by_code(conn, ref)
                    if rid is not None:
                        store.flag_missing(conn, [rid], self.now())
                return RefreshResult(rid, ref if rid else None, "missing",
                                     "Stays answered 404: flagged missing; its PIN goes only if it stays missing "
                                     "for the tolerance")
            except Exception as error:  # noqa: BLE001 - Stays said nothing: nothing changes
                raise StaysFetchFailed(f"Stays fetch of reservation {ref} failed, nothing changed: {error}", None) from error
            rid = _raw_id(raw)
            plan = ReservationPlan(store.existing_by_ids(conn, [rid] if rid else []),
                                   store.listing_defaults(conn, self.defaults), self.now())
            conn.commit()
            plan.take(raw)
            listings = self._fetch_listings_awaited(plan)
            with conn.begin():
                store.upsert_listings(conn, listings, plan.now)
                store.write_reservations(conn, new_rows=plan.new_rows if plan.created else None,
                                         changed_rows=plan.changed_rows if plan.updated else None,
                                         fingerprint_refresh=plan.fingerprint_refresh)
                store.store_quarantine(conn, plan.quarantine, None, plan.now)
        code = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
        if plan.quarantine:
            return RefreshResult(rid, code, "quarantined", plan.quarantine[0].reason)
        change = ("cancelled" if plan.cancelled else "created" if plan.created else "updated" if plan.updated
                  else "unchanged")
        return RefreshResult(rid, code, change)

    # -------------------------------------------------------- reconciliation

    def _read_feed(self, window: SyncWindow, plan: ReservationPlan, result: SyncResult) -> None:
        """Stream the window's pages into the plan; any failure to read means Stays said nothing."""
        fetch_started = monotonic_time.monotonic()
        where = f"{window.from_date}..{window.to_date} ({window.date_type})"
        try:
            pages = self.source.iter_reservation_pages(window.from_date, window.to_date, date_type=window.date_type)
            for page in pages:
                planning = monotonic_time.monotonic()
                plan.take_page(page)
                result.plan_seconds += monotonic_time.monotonic() - planning
                result.pages += 1
                if result.pages % _PROGRESS_EVERY_PAGES == 0:
                    self.progress(f"read {plan.fetched} reservations ({result.pages} pages) for {where}")
        except Exception as error:  # noqa: BLE001 - any failure to read Stays is an outage here
            raise StaysFetchFailed(f"Stays fetch failed, nothing changed: {error}", None) from error
        result.fetch_seconds += monotonic_time.monotonic() - fetch_started
        result.fetched = plan.fetched
        self.progress(f"fetched {plan.fetched} reservations for {where} in {result.fetch_seconds:.1f} s")

    def _read_all(self, window: SyncWindow, result: SyncResult) -> list[object]:
        """A small window (bookings made since the last sync) read whole before planning."""
        fetch_started = monotonic_time.monotonic()
        try:
            pages = list(self.source.iter_reservation_pages(window.from_date, window.to_date,
                                                            date_type=window.date_type))
        except Exception as error:  # noqa: BLE001 - any failure to read Stays is an outage here
            raise StaysFetchFailed(f"Stays fetch failed, nothing changed: {error}", None) from error
        result.pages += len(pages)
        result.fetch_seconds += monotonic_time.monotonic() - fetch_started
        return [raw for page in pages for raw in page]

    def _fetch_listings_awaited(self, plan: ReservationPlan) -> list[ListingRecord]:
        """Listings the feed's stays name but Postgres does not hold yet (a listing created since the
        last full sync): fetched one by one; the stays of one Stays does not know are quarantined."""
        found: list[ListingRecord] = []
        for listing_id in sorted(plan.awaiting_listing):
            try:
                listing = parse_listing(self.source.get_listing(listing_id))
            except Exception:  # noqa: BLE001 - unknown or unreadable: its stays are quarantined with the reason
                plan.take_listing(listing_id, None)
                continue
            found.append(listing)
            plan.take_listing(listing_id, self.defaults)
        return found

    def _apply(self, conn: Connection, plan: ReservationPlan, result: SyncResult, in_windows: set[str]) -> None:
        now = plan.now
        missing_candidates = plan.missing_candidates(in_windows)
        broken = feed_looks_broken(len(in_windows), len(plan.seen & in_windows) if in_windows else len(plan.seen),
                                   len(missing_candidates))
        missing: list[str] = []
        if broken:
            result.feed_suspect = broken
            result.message = f"{broken}: no stay flagged missing"
            self.progress(result.message)
        else:
            missing = self._confirm_missing(plan, missing_candidates)

        store.write_reservations(conn, new_rows=plan.new_rows if plan.created else None,
                                 changed_rows=plan.changed_rows if plan.updated else None,
                                 fingerprint_refresh=plan.fingerprint_refresh)
        store.flag_missing(conn, missing, now)
        store.store_quarantine(conn, plan.quarantine, result.sync_id, now)
        checkpoints.reached(checkpoints.SYNC_BEFORE_COMMIT)

        result.created, result.updated = len(plan.created), len(plan.updated)
        result.cancelled, result.unchanged, result.missing = len(plan.cancelled), plan.unchanged, len(missing)
        result.quarantined = len(plan.quarantine)
        result.quarantine_reasons = [f"{q.entity} {q.record_id or '?'}: {q.reason}" for q in plan.quarantine[:20]]
        result.changed_codes = list(plan.changed_codes)
        self.progress(
            f"reservations: {result.created} new, {result.updated} changed, {result.cancelled} cancelled, "
            f"{result.unchanged} unchanged, {result.missing} missing, {result.quarantined} quarantined"
        )

    def _confirm_missing(self, plan: ReservationPlan, candidates: Sequence[str]) -> list[str]:
        """Ask Stays about each stay the feed left out: moved out of the window, or really gone?"""
        missing: list[str] = []
        for position, rid in enumerate(candidates):
            if position >= _MAX_INDIVIDUAL_LOOKUPS:
                missing.extend(candidates[position:])
                break
            try:
                raw = self.source.get_reservation(rid)
            except Exception:  # noqa: BLE001 - not found or unreachable: flag it, flagging is harmless
                missing.append(rid)
                continue
            try:
                record = parse_reservation(raw)
                if record.reservation_id != rid or record.listing_id not in plan.defaults:
                    raise InvalidRecord(rid, "lookup by _id returned a different or unknown stay")
                prepared = prepare_reservation(record, plan.defaults[record.listing_id], plan.fingerprint_of(raw))
            except InvalidRecord as bad:
                plan.quarantine.append(Quarantined("reservation", bad.record_id, bad.reason, raw))
                if _raw_id(raw) != rid:  # Stays answered with another stay: this one is absent
                    missing.append(rid)
                continue  # present but malformed: quarantined, never flagged missing (its PIN must not go)
            plan.decide(prepared)
        return missing

    def refresh_listing(self, ref: str) -> str:
        """Re-fetch one listing (a listing webhook) and store it; returns what happened."""
        try:
            listing = parse_listing(self.source.get_listing(ref))
        except InvalidRecord as bad:
            with self.engine.begin() as conn:
                store.store_quarantine(conn, [Quarantined("listing", bad.record_id, bad.reason, None)], None, self.now())
            return f"listing {ref} quarantined: {bad.reason}"
        except Exception as error:  # noqa: BLE001 - Stays said nothing: nothing changes
            raise StaysFetchFailed(f"Stays fetch of listing {ref} failed, nothing changed: {error}", None) from error
        with self.engine.begin() as conn:
            written = store.upsert_listings(conn, [listing], self.now())
        return f"listing {listing.short_code or listing.listing_id} {'stored' if written else 'unchanged'}"

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

    def _close_log(self, sync_id: int, started: float, *, status: str, message: str | None,
                   errors: int = 0, result: SyncResult | None = None) -> None:
        store.close_sync_log(self.engine, sync_id, now=self.now(), status=status, message=message, errors=errors,
                             result=result, duration_ms=int((monotonic_time.monotonic() - started) * 1000))


def _raw_id(raw: object) -> str | None:
    """The Stays _id of a raw record, even a malformed one."""
    value = raw.get("_id") if isinstance(raw, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None
