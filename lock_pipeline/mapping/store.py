"""The listing -> lock map in Postgres: refreshed suggestions and the admin's decisions.

An admin's decision (confirm, reject, set, unmap) and any confirmed mapping survive every
later materialization: the matcher only rewrites rows that are still mere suggestions.
Remaps and unmaps are recorded; the PIN life cycle sees the mapping change and revokes the
old lock's PINs itself (access/planning.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from lock_pipeline.mapping import locks
from lock_pipeline.mapping.matching import ListingCandidate, LockCandidate, Suggestion, suggest_mappings


class MappingError(ValueError):
    """An admin's mapping request that cannot be applied; the message says why and what to do."""


@dataclass(frozen=True)
class RefreshSummary:
    suggested: int
    auto_confirmed: list[str]
    unmatched: int
    kept: int


def refresh_suggestions(conn: Connection, now: datetime, *, auto_confirm_score: float, min_margin: float,
                        run_id: str | None = None) -> RefreshSummary:
    """Recompute suggestions for listings nobody decided yet; auto-confirm only clear matches."""
    decided = {r.listing_id: r.device_id for r in conn.execute(text(
        "SELECT listing_id, device_id FROM pipeline.lock_mappings WHERE status = 'confirmed' OR source = 'admin'"
    ))}
    taken = {device for device in decided.values() if device}
    listings = [
        ListingCandidate(r.listing_id, (r.internal_name, r.title, r.address))
        for r in conn.execute(text("SELECT listing_id, internal_name, title, address FROM pipeline.listings ORDER BY listing_id"))
        if r.listing_id not in decided
    ]
    candidates = [LockCandidate(device_id, name) for device_id, name in locks.present_locks(conn) if device_id not in taken]
    rejected = {(r.listing_id, r.device_id) for r in conn.execute(text("SELECT listing_id, device_id FROM pipeline.mapping_rejections"))}
    suggestions = suggest_mappings(listings, candidates, auto_confirm_score=auto_confirm_score, min_margin=min_margin) if listings else []

    auto_confirmed: list[str] = []
    suggested = unmatched = 0
    for s in suggestions:
        device = s.device_id if (s.listing_id, s.device_id) not in rejected else None
        if device is None:
            status, unmatched = "unmatched", unmatched + 1
        elif s.auto_confirm:
            status = "confirmed"
            auto_confirmed.append(s.listing_id)
        else:
            status, suggested = "suggested", suggested + 1
        _upsert(conn, s, device, status, now)
        if status == "confirmed":
            _record(conn, s.listing_id, None, device, "auto_confirm", "matcher", run_id, now)
    return RefreshSummary(suggested, auto_confirmed, unmatched, kept=len(decided))


def _upsert(conn: Connection, s: Suggestion, device: str | None, status: str, now: datetime) -> None:
    conn.execute(text("""
        INSERT INTO pipeline.lock_mappings (listing_id, device_id, status, score, runner_up_device_id,
            runner_up_score, source, decided_by, decided_at, updated_at)
        VALUES (:listing_id, :device_id, :status, :score, :runner_up, :runner_up_score, 'matcher',
            CASE WHEN :status = 'confirmed' THEN 'matcher' END, CASE WHEN :status = 'confirmed' THEN :now END, :now)
        ON CONFLICT (listing_id) DO UPDATE SET device_id = EXCLUDED.device_id, status = EXCLUDED.status,
            score = EXCLUDED.score, runner_up_device_id = EXCLUDED.runner_up_device_id,
            runner_up_score = EXCLUDED.runner_up_score, decided_by = EXCLUDED.decided_by,
            decided_at = EXCLUDED.decided_at, updated_at = EXCLUDED.updated_at
        WHERE pipeline.lock_mappings.status <> 'confirmed' AND pipeline.lock_mappings.source = 'matcher'
          AND (pipeline.lock_mappings.device_id, pipeline.lock_mappings.status, pipeline.lock_mappings.score,
               pipeline.lock_mappings.runner_up_device_id)
              IS DISTINCT FROM (EXCLUDED.device_id, EXCLUDED.status, EXCLUDED.score, EXCLUDED.runner_up_device_id)
    """), {"listing_id": s.listing_id, "device_id": device, "status": status, "score": s.score if device else None,
           "runner_up": s.runner_up_device_id, "runner_up_score": s.runner_up_score, "now": now})


# ------------------------------------------------------------------ admin decisions

