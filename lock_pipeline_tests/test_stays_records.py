"""Raw Stays JSON -> records: seed data parses, every kind of bad record is named, nothing leaks."""

from __future__ import annotations

import copy
import dataclasses
from datetime import date, datetime, time, timezone
from typing import Callable

import pytest

from lock_pipeline.sandbox.seed import build_seed, hex_id, listing_record, reservation_record
from lock_pipeline.stays.records import (
    RESERVATION_TYPES,
    InvalidRecord,
    ListingRecord,
    ReservationRecord,
    parse_listing,
    parse_reservation,
)

LISTING_ID = hex_id("listing", "test", 1)


def a_reservation(**overrides: object) -> dict:
    raw = reservation_record(
        reservation_id=hex_id("reservation", "test", 1), code="EV23J", listing_id=LISTING_ID,
        check_in=date(2026, 7, 10), check_out=date(2026, 7, 14), guest_name="Maria Clara Silva",
        created=date(2026, 6, 1),
    )
    raw.update(overrides)
    return raw


def without(key: str) -> Callable[[dict], None]:
    return lambda raw: raw.pop(key)


def setting(key: str, value: object) -> Callable[[dict], None]:
    return lambda raw: raw.__setitem__(key, value)


# --- valid data -------------------------------------------------------------------------------

def test_every_seed_record_parses() -> None:
    seed = build_seed(datetime(2026, 7, 1, 12, tzinfo=timezone.utc))
    listings = [parse_listing(raw) for raw in seed.listings]
    reservations = [parse_reservation(raw) for raw in seed.reservations]

    assert len(listings) == len(seed.listings) >= 12
    assert len(reservations) == len(seed.reservations) > 100
    assert {r.listing_id for r in reservations} <= {l.listing_id for l in listings}
    assert {r.kind for r in reservations} == {"guest", "block"}
    assert any(r.cancelled for r in reservations)
    assert any(r.check_in_time is None for r in reservations)  # the seed leaves some times out


def test_reservation_fields() -> None:
    record = parse_reservation(a_reservation())

    assert record.reservation_id == hex_id("reservation", "test", 1)
    assert record.code == "EV23J"
    assert record.listing_id == LISTING_ID
    assert (record.stays_type, record.kind, record.cancelled) == ("booked", "guest", False)
    assert (record.check_in_date, record.check_in_time) == (date(2026, 7, 10), time(15, 0))
    assert (record.check_out_date, record.check_out_time) == (date(2026, 7, 14), time(11, 0))
    assert record.created_date == date(2026, 6, 1)
    assert len(record.content_hash) == 64 and int(record.content_hash, 16) >= 0


@pytest.mark.parametrize("stays_type, kind, cancelled", [
    ("reserved", "guest", False), ("booked", "guest", False), ("contract", "guest", False),
    ("new", "guest", False), ("blocked", "block", False), ("maintenance", "block", False),
    ("canceled", "guest", True),
])
def test_type_decides_kind_and_cancellation(stays_type: str, kind: str, cancelled: bool) -> None:
    record = parse_reservation(a_reservation(type=stays_type))
    assert (record.stays_type, record.kind, record.cancelled) == (stays_type, kind, cancelled)


def test_every_declared_type_is_accepted() -> None:
    assert {parse_reservation(a_reservation(type=t)).stays_type for t in RESERVATION_TYPES} == set(RESERVATION_TYPES)


@pytest.mark.parametrize("missing", [None, "", "  "])
def test_missing_times_are_left_to_the_listing_default(missing: object) -> None:
    record = parse_reservation(a_reservation(checkInTime=missing, checkOutTime=missing))
    assert record.check_in_time is None and record.check_out_time is None
    raw = a_reservation()
    del raw["checkInTime"]
    assert parse_reservation(raw).check_in_time is None


def test_same_day_block_is_allowed_but_not_same_day_guest() -> None:
    block = parse_reservation(a_reservation(type="maintenance", checkOutDate="2026-07-10",
                                            checkInTime="09:00", checkOutTime="17:00"))
    assert block.kind == "block" and block.check_out_date == block.check_in_date
    with pytest.raises(InvalidRecord, match="checkOutDate"):
        parse_reservation(a_reservation(checkOutDate="2026-07-10"))


def test_unreadable_creation_date_is_dropped_not_fatal() -> None:
    assert parse_reservation(a_reservation(creationDate="yesterday")).created_date is None
    assert parse_reservation(a_reservation(creationDate="2026-06-01T10:11:12")).created_date == date(2026, 6, 1)


# --- guest data (LGPD) ------------------------------------------------------------------------

