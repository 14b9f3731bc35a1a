"""A listing's and a lock's own settings: the operator's decisions that override an account setting.

A listing can set its time zone, its default check-in and check-out times (used when Stays sends
none), and its access lead and grace; a lock its PIN length. Whatever a listing or lock does not set
follows the account setting (lock_pipeline/settings.py; ``Spec.override`` names the command for each).
Every change is validated first (all problems reported together, each naming the bad value and the
fix) and recorded in pipeline.setting_changes (this module owns that table) with who, when and how:
the command line or a Dagster run. The CLI (``lock-pipeline listing`` / ``lock``) and the Dagster jobs
(listing_settings_job, lock_settings_job) both apply changes through the functions here.

Nothing here acts on a lock. A change reaches the doors by the pipeline's own paths: a new lead or
grace is a new access window, which the PIN planner moves in place on the lock (same digits) at the
sensor's next tick; a new zone or default time re-derives the listing's stay instants at the next sync
(store.listing_defaults gives the sync the effective values), and the planner then moves the PINs; a
new PIN length applies to the next new PIN on that lock, and the lock's failed PINs are retried at once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timezone
from functools import cache
from zoneinfo import available_timezones

from sqlalchemy import Connection, text

from lock_pipeline.access import store as access_store
from lock_pipeline.mapping import locks
from lock_pipeline.mapping.store import MappingError, resolve_listing
from lock_pipeline.stays import store as stays_store
from lock_pipeline.storage import admin_views
from lock_pipeline.vocabulary import ChangeVia, OverrideSetting, SettingSource

MAX_MINUTES = 24 * 60  # pipeline.listings.access_*_minutes CHECK (0..1440), as the account settings
PIN_LENGTHS = (6, 7, 8)  # Tuya: Wi-Fi locks take 7, Zigbee and Bluetooth locks 6; some models 8
_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


class OverrideError(ValueError):
    """A listing or lock setting that cannot be applied; nothing was changed. Each problem names the
    bad value and what to do."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


# ---------------------------------------------------------------- validation (pure)

def parse_time_zone(raw: object) -> str:
    value = str(raw).strip()
    zones = _zones()
    if value not in zones:
        by_case = {zone.lower(): zone for zone in zones}
        close = by_case.get(value.lower()) or next(iter(difflib.get_close_matches(value, zones, n=1)), None)
        hint = f" (did you mean {close}?)" if close else ""
        raise ValueError(f"time zone {value!r} is not an IANA time zone name{hint}: use one such as "
                         "America/Sao_Paulo or America/Manaus")
    return value


def parse_clock_time(raw: object, label: str) -> time:
    value = str(raw).strip()
    match = _HH_MM.fullmatch(value)
    if match is None:
        raise ValueError(f"{label} {value!r} is not a time of day as HH:MM (24-hour clock): use e.g. 15:00 or 09:30")
    return time(int(match.group(1)), int(match.group(2)))


def parse_minutes(raw: object, label: str) -> int:
    if isinstance(raw, bool) or not (isinstance(raw, int) or str(raw).strip().lstrip("-").isdigit()):
        raise ValueError(f"{label} {str(raw)!r} is not a whole number of minutes: use 0..{MAX_MINUTES}")
    value = int(raw)
    if not 0 <= value <= MAX_MINUTES:
        raise ValueError(f"{label} {value} is out of range: use 0..{MAX_MINUTES} minutes (24 h at most)")
    return value


def parse_pin_length(raw: object) -> int:
    value = str(raw).strip()
    if isinstance(raw, bool) or not value.isdigit() or int(value) not in PIN_LENGTHS:
        raise ValueError(f"PIN length {value!r} is not one a lock takes: use 6 (Zigbee and Bluetooth locks), "
                         "7 (Wi-Fi locks) or 8")
    return int(value)


@dataclass(frozen=True)
class _ListingSetting:
    name: OverrideSetting
    label: str           # as a person reads it in an error
    account_env: str     # the account setting it overrides
    parse: Callable[[object], object]
    next_step: str       # how the change reaches the doors


_RE_DERIVED = ("the listing's stays are re-derived at the next sync (within 30 min; `lock-pipeline sync` starts one "
               "now), then their PINs move to the new windows, same digits")
_MOVED = ("PINs already on the lock move to the new windows (same digits) at the access sensor's next tick, "
          "within 30 s")
