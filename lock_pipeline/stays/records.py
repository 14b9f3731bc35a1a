"""Raw Stays JSON -> small frozen records, one record at a time.

Field names from Stays are strong but not guaranteed, so every record is checked on its own
and a bad one raises :class:`InvalidRecord` naming the field and its value: the caller
quarantines that record and the rest of the batch goes on. Only what the pipeline needs is
kept; of the guest, only a first name (LGPD).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import date, time
from typing import Any

RESERVATION_TYPES = ("reserved", "booked", "contract", "new", "blocked", "maintenance", "canceled")
BLOCK_TYPES = frozenset({"blocked", "maintenance"})
LISTING_STATUSES = ("active", "inactive", "hidden", "draft")

MIN_YEAR, MAX_YEAR = 2000, 2100
MAX_NIGHTS = 366

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_SHOWN_VALUE_CHARS = 60


class InvalidRecord(ValueError):
    """A record the pipeline cannot trust; the message names the field, never the whole record."""

    def __init__(self, record_id: str | None, reason: str) -> None:
        self.record_id = record_id
        self.reason = reason
        super().__init__(reason if record_id is None else f"record {record_id}: {reason}")


@dataclass(frozen=True)
class ListingRecord:
    listing_id: str
    short_code: str
    internal_name: str
    title: str
    address: str
    city: str
    status: str

    @property
    def content_hash(self) -> str:
        """Lets a rerun tell an unchanged listing from a changed one without diffing columns."""
        return _hash(asdict(self))


@dataclass(frozen=True)
class ReservationRecord:
    reservation_id: str
    code: str
    listing_id: str
    stays_type: str
    kind: str
    cancelled: bool
    check_in_date: date
    check_in_time: time | None
    check_out_date: date
    check_out_time: time | None
    guest_first_name: str | None
    created_date: date | None
    content_hash: str


def parse_listing(raw: object) -> ListingRecord:
    if not isinstance(raw, dict):
        raise InvalidRecord(None, f"listing is a {type(raw).__name__}, not a JSON object")
    record_id = _record_id(raw)
    listing_id = _required_text(raw, "_id", record_id)
    address = raw.get("address")
    if not isinstance(address, dict):
        address = {}
    status = raw.get("status")
    if status is None or status == "":
        status = "active"
    if not isinstance(status, str) or status.strip().lower() not in LISTING_STATUSES:
        raise InvalidRecord(record_id, f"status {_show(status)} is not one of {', '.join(LISTING_STATUSES)}")
    return ListingRecord(
        listing_id=listing_id,
        short_code=_optional_text(raw.get("id")),
        internal_name=_optional_text(raw.get("internalName")),
        title=_title(raw.get("_mstitle")),
        address=_one_line_address(address),
        city=_optional_text(address.get("city")),
        status=status.strip().lower(),
    )


def parse_reservation(raw: object) -> ReservationRecord:
    if not isinstance(raw, dict):
        raise InvalidRecord(None, f"reservation is a {type(raw).__name__}, not a JSON object")
    record_id = _record_id(raw)
    reservation_id = _required_text(raw, "_id", record_id)
    code = _required_text(raw, "id", record_id)
    listing_id = _required_text(raw, "_idlisting", record_id)

    stays_type = raw.get("type")
    if not isinstance(stays_type, str) or stays_type.strip().lower() not in RESERVATION_TYPES:
        raise InvalidRecord(record_id, f"type {_show(stays_type)} is not one of {', '.join(RESERVATION_TYPES)}")
    stays_type = stays_type.strip().lower()
    kind = "block" if stays_type in BLOCK_TYPES else "guest"

    check_in_date = _required_date(raw, "checkInDate", record_id)
    check_out_date = _required_date(raw, "checkOutDate", record_id)
    check_in_time = _optional_time(raw, "checkInTime", record_id)
    check_out_time = _optional_time(raw, "checkOutTime", record_id)
    _check_stay_length(record_id, kind, check_in_date, check_in_time, check_out_date, check_out_time)

    fields: dict[str, Any] = dict(
        reservation_id=reservation_id,
        code=code,
        listing_id=listing_id,
        stays_type=stays_type,
        kind=kind,
        cancelled=stays_type == "canceled",
        check_in_date=check_in_date,
        check_in_time=check_in_time,
        check_out_date=check_out_date,
        check_out_time=check_out_time,
        guest_first_name=_guest_first_name(raw.get("guestsDetails")),
        created_date=_lenient_date(raw.get("creationDate")),
    )
    return ReservationRecord(**fields, content_hash=_digest(tuple(fields.values())))


# The raw fields whose values end up in a stored row (plus the guest's first name, below).
_FINGERPRINT_FIELDS = ("_id", "id", "_idlisting", "type", "checkInDate", "checkInTime", "checkOutDate", "checkOutTime")


def reservation_fingerprint(raw: object, salt: str) -> str | None:
    """A cheap digest of what a raw record can change in its row, so unchanged ones skip parsing.

    ``salt`` carries what else the row depends on (the listing's zone and default times). Equal
    fingerprints mean equal rows; different ones only mean "parse it and compare".
    """
    if not isinstance(raw, dict):
        return None
    values = [raw.get(key) for key in _FINGERPRINT_FIELDS]
    values.append(_guest_first_name(raw.get("guestsDetails")))
    values.append(salt)
    return _digest(tuple(values))


def _record_id(raw: dict) -> str | None:
    """The best handle for an error message: ``_id``, else the short ``id``."""
    for key in ("_id", "id"):
        value = raw.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:_SHOWN_VALUE_CHARS]
    return None


def _required_text(raw: dict, key: str, record_id: str | None) -> str:
    if key not in raw or raw[key] is None:
        raise InvalidRecord(record_id, f"{key} is missing")
    value = raw[key]
    if not isinstance(value, str):
        raise InvalidRecord(record_id, f"{key} {_show(value)} is a {type(value).__name__}, not a string")
    if not value.strip():
        raise InvalidRecord(record_id, f"{key} is empty")
    return value.strip()


def _optional_text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _required_date(raw: dict, key: str, record_id: str | None) -> date:
    value = raw.get(key)
    if value is None or value == "":
        raise InvalidRecord(record_id, f"{key} is missing")
    if not isinstance(value, str) or not _DATE.fullmatch(value.strip()):
        raise InvalidRecord(record_id, f"{key} {_show(value)} is not a date (YYYY-MM-DD)")
    try:
        parsed = date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRecord(record_id, f"{key} {_show(value)} is not a calendar date") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise InvalidRecord(record_id, f"{key} {_show(value)} is outside the years {MIN_YEAR}..{MAX_YEAR}")
    return parsed


def _optional_time(raw: dict, key: str, record_id: str | None) -> time | None:
    """Missing or empty means "use the listing's default", which only the caller knows."""
    value = raw.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    match = _TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidRecord(record_id, f"{key} {_show(value)} is not a time of day (HH:mm)")
    return time(int(match[1]), int(match[2]))


def _check_stay_length(record_id: str | None, kind: str, check_in: date, check_in_time: time | None,
                       check_out: date, check_out_time: time | None) -> None:
    nights = (check_out - check_in).days
    shown = f"checkOutDate {check_out.isoformat()} vs checkInDate {check_in.isoformat()}"
    if nights < 0:
        raise InvalidRecord(record_id, f"{shown}: check-out is before check-in")
    if nights == 0 and kind == "guest":
        raise InvalidRecord(record_id, f"{shown}: a guest stay must check out after the check-in day")
    if nights == 0 and check_in_time is not None and check_out_time is not None \
            and check_out_time < check_in_time:
        raise InvalidRecord(record_id, f"checkOutTime {check_out_time:%H:%M} is before checkInTime "
                                       f"{check_in_time:%H:%M} on the same day")
    if nights > MAX_NIGHTS:
        raise InvalidRecord(record_id, f"{shown}: {nights} nights is longer than {MAX_NIGHTS}")


def _lenient_date(value: object) -> date | None:
    """Creation date is informational: a bad one is dropped, not a reason to quarantine the stay."""
    if not isinstance(value, str) or not _DATE.match(value.strip()):
        return None
    try:
        parsed = date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None
    return parsed if MIN_YEAR <= parsed.year <= MAX_YEAR else None


def _guest_first_name(details: object) -> str | None:
    """The primary guest's first word (else the first listed guest's): all the guest data we keep."""
    guests = details.get("list") if isinstance(details, dict) else None
    if not isinstance(guests, list):
        return None
    chosen = None
    for guest in guests:
        if isinstance(guest, dict):
            if guest.get("primary") is True:
                chosen = guest
                break
            if chosen is None:
                chosen = guest
    name = chosen.get("name") if chosen is not None else None
    words = name.split(maxsplit=1) if isinstance(name, str) else None
    return words[0][:_SHOWN_VALUE_CHARS] if words else None


def _title(titles: object) -> str:
    if isinstance(titles, str):
        return titles.strip()
    if not isinstance(titles, dict):
        return ""
    preferred = titles.get("pt_BR")
    if isinstance(preferred, str) and preferred.strip():
        return preferred.strip()
    return next((t.strip() for t in titles.values() if isinstance(t, str) and t.strip()), "")


def _one_line_address(address: dict) -> str:
    """E.g. "Avenida Atlântica, 1702 - Apto 101, Rio de Janeiro": what the lock matcher compares."""
    street = _optional_text(address.get("street"))
    number = _optional_text(address.get("streetNumber"))
    unit = _optional_text(address.get("additional"))
    city = _optional_text(address.get("city"))
    head = ", ".join(part for part in (street, number) if part)
    if unit:
        head = f"{head} - {unit}" if head else unit
    return ", ".join(part for part in (head, city) if part)


def _digest(values: tuple) -> str:
    """A stable digest of plain values (str, numbers, None, dates, times, lists, dicts): their repr."""
    return hashlib.blake2b(repr(values).encode(), digest_size=32).hexdigest()


def _hash(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, default=_json_value, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _json_value(value: object) -> str:
    if isinstance(value, (date, time)):
        return value.isoformat()
    raise TypeError(f"cannot hash {type(value).__name__}")


def _show(value: object) -> str:
    """A bad value, short enough for a log line and a quarantine row."""
    text = repr(value)
    return text if len(text) <= _SHOWN_VALUE_CHARS else text[: _SHOWN_VALUE_CHARS - 3] + "..."