def test_only_the_guests_first_name_is_kept() -> None:
    record = parse_reservation(a_reservation())

    assert record.guest_first_name == "Maria"
    assert {f.name for f in dataclasses.fields(ReservationRecord)} == {
        "reservation_id", "code", "listing_id", "stays_type", "kind", "cancelled", "check_in_date",
        "check_in_time", "check_out_date", "check_out_time", "guest_first_name", "created_date", "content_hash",
    }
    text = repr(record)
    for personal in ("Clara", "Silva", "+55", "phones"):
        assert personal not in text


def test_primary_guest_wins_else_the_first_listed() -> None:
    guests = [{"name": "Pedro Souza", "primary": False}, {"name": "  Ana Lima ", "primary": True}]
    assert parse_reservation(a_reservation(guestsDetails={"list": guests})).guest_first_name == "Ana"
    guests = [{"name": "Pedro Souza"}, {"name": "Ana Lima"}]
    assert parse_reservation(a_reservation(guestsDetails={"list": guests})).guest_first_name == "Pedro"


@pytest.mark.parametrize("details", [None, "Maria", {"list": []}, {"list": "Maria"}, {"list": [{"name": 7}]},
                                     {"list": [{"name": "   "}]}, {}])
def test_missing_or_odd_guest_details_give_no_name(details: object) -> None:
    assert parse_reservation(a_reservation(guestsDetails=details)).guest_first_name is None


# --- content hash -----------------------------------------------------------------------------

def test_content_hash_is_stable_over_raw_noise() -> None:
    raw = a_reservation()
    shuffled = dict(reversed(list(copy.deepcopy(raw).items())))
    shuffled["price"] = {"currency": "BRL", "_f_total": 9999.0}
    shuffled["guestsDetails"]["list"][0]["phones"] = ["+55 11 11111-1111"]

    assert parse_reservation(raw).content_hash == parse_reservation(copy.deepcopy(raw)).content_hash
    assert parse_reservation(shuffled).content_hash == parse_reservation(raw).content_hash


@pytest.mark.parametrize("change", [
    {"checkInDate": "2026-07-11"}, {"checkOutDate": "2026-07-15"}, {"checkInTime": "16:00"},
    {"checkOutTime": None}, {"type": "canceled"}, {"_idlisting": hex_id("listing", "test", 2)},
    {"guestsDetails": {"list": [{"name": "Ana"}]}},
])
def test_content_hash_changes_with_any_normalised_field(change: dict) -> None:
    assert parse_reservation(a_reservation(**change)).content_hash != parse_reservation(a_reservation()).content_hash


# --- malformed reservations -------------------------------------------------------------------

MALFORMED: list[tuple[str, Callable[[dict], None], str]] = [
    ("no _id", without("_id"), "_id"),
    ("empty _id", setting("_id", "  "), "_id"),
    ("numeric _id", setting("_id", 12345), "_id"),
    ("no id", without("id"), "id"),
    ("empty id", setting("id", ""), "id"),
    ("no _idlisting", without("_idlisting"), "_idlisting"),
    ("list _idlisting", setting("_idlisting", ["abc"]), "_idlisting"),
    ("no checkInDate", without("checkInDate"), "checkInDate"),
    ("null checkOutDate", setting("checkOutDate", None), "checkOutDate"),
    ("numeric checkInDate", setting("checkInDate", 20260710), "checkInDate"),
    ("day first", setting("checkInDate", "10/07/2026"), "checkInDate"),
    ("with time", setting("checkOutDate", "2026-07-14T11:00:00"), "checkOutDate"),
    ("month 13", setting("checkInDate", "2026-13-01"), "checkInDate"),
    ("30 February", setting("checkOutDate", "2026-02-30"), "checkOutDate"),
    ("year 1970", setting("checkInDate", "1970-07-10"), "checkInDate"),
    ("year 2200", setting("checkOutDate", "2200-07-14"), "checkOutDate"),
    ("time with seconds", setting("checkInTime", "15:00:00"), "checkInTime"),
    ("time 25h", setting("checkOutTime", "25:00"), "checkOutTime"),
    ("time as number", setting("checkInTime", 1500), "checkInTime"),
    ("am/pm", setting("checkOutTime", "11 AM"), "checkOutTime"),
    ("out before in", setting("checkOutDate", "2026-07-01"), "checkOutDate"),
    ("400 nights", setting("checkOutDate", "2027-08-14"), "nights"),
    ("unknown type", setting("type", "pending"), "type"),
    ("cancelled with two l", setting("type", "cancelled"), "type"),
    ("no type", without("type"), "type"),
]