LISTING_SETTINGS: dict[str, _ListingSetting] = {s.name.value: s for s in (
    _ListingSetting(OverrideSetting.TIME_ZONE, "time zone", "LOCK_PIPELINE_TIMEZONE", parse_time_zone, _RE_DERIVED),
    _ListingSetting(OverrideSetting.CHECK_IN_TIME, "check-in time", "LOCK_PIPELINE_DEFAULT_CHECK_IN_TIME",
                    lambda raw: parse_clock_time(raw, "check-in time"), _RE_DERIVED),
    _ListingSetting(OverrideSetting.CHECK_OUT_TIME, "check-out time", "LOCK_PIPELINE_DEFAULT_CHECK_OUT_TIME",
                    lambda raw: parse_clock_time(raw, "check-out time"), _RE_DERIVED),
    _ListingSetting(OverrideSetting.LEAD_MINUTES, "lead minutes", "LOCK_PIPELINE_ACCESS_LEAD_MINUTES",
                    lambda raw: parse_minutes(raw, "lead minutes"), _MOVED),
    _ListingSetting(OverrideSetting.GRACE_MINUTES, "grace minutes", "LOCK_PIPELINE_ACCESS_GRACE_MINUTES",
                    lambda raw: parse_minutes(raw, "grace minutes"), _MOVED),
)}


def setting_name(raw: str) -> str:
    """A listing setting's name as people type it (``time-zone``, ``--time-zone``, ``time_zone``)."""
    name = raw.strip().lstrip("-").replace("-", "_").lower()
    if name not in LISTING_SETTINGS:
        raise OverrideError([f"{raw!r} is not a listing setting: use one of "
                             f"{', '.join(n.replace('_', '-') for n in LISTING_SETTINGS)}"])
    return name


def parse_listing_values(values: Mapping[str, object]) -> dict[str, object]:
    """Every given value parsed, or OverrideError naming each bad one (nothing half-applied)."""
    parsed: dict[str, object] = {}
    problems: list[str] = []
    for raw_name, raw in values.items():
        if raw is None:
            continue
        try:
            name = setting_name(raw_name)
            parsed[name] = LISTING_SETTINGS[name].parse(raw)
        except OverrideError as error:
            problems.extend(error.problems)
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise OverrideError(problems)
    return parsed


# ---------------------------------------------------------------- a listing's settings

def set_listing(conn: Connection, listing: str, values: Mapping[str, object], *, actor: str, now: datetime,
                via: ChangeVia, run_id: str | None = None) -> str:
    """Set some of a listing's own settings; returns what was done and how it reaches the doors."""
    parsed = parse_listing_values(values)
    if not parsed:
        raise OverrideError(["nothing to set: give at least one of --lead-minutes, --grace-minutes, --time-zone, "
                             "--check-in-time, --check-out-time"])
    listing_id = _listing_id(conn, listing)
    if OverrideSetting.TIME_ZONE in parsed and not _postgres_knows_zone(conn, str(parsed[OverrideSetting.TIME_ZONE])):
        raise OverrideError([f"time zone {parsed[OverrideSetting.TIME_ZONE]!r} is unknown to this Postgres server "
                             "(the admin views show local times with it): update the server's time zone data, or "
                             "use another name for the same zone"])
    return _apply_listing(conn, listing, listing_id, parsed, actor=actor, now=now, via=via, run_id=run_id)


def reset_listing(conn: Connection, listing: str, settings: Sequence[str] | None = None, *, actor: str,
                  now: datetime, via: ChangeVia, run_id: str | None = None) -> str:
    """The listing follows the account setting again for ``settings`` (default: every one)."""
    names = [setting_name(s) for s in settings] if settings else list(LISTING_SETTINGS)
    listing_id = _listing_id(conn, listing)
    return _apply_listing(conn, listing, listing_id, dict.fromkeys(names), actor=actor, now=now, via=via,
                          run_id=run_id)


def decide_listing(conn: Connection, listing: str, values: Mapping[str, object], reset: Sequence[str], *,
                   actor: str, now: datetime, via: ChangeVia, run_id: str | None = None) -> str:
    """Set some settings and reset others in one decision (the Dagster job's config holds both)."""
    reset_names = [setting_name(s) for s in reset]
    both = sorted(set(reset_names) & {setting_name(n) for n, v in values.items() if v is not None})
    if both:
        raise OverrideError([f"{', '.join(both)} is both set and reset: choose one"])
    done = []
    if any(v is not None for v in values.values()) or not reset_names:
        done.append(set_listing(conn, listing, values, actor=actor, now=now, via=via, run_id=run_id))
    if reset_names:
        done.append(reset_listing(conn, listing, reset_names, actor=actor, now=now, via=via, run_id=run_id))
    return "\n".join(done)