def resolve_listing(conn: Connection, listing: str) -> str:
    """A listing by its short code (what people type) or its Stays _id."""
    rows = conn.execute(text(
        "SELECT listing_id FROM pipeline.listings WHERE listing_id = :x OR upper(short_code) = upper(:x)"
    ), {"x": listing.strip()}).scalars().all()
    if not rows:
        raise MappingError(f"no listing with code or id {listing!r}: see admin.lock_mappings for the listing codes")
    if len(rows) > 1:
        raise MappingError(f"{listing!r} names {len(rows)} listings: use the listing's Stays _id instead")
    return rows[0]


def confirm(conn: Connection, listing: str, actor: str, now: datetime, run_id: str | None = None) -> str:
    """Confirm the current suggestion for a listing; returns the lock's device id."""
    listing_id = resolve_listing(conn, listing)
    row = _current_mapping(conn, listing_id)
    if row is None or row.device_id is None:
        raise MappingError(f"listing {listing!r} has no suggested lock to confirm: set one with `set {listing} LOCK_ID`")
    if row.status == "confirmed":
        return row.device_id
    return set_mapping(conn, listing_id, row.device_id, actor, now, run_id, action="confirm")


def set_mapping(conn: Connection, listing: str, device_id: str, actor: str, now: datetime,
                run_id: str | None = None, *, action: str = "set") -> str:
    """Map a listing to a lock by hand (a remap when it had another lock)."""
    listing_id = resolve_listing(conn, listing)
    if not locks.is_known(conn, device_id):
        raise MappingError(f"no lock with device id {device_id!r}: see admin.locks for the lock ids Tuya reported")
    holder = conn.execute(text(
        "SELECT l.short_code FROM pipeline.lock_mappings m JOIN pipeline.listings l USING (listing_id) "
        "WHERE m.device_id = :d AND m.status = 'confirmed' AND m.listing_id <> :l"
    ), {"d": device_id, "l": listing_id}).scalar()
    if holder is not None:
        raise MappingError(f"lock {device_id} is already confirmed for listing {holder}: unmap it there first")
    before = _current_mapping(conn, listing_id)
    old_device = before.device_id if before is not None and before.status == "confirmed" else None
    conn.execute(text("""
        INSERT INTO pipeline.lock_mappings (listing_id, device_id, status, source, decided_by, decided_at, updated_at)
        VALUES (:l, :d, 'confirmed', 'admin', :actor, :now, :now)
        ON CONFLICT (listing_id) DO UPDATE SET device_id = :d, status = 'confirmed', source = 'admin',
            decided_by = :actor, decided_at = :now, updated_at = :now
    """), {"l": listing_id, "d": device_id, "actor": actor, "now": now})
    if old_device != device_id:
        _record(conn, listing_id, old_device, device_id, "remap" if old_device else action, actor, run_id, now)
    return device_id


def reject(conn: Connection, listing: str, actor: str, now: datetime, run_id: str | None = None) -> str:
    """Reject the suggested lock: it is never suggested for this listing again."""
    listing_id = resolve_listing(conn, listing)
    row = _current_mapping(conn, listing_id)
    if row is None or row.device_id is None:
        raise MappingError(f"listing {listing!r} has no suggested lock to reject")
    if row.status == "confirmed":
        raise MappingError(f"listing {listing!r} has a confirmed lock: use `unmap` to remove it")
    conn.execute(text("""
        INSERT INTO pipeline.mapping_rejections (listing_id, device_id, rejected_by, rejected_at)
        VALUES (:l, :d, :actor, :now) ON CONFLICT DO NOTHING
    """), {"l": listing_id, "d": row.device_id, "actor": actor, "now": now})
    conn.execute(text("""
        UPDATE pipeline.lock_mappings SET device_id = NULL, status = 'unmatched', score = NULL, updated_at = :now
        WHERE listing_id = :l
    """), {"l": listing_id, "now": now})
    _record(conn, listing_id, row.device_id, None, "reject", actor, run_id, now)
    return row.device_id


def unmap(conn: Connection, listing: str, actor: str, now: datetime, run_id: str | None = None) -> str | None:
    """Remove a listing's lock; the listing stays lock-less until an admin sets one."""
    listing_id = resolve_listing(conn, listing)
    row = _current_mapping(conn, listing_id)
    old_device = row.device_id if row is not None and row.status == "confirmed" else None
    conn.execute(text("""
        INSERT INTO pipeline.lock_mappings (listing_id, device_id, status, source, decided_by, decided_at, updated_at)
        VALUES (:l, NULL, 'unmatched', 'admin', :actor, :now, :now)
        ON CONFLICT (listing_id) DO UPDATE SET device_id = NULL, status = 'unmatched', source = 'admin',
            score = NULL, decided_by = :actor, decided_at = :now, updated_at = :now
    """), {"l": listing_id, "actor": actor, "now": now})
    _record(conn, listing_id, old_device, None, "unmap", actor, run_id, now)
    return old_device