@pytest.mark.parametrize("name, breaks, field", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_malformed_reservation_is_rejected_naming_the_field(name: str, breaks: Callable[[dict], None],
                                                            field: str) -> None:
    raw = a_reservation()
    breaks(raw)
    with pytest.raises(InvalidRecord) as caught:
        parse_reservation(raw)
    assert field in caught.value.reason
    assert field in str(caught.value)
    assert "Silva" not in str(caught.value) and "partner" not in str(caught.value)


def test_block_out_before_in_is_rejected_too() -> None:
    with pytest.raises(InvalidRecord, match="before check-in"):
        parse_reservation(a_reservation(type="blocked", checkOutDate="2026-07-09"))
    with pytest.raises(InvalidRecord, match="checkOutTime"):
        parse_reservation(a_reservation(type="blocked", checkOutDate="2026-07-10",
                                        checkInTime="15:00", checkOutTime="11:00"))


@pytest.mark.parametrize("raw", [None, [], "EV23J", 42, ["_id", "id"]])
def test_non_object_is_rejected(raw: object) -> None:
    with pytest.raises(InvalidRecord, match="not a JSON object") as caught:
        parse_reservation(raw)
    assert caught.value.record_id is None


def test_error_carries_the_record_id_and_a_truncated_value() -> None:
    raw = a_reservation(checkInDate="x" * 5000)
    with pytest.raises(InvalidRecord) as caught:
        parse_reservation(raw)
    assert caught.value.record_id == raw["_id"]
    assert raw["_id"] in str(caught.value)
    assert "xxxxxxxx" in str(caught.value) and len(str(caught.value)) < 200


def test_error_falls_back_to_the_short_code_for_its_id() -> None:
    raw = a_reservation()
    del raw["_id"]
    with pytest.raises(InvalidRecord) as caught:
        parse_reservation(raw)
    assert caught.value.record_id == "EV23J"


def test_invalid_record_is_a_value_error() -> None:
    assert issubclass(InvalidRecord, ValueError)


# --- listings ---------------------------------------------------------------------------------

def a_listing(**overrides: object) -> dict:
    raw = listing_record(0, "Ed. Atlântica - Apto 101", "Vista mar em Copacabana", "Avenida Atlântica",
                         "1702", "Apto 101", "Rio de Janeiro")
    raw.update(overrides)
    return raw


def test_listing_fields() -> None:
    raw = a_listing()
    record = parse_listing(raw)
    assert record == ListingRecord(
        listing_id=raw["_id"], short_code=raw["id"], internal_name="Ed. Atlântica - Apto 101",
        title="Vista mar em Copacabana", address="Avenida Atlântica, 1702 - Apto 101, Rio de Janeiro",
        city="Rio de Janeiro", status="active",
    )


def test_listing_address_without_unit_or_number() -> None:
    address = {"street": "Estrada da Gávea", "streetNumber": "810", "additional": "", "city": "Rio de Janeiro"}
    assert parse_listing(a_listing(address=address)).address == "Estrada da Gávea, 810, Rio de Janeiro"
    assert parse_listing(a_listing(address={"street": "Rua do Mucugê"})).address == "Rua do Mucugê"


@pytest.mark.parametrize("address", [None, "Rua X, 1", ["Rua X"], 7])
def test_listing_with_odd_address_is_tolerated(address: object) -> None:
    record = parse_listing(a_listing(address=address))
    assert (record.address, record.city) == ("", "")


def test_listing_title_prefers_portuguese_then_any_language() -> None:
    assert parse_listing(a_listing(_mstitle={"en_US": "Sea view", "pt_BR": "Vista mar"})).title == "Vista mar"
    assert parse_listing(a_listing(_mstitle={"pt_BR": "", "es_ES": "Vista al mar"})).title == "Vista al mar"
    assert parse_listing(a_listing(_mstitle=None)).title == ""


def test_listing_defaults_for_missing_optional_fields() -> None:
    raw = {"_id": LISTING_ID}
    record = parse_listing(raw)
    assert (record.short_code, record.internal_name, record.title, record.status) == ("", "", "", "active")


@pytest.mark.parametrize("status", ["inactive", "hidden", "draft", "Active"])
def test_listing_status(status: str) -> None:
    assert parse_listing(a_listing(status=status)).status == status.lower()


@pytest.mark.parametrize("breaks, field", [
    (without("_id"), "_id"), (setting("_id", ""), "_id"), (setting("_id", 5), "_id"),
    (setting("status", "archived"), "status"), (setting("status", 1), "status"),
])
def test_malformed_listing_is_rejected(breaks: Callable[[dict], None], field: str) -> None:
    raw = a_listing()
    breaks(raw)
    with pytest.raises(InvalidRecord) as caught:
        parse_listing(raw)
    assert field in caught.value.reason


def test_non_object_listing_is_rejected() -> None:
    with pytest.raises(InvalidRecord, match="not a JSON object"):
        parse_listing(["_id"])


def test_listing_hash_follows_its_fields() -> None:
    assert parse_listing(a_listing()).content_hash == parse_listing(a_listing(groupIds=["x"])).content_hash
    assert parse_listing(a_listing()).content_hash != parse_listing(a_listing(internalName="Apto 101")).content_hash


def test_records_are_frozen() -> None:
    record = parse_reservation(a_reservation())
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.code = "OTHER"  # type: ignore[misc]