def _apply_listing(conn: Connection, listing: str, listing_id: str, wanted: Mapping[str, object], *, actor: str,
                   now: datetime, via: ChangeVia, run_id: str | None) -> str:
    current = stays_store.listing_overrides(conn, listing_id, for_update=True)
    changed = {name: value for name, value in wanted.items() if current[name] != value}
    stays_store.set_listing_overrides(conn, listing_id, changed)
    for name, value in changed.items():
        _record(conn, listing_id=listing_id, setting=name, old=current[name], new=value, actor=actor, via=via,
                run_id=run_id, now=now)
    lines = [f"listing {listing}:"]
    for name, value in wanted.items():
        was = _shown(current[name])
        if name not in changed:
            lines.append(f"  {name}: unchanged ({was})")
        else:
            lines.append(f"  {name}: {_shown(value)} (was {was})")
    for step in dict.fromkeys(LISTING_SETTINGS[name].next_step for name in changed):
        lines.append(f"  -> {step}")
    return "\n".join(lines)


def _listing_id(conn: Connection, listing: str) -> str:
    try:
        return resolve_listing(conn, listing)
    except MappingError as error:  # unknown, or a code that names several listings: the message says which
        raise OverrideError([str(error)]) from None


def _postgres_knows_zone(conn: Connection, zone: str) -> bool:
    return bool(conn.execute(text("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = :z)"),
                             {"z": zone}).scalar())


# ---------------------------------------------------------------- a lock's settings

def set_lock(conn: Connection, device_id: str, pin_length: object, *, actor: str, now: datetime, via: ChangeVia,
             run_id: str | None = None) -> str:
    """Set a lock's PIN length: the next new PIN on it has that many digits, and its PINs that failed
    (a lock that refused the old length) are retried at once."""
    try:
        length = parse_pin_length(pin_length)
    except ValueError as error:
        raise OverrideError([str(error)]) from None
    device_id = device_id.strip()
    lock = locks.lock_row(conn, device_id, for_update=True)
    if lock is None:
        raise OverrideError([f"no lock with device id {device_id!r}: see admin.locks for the lock ids Tuya reported"])
    if lock.pin_length_asked is not None and lock.pin_length_asked != length:
        raise OverrideError([f"lock {device_id} refused a PIN on {_utc(lock.pin_length_asked_at)} and "
                             f"asked for {lock.pin_length_asked} digits: {length} would be refused too; use "
                             f"--pin-length {lock.pin_length_asked}"])
    lines = [f"lock {device_id} ({lock.name}):"]
    if lock.pin_length == length:
        lines.append(f"  pin_length: unchanged ({length})")
        return "\n".join(lines)
    locks.set_pin_length(conn, device_id, length)
    _record(conn, device_id=device_id, setting=OverrideSetting.PIN_LENGTH, old=lock.pin_length, new=length,
            actor=actor, via=via, run_id=run_id, now=now)
    retried = access_store.request_retry_for_lock(
        conn, device_id, reason=f"the lock's PIN length was set to {length} by {actor}: retried now",
        run_id=run_id, now=now)
    lines.append(f"  pin_length: {length} (was {_shown(lock.pin_length)})")
    lines.append("  -> the next new PIN on this lock has this many digits; PINs already on it keep theirs"
                 + (f"; {retried} failed PIN(s) on it are retried at the access sensor's next tick" if retried else ""))
    hint = locks.pin_length_hint(lock)
    if hint is not None and hint[0] != length:
        lines.append(f"  note: its product name ({lock.product_name}) suggests a {hint[1]} lock, which takes "
                     f"{hint[0]}-digit PINs")
    return "\n".join(lines)


# ---------------------------------------------------------------- what is in effect

_LISTING_COLUMNS = (  # setting, admin.listings value column, its source column
    ("time_zone", "time_zone", "time_zone_source"),
    ("check_in_time", "check_in_time", "check_in_time_source"),
    ("check_out_time", "check_out_time", "check_out_time_source"),
    ("lead_minutes", "access_lead_minutes", "access_lead_source"),
    ("grace_minutes", "access_grace_minutes", "access_grace_source"),
)


