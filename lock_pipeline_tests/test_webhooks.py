"""Stays webhooks end to end: the sandbox POSTs to the real receiver (Starlette on uvicorn), the real
sensor launches the real job, and the lock agrees; forged, oversized and malformed bodies change nothing."""

from __future__ import annotations

import json
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import text

from lock_pipeline.sandbox.seed import hex_id, reservation_record
from lock_pipeline.stays.receiver import webhook_url
from lock_pipeline.stays.webhooks import MAX_BODY_BYTES
from lock_pipeline_tests.harness import Harness, World, local
from season.driver import WEBHOOK_TOKEN as TOKEN

D0 = date(2026, 11, 24)  # Tuesday


@pytest.fixture
def h(database_url, tmp_path):
    world = World()
    listing, _lock = world.listing(1, "Vila Madalena 81")
    world.listing(2, "Pompéia 82")
    world.stay("INHSE", listing, D0 - timedelta(days=1), D0 + timedelta(days=1))
    harness = Harness(database_url, world, tmp_path, local(D0, 9), webhooks=True)
    harness.step(local(D0, 9))
    yield harness
    harness.close()


def listing_id(h: Harness, index: int) -> str:
    return h.stays.listings()[index]["_id"]


def webhooks(h: Harness) -> list:
    with h.engine.connect() as conn:
        return conn.execute(text("SELECT webhook_id, state, action, reason, reservation_ref, last_error "
                                 "FROM pipeline.stays_webhooks ORDER BY webhook_id")).all()


def book(h: Harness, code: str, index: int, check_in: date, nights: int = 2, **fields) -> dict:
    record = reservation_record(reservation_id=hex_id("wh", code), code=code, listing_id=listing_id(h, index),
                                check_in=check_in, check_out=check_in + timedelta(days=nights))
    record.update(fields)
    h.stays.put_reservation(record)
    return record


def test_a_last_minute_booking_gets_its_pin_from_the_webhook_run_without_a_sync(h):
    h.move_to(local(D0, 14))
    book(h, "LASTM", 1, D0)  # arrives today 15:00: access opened at 13:00
    [run] = h.deliver_webhooks()
    assert run.success and run.dagster_run.tags["lock_pipeline/webhooks"]
    assert h.state_of("LASTM") == "active"  # created and confirmed in the webhook's own run
    [(device, pin)] = h.pins_of("LASTM")
    assert h.tuya.would_open(device, pin, h.now)
    [row] = [w for w in webhooks(h) if w.action == "reservation.created"]
    assert row.state == "applied" and "booked via webhook" in row.reason
    with h.engine.connect() as conn:
        history = conn.execute(text("SELECT action, outcome, detail FROM admin.access_history "
                                    "WHERE reservation_code = 'LASTM' ORDER BY at")).all()
    assert history[0].action == "stays_webhook" and "booked via webhook (reservation.created received" in history[0].detail
    assert [h.action for h in history[1:]] == ["generate", "confirm"]


def test_a_cancellation_revokes_the_pin_from_its_minimal_payload(h):
    h.move_to(local(D0, 14))
    stay = h.stays.reservations()[0]  # INHSE, in the house with its PIN
    [(device, pin)] = h.pins_of("INHSE")
    h.stays.cancel_reservation(stay["_id"])  # the webhook carries only id, _id and _idlisting
    [run] = h.deliver_webhooks()
    assert run.success and h.state_of("INHSE") == "revoked"
    assert not h.tuya.would_open(device, pin, h.now)


def test_a_change_a_duplicate_and_an_out_of_order_pair_change_nothing_twice(h):
    h.move_to(local(D0, 14))
    record = book(h, "DUPLI", 1, D0 + timedelta(days=1))
    h.deliver_webhooks()
    h.stays.duplicate_next_webhooks(1)
    h.stays.modify_reservation(record["_id"], checkOutDate=(D0 + timedelta(days=4)).isoformat())
    h.deliver_webhooks()
    created = [w for w in webhooks(h) if w.action == "reservation.modified"]
    assert len(created) == 1  # the second delivery of the same body was answered "duplicate", not stored again
    assert any(d.status == 200 for d in h.stays.webhook_log if d.action == "reservation.modified")
    # Two changes delivered in reverse order: the re-fetch always reads Stays' current state.
    h.stays.hold_webhooks()
    h.stays.modify_reservation(record["_id"], checkOutDate=(D0 + timedelta(days=5)).isoformat())
    h.stays.modify_reservation(record["_id"], checkOutDate=(D0 + timedelta(days=6)).isoformat())
    h.stays.release_webhooks(reverse=True)
    h.deliver_webhooks()
    with h.engine.connect() as conn:
        stored = conn.execute(text("SELECT check_out_date FROM pipeline.reservations WHERE code = 'DUPLI'")).scalar()
    assert stored == D0 + timedelta(days=6)
    [(device, pin)] = set(h.pins_of("DUPLI"))  # one PIN, moved in place each time
    assert h.tuya.would_open(device, pin, local(D0 + timedelta(days=5), 12))


