"""Writing to a Stays reservation: the sandbox implements the reference's "Writing to a
reservation", and the production client writes through it (loopback, no mocks)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest

from lock_pipeline.sandbox.seed import Seed, hex_id, listing_record, reservation_record
from lock_pipeline.sandbox.stays_server import StaysSandbox
from lock_pipeline.stays.client import StaysClient, StaysError, StaysNotFound, StaysWriteRefused

pytestmark = pytest.mark.integration  # sandbox servers on loopback

SECRET = "wr1te-s3cr3t-never-shown"
CLIENT_ID = "sandbox-client"
AUTH = (CLIENT_ID, SECRET)
START = date(2026, 7, 1)
LISTINGS = [listing_record(i, f"Apto {i}", f"Title {i}", "Rua A", str(i), "", "Rio de Janeiro") for i in range(3)]
STAYS = [reservation_record(reservation_id=hex_id("w", n), code=f"W{n:04d}", listing_id=LISTINGS[n % 3]["_id"],
                            check_in=START + timedelta(days=n), check_out=START + timedelta(days=n + 2),
                            stays_type="reserved" if n == 2 else "booked") for n in range(4)]
FIELDS = "settings/app/custom-fields"


def new_sandbox(**kwargs: object) -> StaysSandbox:
    return StaysSandbox(Seed(listings=list(LISTINGS), reservations=[dict(r) for r in STAYS]), client_secret=SECRET,
                        **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def sandbox() -> Iterator[StaysSandbox]:
    server = new_sandbox().start()
    yield server
    server.stop()


def client_for(sandbox: StaysSandbox, **kwargs: object) -> StaysClient:
    options: dict = {"timeout": 2.0, "max_attempts": 3, "backoff_seconds": 0.01, "concurrency": 1, **kwargs}
    return StaysClient(sandbox.base_url, CLIENT_ID, SECRET, **options)


@pytest.fixture
def client(sandbox: StaysSandbox) -> Iterator[StaysClient]:
    with client_for(sandbox) as stays_client:
        yield stays_client


def raw(sandbox: StaysSandbox, method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, f"{sandbox.base_url}/{path}", auth=AUTH, timeout=5, **kwargs)  # type: ignore[arg-type]


def pin_field(client: StaysClient) -> dict:
    return client.create_custom_field(internal_name="door_pin", name="Código da porta")


# --- custom fields --------------------------------------------------------------------------------

def test_create_and_list_custom_fields(sandbox: StaysSandbox, client: StaysClient) -> None:
    assert client.list_custom_fields() == []
    field = client.create_custom_field(internal_name="door_pin", name="Código da porta")
    assert len(field["_idfield"]) == 24
    assert {k: field[k] for k in ("type", "internalName", "_msname", "visibility", "target")} == {
        "type": "text", "internalName": "door_pin", "_msname": {"pt_BR": "Código da porta"},
        "visibility": "hidden", "target": "reservation"}
    link = client.create_custom_field(internal_name="guestPortal", name="Portal", field_type="link",
                                      visibility="public")
    assert client.list_custom_fields() == [field, link]
    assert client.list_custom_fields("listing") == []
    post = [target for method, target in sandbox.request_log if method == "POST"][0]
    assert post == f"/external/v1/{FIELDS}?target=reservation"


def test_a_duplicate_internal_name_is_a_409(sandbox: StaysSandbox, client: StaysClient) -> None:
    first = pin_field(client)
    with pytest.raises(StaysError) as caught:
        pin_field(client)
    assert caught.value.status == 409 and not isinstance(caught.value, StaysWriteRefused)
    assert "door_pin" in str(caught.value) and f"POST /{FIELDS}" in str(caught.value)
    assert client.list_custom_fields() == [first]
    other_target = client.create_custom_field(internal_name="door_pin", name="PIN", target="listing")
    assert other_target["target"] == "listing"  # unique per target


def test_bad_custom_fields_are_refused(sandbox: StaysSandbox, client: StaysClient) -> None:
    for bad in ("1pin", "a", "door-pin", "pin code", ""):
        with pytest.raises(ValueError, match="internal_name"):
            client.create_custom_field(internal_name=bad, name="PIN")
    with pytest.raises(ValueError, match="field_type"):
        client.create_custom_field(internal_name="pin", name="PIN", field_type="date")
    with pytest.raises(ValueError, match="visibility"):
        client.create_custom_field(internal_name="pin", name="PIN", visibility="private")
    assert sandbox.request_count == 0  # checked before any request

    base = {"type": "text", "internalName": "door_pin", "_msname": {"pt_BR": "PIN"}, "visibility": "hidden"}
    for body, message in [({**base, "internalName": "9lives"}, "must match"), ({**base, "type": "date"}, "type"),
                          ({**base, "visibility": "secret"}, "visibility"), ({**base, "_msname": "PIN"}, "_msname"),
                          ({k: v for k, v in base.items() if k != "type"}, "type is required"),
                          ({**base, "required": True}, "required")]:
        answer = raw(sandbox, "POST", f"{FIELDS}?target=reservation", json=body)
        assert answer.status_code == 400, body
        assert message in answer.json()["message"]
    assert raw(sandbox, "POST", FIELDS, json=base).status_code == 400  # target is required
    assert raw(sandbox, "GET", f"{FIELDS}?target=galaxy").status_code == 400
    assert sandbox.custom_fields() == []


def test_update_and_delete_a_custom_field(sandbox: StaysSandbox, client: StaysClient) -> None:
    field = pin_field(client)
    changed = raw(sandbox, "PATCH", f"{FIELDS}/{field['_idfield']}", json={"visibility": "public"})
    assert changed.status_code == 200 and changed.json()["visibility"] == "public"
    client.update_reservation(STAYS[0]["_id"], stays_type="booked", custom_fields={field["_idfield"]: "1234567"})
    deleted = raw(sandbox, "DELETE", f"{FIELDS}/{field['_idfield']}")
    assert deleted.status_code == 200 and deleted.json()["_idfield"] == field["_idfield"]
    assert client.list_custom_fields() == []
    assert client.get_reservation(STAYS[0]["id"])["appCustomFields"] == []  # type: ignore[index]
    assert raw(sandbox, "DELETE", f"{FIELDS}/{field['_idfield']}").status_code == 404
    assert raw(sandbox, "PATCH", f"{FIELDS}/{'0' * 24}", json={"visibility": "public"}).status_code == 404


# --- PATCH a reservation ----------------------------------------------------------------------------

def test_patch_without_type_is_a_400_that_says_why(sandbox: StaysSandbox, client: StaysClient) -> None:
    field = pin_field(client)
    answer = raw(sandbox, "PATCH", f"booking/reservations/{STAYS[0]['_id']}",
                 json={"appCustomFields": [{"_idfield": field["_idfield"], "val": "1"}]})
    assert answer.status_code == 400
    assert "type is required" in answer.json()["message"]
    assert "appCustomFields" not in client.get_reservation(STAYS[0]["_id"])  # type: ignore[operator]


def test_write_custom_fields_and_note_then_read_them_back(sandbox: StaysSandbox, client: StaysClient) -> None:
    pin, portal = pin_field(client), client.create_custom_field(internal_name="portal", name="Portal", field_type="link")
    answer = client.update_reservation(STAYS[0]["_id"], stays_type="booked",
                                       custom_fields={pin["_idfield"]: "4821937", portal["_idfield"]: "https://x.y/z"},
                                       internal_note="PIN on the lock")
    assert answer["appCustomFields"] == [{"_idfield": pin["_idfield"], "val": "4821937"},  # type: ignore[index]
                                         {"_idfield": portal["_idfield"], "val": "https://x.y/z"}]
    assert answer["internalNote"] == "PIN on the lock" and answer["type"] == "booked"  # type: ignore[index]

    by_code = client.update_reservation(STAYS[0]["id"], stays_type="booked", custom_fields={pin["_idfield"]: "5550001"})
    assert by_code["appCustomFields"][0]["val"] == "5550001"  # type: ignore[index]
    assert by_code["appCustomFields"][1]["val"] == "https://x.y/z"  # merged by _idfield, not replaced  # type: ignore[index]
    assert by_code["internalNote"] == "PIN on the lock"  # type: ignore[index]

    fetched = client.get_reservation(STAYS[0]["id"])
    assert fetched == by_code
    listed = [r for r in client.list_reservations(START, START + timedelta(days=10)) if r["_id"] == STAYS[0]["_id"]]  # type: ignore[index]
    assert listed == [by_code]
    patches = [target for method, target in sandbox.request_log if method == "PATCH"]
    assert patches == [f"/external/v1/booking/reservations/{STAYS[0]['_id']}",
                       f"/external/v1/booking/reservations/{STAYS[0]['id']}"]


def test_patch_by_partner_code_and_clearing_with_an_empty_value(sandbox: StaysSandbox, client: StaysClient) -> None:
    pin = pin_field(client)
    client.update_reservation(STAYS[1]["partnerCode"], stays_type="booked", custom_fields={pin["_idfield"]: "777"})
    cleared = client.update_reservation(STAYS[1]["partnerCode"], stays_type="booked",
                                        custom_fields={pin["_idfield"]: ""}, internal_note="")
    assert cleared["appCustomFields"] == [{"_idfield": pin["_idfield"], "val": ""}]  # type: ignore[index]
    assert cleared["internalNote"] == ""  # type: ignore[index]
    assert client.get_reservation(STAYS[1]["id"]) == cleared


def test_the_wrong_type_really_changes_the_reservation(sandbox: StaysSandbox, client: StaysClient) -> None:
    """As the reference warns: the body is chosen by type, and the reservation takes it."""
    assert client.get_reservation(STAYS[2]["id"])["type"] == "reserved"  # type: ignore[index]
    client.update_reservation(STAYS[2]["id"], stays_type="booked", internal_note="oops")
    assert client.get_reservation(STAYS[2]["id"])["type"] == "booked"  # type: ignore[index]
    default_feed = raw(sandbox, "GET", "booking/reservations",
                       params={"from": "2026-07-01", "to": "2026-07-10", "type": "reserved"}).json()
    assert STAYS[2]["_id"] not in {r["_id"] for r in default_feed}


def test_bad_writes_are_400s(sandbox: StaysSandbox, client: StaysClient) -> None:
    pin = pin_field(client)
    path = f"booking/reservations/{STAYS[0]['_id']}"
    for body, message in [
        ({"type": "booked", "appCustomFields": [{"_idfield": "f" * 24, "val": "1"}]}, "unknown custom field"),
        ({"type": "booked", "appCustomFields": {"_idfield": pin["_idfield"], "val": "1"}}, "array"),
        ({"type": "booked", "appCustomFields": [{"_idfield": pin["_idfield"], "val": None}]}, "string or a number"),
        ({"type": "booked", "internalNote": 5}, "internalNote"),
        ({"type": "cancelled", "internalNote": "x"}, "not one of"),
        ({"type": "booked", "checkInDate": "2026-07-02"}, "not writable"),
    ]:
        answer = raw(sandbox, "PATCH", path, json=body)
        assert answer.status_code == 400, body
        assert message in answer.json()["message"]
    assert raw(sandbox, "PATCH", path, content=b"{not json").status_code == 400
    assert client.get_reservation(STAYS[0]["_id"]) == STAYS[0]  # nothing half-written
    with pytest.raises(StaysError, match="400") as caught:
        client.update_reservation(STAYS[0]["_id"], stays_type="booked", custom_fields={"f" * 24: "1"})
    assert "unknown custom field" in str(caught.value) and not isinstance(caught.value, StaysWriteRefused)


def test_client_checks_arguments_before_any_request(sandbox: StaysSandbox, client: StaysClient) -> None:
    with pytest.raises(ValueError, match="stays_type"):
        client.update_reservation(STAYS[0]["_id"], stays_type="cancelled", internal_note="x")
    with pytest.raises(ValueError, match="nothing to write"):
        client.update_reservation(STAYS[0]["_id"], stays_type="booked")
    with pytest.raises(ValueError, match="nothing to write"):
        client.update_reservation(STAYS[0]["_id"], stays_type="booked", custom_fields={})
    with pytest.raises(ValueError, match="string"):
        client.update_reservation(STAYS[0]["_id"], stays_type="booked", custom_fields={"abc": 123})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="required"):
        client.update_reservation(" ", stays_type="booked", internal_note="x")
    assert sandbox.request_count == 0


def test_unknown_reservation_is_not_found_not_refused(sandbox: StaysSandbox, client: StaysClient) -> None:
    with pytest.raises(StaysNotFound, match="no such reservation") as caught:
        client.update_reservation("NOPE1", stays_type="booked", internal_note="x")
    assert not isinstance(caught.value, StaysWriteRefused)
    assert "PATCH /booking/reservations/NOPE1" in str(caught.value)
    assert [m for m, _ in sandbox.request_log] == ["PATCH", "GET"]


def test_a_patch_fires_reservation_modified() -> None:
    sent: list[dict] = []

    def deliver(url: str, headers: dict[str, str], body: bytes) -> int:
        sent.append(json.loads(body))
        return 200

    with new_sandbox(webhook_url="http://127.0.0.1:9/hook", deliver=deliver) as server, \
            client_for(server) as stays_client:
        pin = pin_field(stays_client)
        stays_client.update_reservation(STAYS[0]["_id"], stays_type="booked", custom_fields={pin["_idfield"]: "1"})
        stays_client.update_reservation(STAYS[0]["_id"], stays_type="canceled", internal_note="wrong type")
        assert server.wait_for_webhooks(5)
    assert [b["action"] for b in sent] == ["reservation.modified", "reservation.canceled"]
    assert sent[0]["payload"]["appCustomFields"] == [{"_idfield": pin["_idfield"], "val": "1"}]


# --- refusals, faults, retries ----------------------------------------------------------------------

@pytest.mark.parametrize("status", [403, 404])
def test_refused_writes_raise_one_clear_error(sandbox: StaysSandbox, client: StaysClient, status: int) -> None:
    field = pin_field(client)
    sandbox.refuse_writes(status)
    calls = [
        lambda: client.update_reservation(STAYS[0]["_id"], stays_type="booked", custom_fields={field["_idfield"]: "1"}),
        lambda: client.create_custom_field(internal_name="other", name="Other"),
    ]
    for call in calls:
        before = sandbox.request_count
        with pytest.raises(StaysWriteRefused) as caught:
            call()
        error = caught.value
        assert error.status == status and isinstance(error, StaysError)
        message = str(error)
        assert "may not write" in message and "App Center" in message and "write-back off" in message
        assert SECRET not in message and SECRET not in repr(error)
        assert client.stats.retries == 0
        # 404 is told apart from "no such reservation" by one GET; nothing is retried
        assert sandbox.request_count - before == (2 if status == 404 and "PATCH" in message else 1)
    assert client.get_reservation(STAYS[0]["_id"]) == STAYS[0]  # reads still work, nothing written
    assert client.list_custom_fields() == [field]
    answer = raw(sandbox, "PATCH", f"booking/reservations/{STAYS[0]['_id']}", json={"type": "booked"})
    assert answer.status_code == status and "message" in answer.json()
    sandbox.refuse_writes(None)
    assert client.update_reservation(STAYS[0]["_id"], stays_type="booked", internal_note="ok")["internalNote"] == "ok"  # type: ignore[index]
    with pytest.raises(ValueError):
        sandbox.refuse_writes(500)


def test_patch_is_retried_on_503_like_a_get(sandbox: StaysSandbox, client: StaysClient) -> None:
    sandbox.fail_next(2, 503, retry_after=0.05)
    answer = client.update_reservation(STAYS[0]["_id"], stays_type="booked", internal_note="after a blip")
    assert answer["internalNote"] == "after a blip"  # type: ignore[index]
    assert client.stats.retries == 2 and sandbox.request_count == 3


def test_patch_gives_up_on_an_outage_and_names_the_endpoint(sandbox: StaysSandbox, client: StaysClient) -> None:
    sandbox.set_outage(True)
    with pytest.raises(StaysError) as caught:
        client.update_reservation(STAYS[0]["_id"], stays_type="booked", internal_note="x")
    assert f"PATCH /booking/reservations/{STAYS[0]['_id']}" in str(caught.value)
    assert "3 attempt" in str(caught.value) and caught.value.status == 503
    sandbox.set_outage(False)
    sandbox.set_html_errors(True)
    with pytest.raises(StaysError, match="not JSON"):
        client.update_reservation(STAYS[0]["_id"], stays_type="booked", internal_note="x")
    with pytest.raises(StaysError, match="not JSON"):
        client.get_listing(LISTINGS[0]["id"])


def test_patch_timeout_is_retried(sandbox: StaysSandbox) -> None:
    sandbox.set_latency(0.4)
    with client_for(sandbox, timeout=0.15, max_attempts=2) as stays_client:
        with pytest.raises(StaysError, match="timed out"):
            stays_client.update_reservation(STAYS[0]["_id"], stays_type="booked", internal_note="slow")
        assert stays_client.stats.requests == 2


def test_creating_a_field_is_not_retried_after_a_503(sandbox: StaysSandbox, client: StaysClient) -> None:
    sandbox.fail_next(1, 503)
    with pytest.raises(StaysError, match="not retried") as caught:
        pin_field(client)
    assert caught.value.status == 503 and sandbox.request_count == 1 and client.stats.retries == 0


def test_creating_a_field_is_not_retried_after_a_timeout(sandbox: StaysSandbox) -> None:
    """The POST reached Stays and may still take effect: retrying could create it twice."""
    sandbox.set_latency(0.4)
    with client_for(sandbox, timeout=0.15) as stays_client:
        with pytest.raises(StaysError, match="timed out.*not retried"):
            pin_field(stays_client)
        assert stays_client.stats.requests == 1
    deadline = time.monotonic() + 3
    while not sandbox.custom_fields() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [f["internalName"] for f in sandbox.custom_fields()] == ["door_pin"]  # it did get created


def test_creating_a_field_is_retried_when_the_connection_never_opened() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = new_sandbox(port=port)
    url = f"http://127.0.0.1:{port}/external/v1"
    later = threading.Timer(0.2, server.start)
    later.start()
    try:
        with StaysClient(url, CLIENT_ID, SECRET, timeout=2, max_attempts=4, backoff_seconds=0.15) as stays_client:
            field = stays_client.create_custom_field(internal_name="door_pin", name="PIN")
            assert stays_client.stats.retries >= 1
        assert [f["_idfield"] for f in server.custom_fields()] == [field["_idfield"]]  # created once
    finally:
        later.join()
        server.stop()


# --- one listing ------------------------------------------------------------------------------------

def test_get_listing_by_id_or_short_id(sandbox: StaysSandbox, client: StaysClient) -> None:
    assert client.get_listing(LISTINGS[1]["_id"]) == LISTINGS[1]
    assert client.get_listing(LISTINGS[1]["id"]) == LISTINGS[1]
    with pytest.raises(StaysNotFound, match="no such listing") as caught:
        client.get_listing("NOPE2")
    assert "GET /content/listings/NOPE2" in str(caught.value) and sandbox.request_count == 3
    with pytest.raises(ValueError):
        client.get_listing("  ")
    sandbox.fail_next(1, 502)
    assert client.get_listing(LISTINGS[2]["id"]) == LISTINGS[2]
    assert client.stats.retries == 1