def describe_listing(conn: Connection, listing: str) -> str:
    """Every effective setting of a listing and where it comes from (as admin.listings), and its last changes."""
    listing_id = _listing_id(conn, listing)
    row = admin_views.listing_settings(conn, listing_id)
    lock = f"lock {row['lock_id']}" if row["lock_id"] else "no confirmed lock"
    lines = [f"listing {row['listing_code']} ({row['listing_name']}), {lock}:"]
    for name, value_column, source_column in _LISTING_COLUMNS:
        source = _source_text(row[source_column], LISTING_SETTINGS[name].account_env)
        lines.append(f"  {name:<16} {_stored(row[value_column]):<20} {source}")
    if row["lock_id"]:
        source = _source_text(row["lock_pin_length_source"], "LOCK_PIPELINE_PIN_LENGTH")
        lines.append(f"  {'lock pin_length':<16} {row['lock_pin_length']!s:<20} {source}")
    lines.extend(_history(recent_changes(conn, listing_id=listing_id)))
    return "\n".join(lines)


def describe_lock(conn: Connection, device_id: str) -> str:
    """A lock's PIN length and where it comes from (as admin.locks), what its cloud asked for, its changes."""
    device_id = device_id.strip()
    row = admin_views.lock(conn, device_id)
    lock = locks.lock_row(conn, device_id)
    if row is None or lock is None:
        raise OverrideError([f"no lock with device id {device_id!r}: see admin.locks for the lock ids Tuya reported"])
    mapped = f"listing {row['mapped_listing_code']}" if row["mapped_listing_code"] else "no listing"
    lines = [f"lock {device_id} ({row['lock_name']}): {'online' if row['online'] else 'offline'}, mapped to {mapped}, "
             f"Tuya category {lock.category or '?'}, product {lock.product_name or '?'}",
             f"  {'pin_length':<16} {row['pin_length']!s:<20} "
             f"{_source_text(row['pin_length_source'], 'LOCK_PIPELINE_PIN_LENGTH')}"]
    if lock.pin_length_asked is not None and lock.pin_length_asked != row["pin_length"]:
        lines.append(f"  its cloud refused a {row['pin_length']}-digit PIN on {_utc(lock.pin_length_asked_at)} "
                     f"and asked for {lock.pin_length_asked} digits: lock-pipeline lock set {device_id} "
                     f"--pin-length {lock.pin_length_asked}")
    hint = locks.pin_length_hint(lock)
    if hint is not None:
        lines.append(f"  its product name suggests a {hint[1]} lock, which takes {hint[0]}-digit PINs")
    lines.extend(_history(recent_changes(conn, device_id=device_id)))
    return "\n".join(lines)


def _source_text(source: str, env: str) -> str:
    if source in (SettingSource.LISTING, SettingSource.LOCK):
        return f"this {source}'s own"
    if source == SettingSource.ACCOUNT:
        return f"the account setting {env}"
    return f"the built-in default ({env} not changed)"


def _history(changes: list[dict]) -> list[str]:
    if not changes:
        return []
    lines = ["  changes, newest first:"]
    for c in changes:
        how = f"run {c['run_id']}" if c["run_id"] else c["via"]
        lines.append(f"    {_utc(c['at'])}  {c['setting']}: {c['old_value'] or '(account)'} -> "
                     f"{c['new_value'] or '(account)'} by {c['actor']} ({how})")
    return lines


# ---------------------------------------------------------------- the change log

def _record(conn: Connection, *, setting: str, old: object, new: object, actor: str, via: ChangeVia,
            run_id: str | None, now: datetime, listing_id: str | None = None, device_id: str | None = None) -> None:
    conn.execute(text("""
        INSERT INTO pipeline.setting_changes (listing_id, device_id, setting, old_value, new_value, actor, via,
            run_id, at)
        VALUES (:listing_id, :device_id, :setting, :old, :new, :actor, :via, :run_id, :at)
    """), {"listing_id": listing_id, "device_id": device_id, "setting": str(setting), "old": _stored(old),
           "new": _stored(new), "actor": actor, "via": str(via), "run_id": run_id, "at": now})


def recent_changes(conn: Connection, *, listing_id: str | None = None, device_id: str | None = None,
                   limit: int = 10) -> list[dict]:
    """The newest changes of a listing's or a lock's settings, newest first."""
    return [dict(row) for row in conn.execute(text("""
        SELECT setting, old_value, new_value, actor, via, run_id, note, at FROM pipeline.setting_changes
        WHERE listing_id IS NOT DISTINCT FROM :l AND device_id IS NOT DISTINCT FROM :d
        ORDER BY at DESC, change_id DESC LIMIT :limit
    """), {"l": listing_id, "d": device_id, "limit": limit}).mappings()]


def _stored(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, time):
        return f"{value:%H:%M}"
    return str(value)


def _shown(value: object) -> str:
    return "the account setting" if value is None else _stored(value)


def _utc(instant: datetime) -> str:
    return f"{instant.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())