def _current_mapping(conn: Connection, listing_id: str):
    """The listing's mapping row, locked until the decision commits (two admins cannot race)."""
    return conn.execute(text("SELECT device_id, status FROM pipeline.lock_mappings WHERE listing_id = :l FOR UPDATE"),
                        {"l": listing_id}).one_or_none()


def _record(conn: Connection, listing_id: str, old: str | None, new: str | None, action: str, actor: str,
            run_id: str | None, now: datetime) -> None:
    conn.execute(text("""
        INSERT INTO pipeline.lock_mapping_events (listing_id, old_device_id, new_device_id, action, actor, run_id, at)
        VALUES (:l, :old, :new, :action, :actor, :run_id, :now)
    """), {"l": listing_id, "old": old, "new": new, "action": action, "actor": actor, "run_id": run_id, "now": now})


def mapping_counts(conn: Connection) -> dict[str, int]:
    return dict(conn.execute(text("SELECT status, count(*) FROM pipeline.lock_mappings GROUP BY status")).all())


# ------------------------------------------------------------------ invariants (asset checks)

def one_to_one_violations(conn: Connection) -> list[dict]:
    """Confirmed mappings that share a lock (the unique index makes this empty unless it was bypassed)."""
    return [dict(r._mapping) for r in conn.execute(text("""
        SELECT m.device_id, array_agg(l.short_code ORDER BY l.short_code) AS listing_codes
        FROM pipeline.lock_mappings m JOIN pipeline.listings l USING (listing_id)
        WHERE m.status = 'confirmed' GROUP BY m.device_id HAVING count(*) > 1
    """))]


def listings_with_arrivals_but_no_lock(conn: Connection, now: datetime, days: int = 14) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(text("""
        SELECT l.short_code AS listing_code, COALESCE(NULLIF(l.internal_name, ''), l.title) AS listing_name,
               min(r.check_in_at) AS next_arrival, COALESCE(m.status, 'unmatched') AS mapping_status
        FROM pipeline.reservations r
        JOIN pipeline.listings l USING (listing_id)
        LEFT JOIN pipeline.lock_mappings m ON m.listing_id = l.listing_id
        WHERE r.kind = 'guest' AND r.status = 'confirmed'
          AND r.check_out_at > :now AND r.check_in_at < :now + make_interval(days => :days)
          AND (m.status IS DISTINCT FROM 'confirmed')
        GROUP BY l.short_code, l.internal_name, l.title, m.status
        ORDER BY next_arrival
    """), {"now": now, "days": days})]


def mapped_locks_missing_from_tuya(conn: Connection) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(text("""
        SELECT l.short_code AS listing_code, m.device_id, k.missing_since
        FROM pipeline.lock_mappings m JOIN pipeline.listings l USING (listing_id)
        LEFT JOIN pipeline.locks k ON k.device_id = m.device_id
        WHERE m.status = 'confirmed' AND (k.device_id IS NULL OR k.missing_since IS NOT NULL)
    """))]


DECISIONS = ("confirm", "reject", "set", "unmap")


def decide(conn: Connection, action: str, listing: str, lock_id: str | None, decided_by: str, now: datetime,
           run_id: str | None = None) -> str:
    """One place for the Dagster job and the CLI to apply an admin's decision; returns what was done."""
    if action == "confirm":
        return f"confirmed {listing} -> {confirm(conn, listing, decided_by, now, run_id)}"
    if action == "reject":
        return f"rejected {reject(conn, listing, decided_by, now, run_id)} for {listing}"
    if action == "set":
        if not lock_id:
            raise MappingError("`set` needs lock_id: the Tuya device id from admin.locks")
        return f"mapped {listing} -> {set_mapping(conn, listing, lock_id, decided_by, now, run_id)}"
    if action == "unmap":
        return f"unmapped {listing} (was {unmap(conn, listing, decided_by, now, run_id) or 'no lock'})"
    raise MappingError(f"action must be one of {', '.join(DECISIONS)}, not {action!r}")