def test_a_payload_that_lies_about_dates_loses_to_the_fetched_reservation(h):
    h.move_to(local(D0, 14))
    stay = h.stays.reservations()[0]
    lie = {"_dt": "2026-11-24T17:00:00Z", "action": "reservation.modified",
           "payload": {**stay, "checkOutDate": "2027-12-31", "checkInDate": "2026-01-01"}}
    answer = httpx.post(h.webhook_url, json=lie, headers={"x-stays-client-id": h.stays.client_id})
    assert answer.status_code == 200 and answer.json()["status"] == "pending"
    h.deliver_webhooks()
    with h.engine.connect() as conn:
        check_out = conn.execute(text("SELECT check_out_date FROM pipeline.reservations WHERE code = 'INHSE'")).scalar()
    assert check_out == D0 + timedelta(days=1)  # what Stays says, not what the body claimed


@pytest.mark.parametrize("case, status", [
    ("wrong token", 404), ("wrong client id", 403), ("no client id", 403), ("oversized", 413),
    ("not json", 400), ("not a webhook", 400), ("no reservation id", 400),
])
def test_forged_oversized_and_malformed_webhooks_get_a_clear_4xx_and_change_nothing(h, case, status):
    url, headers = h.webhook_url, {"x-stays-client-id": h.stays.client_id, "content-type": "application/json"}
    body = json.dumps({"_dt": "2026-11-24T17:00:00Z", "action": "reservation.canceled",
                       "payload": {"_id": h.stays.reservations()[0]["_id"]}}).encode()
    if case == "wrong token":
        url = webhook_url(url.split("/stays/")[0], "x" * 40)
    elif case == "wrong client id":
        headers["x-stays-client-id"] = "someone-else"
    elif case == "no client id":
        del headers["x-stays-client-id"]
    elif case == "oversized":
        body = b'{"action": "reservation.created", "payload": {"pad": "' + b"x" * MAX_BODY_BYTES + b'"}}'
    elif case == "not json":
        body = b"<html>hello</html>"
    elif case == "not a webhook":
        body = b'{"hello": "world"}'
    elif case == "no reservation id":
        body = b'{"action": "reservation.canceled", "payload": {"_idlisting": "x"}}'
    before = h.state_of("INHSE")
    answer = httpx.post(url, content=body, headers=headers)
    assert answer.status_code == status and answer.json()["error"]
    assert TOKEN not in answer.text
    [row] = webhooks(h)
    assert row.state == "rejected" and row.reservation_ref is None  # a row nobody has to read, nothing to act on
    assert h.deliver_webhooks() == [] and h.state_of("INHSE") == before == "active"


def test_an_action_the_pipeline_does_not_know_is_kept_ignored_and_answered_2xx(h):
    answer = httpx.post(h.webhook_url, json={"_dt": "2026-11-24T17:00:00Z", "action": "client.created",
                                     "payload": {"_id": "abc"}}, headers={"x-stays-client-id": h.stays.client_id})
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"
    [row] = webhooks(h)
    assert row.state == "ignored" and h.deliver_webhooks() == []


def test_with_the_receiver_down_the_next_sync_catches_up_and_a_silent_feed_is_flagged(h):
    h.move_to(local(D0, 14))
    h.stop_receiver()  # the receiver is down: Stays' deliveries fail
    book(h, "NOHOK", 1, D0 + timedelta(days=1))
    h.stays.wait_for_webhooks(10)
    assert webhooks(h) == []
    h.step(local(D0, 14, 30))  # the 30-minute sync (safety net)
    assert h.state_of("NOHOK") == "active"
    h.start_receiver()
    book(h, "HEARD", 1, D0 + timedelta(days=5))
    h.deliver_webhooks()  # the feed works again...
    h.stop_receiver()
    for day, code in ((1, "SILN1"), (2, "SILN2")):  # ...then goes silent while bookings keep coming
        book(h, code, 1, D0 + timedelta(days=6 + day))
        h.step(local(D0, 15 + day))
    issues = {row["issue"] for row in h.attention()}
    assert "webhooks_silent" in issues


def test_a_webhook_that_cannot_be_applied_shows_until_a_sync_catches_up(h):
    h.move_to(local(D0, 14))
    book(h, "FAILD", 1, D0 + timedelta(days=1))
    h.stays.set_outage(True)  # Stays' API is down when the re-fetch happens
    try:
        assert h.stays.wait_for_webhooks(10)
        h.deliver_webhooks()
    finally:
        h.stays.set_outage(False)
    [row] = [w for w in webhooks(h) if w.action == "reservation.created"]
    assert row.state == "failed" and "nothing changed" in row.last_error
    assert "webhook_failed" in {r["issue"] for r in h.attention()}
    h.step(local(D0, 14, 30))
    assert "webhook_failed" not in {r["issue"] for r in h.attention()} and h.state_of("FAILD") == "active"
