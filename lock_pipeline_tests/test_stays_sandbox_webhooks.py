"""The Stays sandbox's webhooks and its /_sandbox admin endpoints, on loopback.

Deliveries go to a tiny real HTTP receiver on 127.0.0.1 (or to the injectable ``deliver``), the
way Stays posts to the URL an account configures; nothing about the sandbox is mocked.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from lock_pipeline.sandbox.seed import Seed, hex_id, listing_record, reservation_record
from lock_pipeline.sandbox.stays_server import WEBHOOK_ACTIONS, StaysSandbox
from lock_pipeline.stays.client import StaysClient

pytestmark = pytest.mark.integration  # sandbox servers on loopback

SECRET = "hook-s3cr3t"
CLIENT_ID = "acme-api-login"
AUTH = (CLIENT_ID, SECRET)
LISTINGS = [listing_record(i, f"Apto {i}", f"Title {i}", "Rua A", str(i), "", "Rio de Janeiro") for i in range(2)]
START = date(2026, 7, 1)


def stay(n: int, *, stays_type: str = "booked", guest: str = "Maria Silva") -> dict:
    return reservation_record(reservation_id=hex_id("hook", n), code=f"H{n:04d}", listing_id=LISTINGS[0]["_id"],
                              check_in=START + timedelta(days=3 * n), check_out=START + timedelta(days=3 * n + 2),
                              stays_type=stays_type, guest_name=guest)


SEEDED = [stay(0), stay(1), stay(2, stays_type="canceled")]


class Receiver:
    """A webhook endpoint on loopback: records every POST; answers the next queued statuses, then 200."""

    def __init__(self, *, hang_seconds: float = 0.0) -> None:
        self.received: list[tuple[dict[str, str], dict]] = []
        self.statuses: list[int] = []
        self.hang_seconds = hang_seconds
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.hang_seconds:
                    receiver.release.wait(receiver.hang_seconds)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/stays/webhook?secret=abc"

    def actions(self) -> list[str]:
        with self._lock:
            return [body["action"] for _, body in self.received]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def make_sandbox(url: str | None = None, **kwargs: object) -> StaysSandbox:
    options: dict = {"client_id": CLIENT_ID, "client_secret": SECRET, "webhook_backoff": 0.05, **kwargs}
    return StaysSandbox(Seed(listings=list(LISTINGS), reservations=[dict(r) for r in SEEDED]), webhook_url=url,
                        **options)


@pytest.fixture
def sandbox(receiver: Receiver) -> Iterator[StaysSandbox]:
    server = make_sandbox(receiver.url).start()
    yield server
    server.stop()


class Collected:
    """The injectable ``deliver``: what an in-process simulator would use instead of a network receiver."""

    def __init__(self, statuses: list[int | Exception] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, str], dict]] = []
        self.statuses = list(statuses or [])

    def __call__(self, url: str, headers: dict[str, str], body: bytes) -> int:
        self.calls.append((url, headers, json.loads(body)))
        outcome = self.statuses.pop(0) if self.statuses else 200
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def actions(self) -> list[str]:
        return [body["action"] for _, _, body in self.calls]


# --- what arrives -------------------------------------------------------------------------------

def test_reservation_life_cycle_arrives_with_stays_headers(sandbox: StaysSandbox, receiver: Receiver) -> None:
    new = stay(10, guest="Rita Alves")
    sandbox.put_reservation(new)
    sandbox.modify_reservation(new["_id"], checkOutDate="2026-08-04")
    sandbox.cancel_reservation(new["_id"])
    sandbox.modify_reservation(new["_id"], type="booked")
    sandbox.delete_reservation(new["_id"])
    assert sandbox.wait_for_webhooks(5)

    assert receiver.actions() == ["client.created", "reservation.created", "reservation.modified",
                                  "reservation.canceled", "reservation.reactivated", "reservation.deleted"]
    bodies = [body for _, body in receiver.received]
    assert bodies[0]["payload"] == {"_id": hex_id("client", "Rita Alves"), "name": "Rita Alves"}
    created, modified = bodies[1]["payload"], bodies[2]["payload"]
    assert created == new
    assert modified["checkOutDate"] == "2026-08-04" and modified["_id"] == new["_id"]
    minimal = {"id": new["id"], "_id": new["_id"], "_idlisting": new["_idlisting"]}
    assert bodies[3]["payload"] == minimal  # a cancel carries only enough to re-fetch
    assert bodies[4]["payload"]["type"] == "booked"
    assert bodies[5]["payload"] == minimal
    for headers, body in receiver.received:
        assert set(body) == {"_dt", "action", "payload"}
        assert body["_dt"].endswith("Z")
        datetime.fromisoformat(body["_dt"].replace("Z", "+00:00"))
        assert headers["x-stays-client-id"] == CLIENT_ID
        assert headers["user-agent"] == "got"
        assert headers["content-type"] == "application/json"
        assert 600 <= len(headers["x-stays-signature"]) <= 800
        base64.b64decode(headers["x-stays-signature"], validate=True)
        assert headers["x-stays-api-hook"] and headers["x-stays-name"]
        assert SECRET not in json.dumps(headers) and SECRET not in json.dumps(body)
    log = sandbox.webhook_log
    assert [entry.action for entry in log] == receiver.actions()
    assert all(entry.status == 200 and entry.attempt == 1 and entry.delivered for entry in log)
    assert [entry.code for entry in log[1:]] == [new["id"]] * 5
    assert [entry.record_id for entry in log[1:]] == [new["_id"]] * 5
    assert [entry.event for entry in log] == sorted(entry.event for entry in log)
    assert all(entry.url == receiver.url for entry in log)


def test_put_reservation_decides_the_action(sandbox: StaysSandbox, receiver: Receiver) -> None:
    first = sandbox.reservations()[0]
    sandbox.put_reservation(first)  # unchanged: nothing to tell
    sandbox.put_reservation({**first, "checkInTime": "17:00"})
    sandbox.put_reservation({**first, "checkInTime": "17:00", "type": "canceled"})
    sandbox.put_reservation({**first, "checkInTime": "17:00", "type": "booked"})
    sandbox.cancel_reservation(SEEDED[2]["_id"])  # already canceled: nothing changes
    assert sandbox.wait_for_webhooks(5)
    assert receiver.actions() == ["reservation.modified", "reservation.canceled", "reservation.reactivated"]
    assert set(receiver.received[1][1]["payload"]) == {"id", "_id", "_idlisting"}


def test_listing_events(sandbox: StaysSandbox, receiver: Receiver) -> None:
    new = listing_record(7, "Casa Nova", "Casa nova", "Rua B", "7", "", "Salvador")
    sandbox.put_listing(new)
    sandbox.put_listing({**new, "status": "inactive"})
    sandbox.put_listing({**new, "status": "inactive"})
    assert sandbox.wait_for_webhooks(5)
    assert receiver.actions() == ["listing.created", "listing.modified"]
    assert receiver.received[1][1]["payload"]["status"] == "inactive"
    assert [entry.code for entry in sandbox.webhook_log] == [new["id"]] * 2
    assert set(receiver.actions()) <= set(WEBHOOK_ACTIONS)


def test_a_new_guest_is_a_new_client_but_a_returning_one_is_not(sandbox: StaysSandbox, receiver: Receiver) -> None:
    sandbox.put_reservation(stay(20, guest="Maria Silva"))  # the seed's guest
    sandbox.put_reservation(stay(21, guest="Novo Hóspede"))
    assert sandbox.wait_for_webhooks(5)
    assert receiver.actions() == ["reservation.created", "client.created", "reservation.created"]


def test_nothing_is_sent_without_a_url_and_the_seed_is_not_news() -> None:
    collected = Collected()
    with make_sandbox(None, deliver=collected) as server:
        server.put_reservation(stay(30))
        server.cancel_reservation(SEEDED[0]["_id"])
        assert server.wait_for_webhooks(1)
        assert collected.calls == [] and server.webhook_log == []
        server.set_webhook_url("http://127.0.0.1:9/hook")
        server.modify_reservation(SEEDED[1]["_id"], checkInTime="13:00")
        assert server.wait_for_webhooks(5)
        assert collected.actions() == ["reservation.modified"]
        server.set_webhook_url(None)
        server.modify_reservation(SEEDED[1]["_id"], checkInTime="14:00")
        assert server.wait_for_webhooks(1)
        assert len(collected.calls) == 1
        with pytest.raises(ValueError, match="http"):
            server.set_webhook_url("ftp://example.com/hook")
    seeded_with_url = Collected()
    with make_sandbox("http://127.0.0.1:9/hook", deliver=seeded_with_url) as server:
        assert server.wait_for_webhooks(1)
    assert seeded_with_url.calls == []


def test_injected_deliver_gets_url_headers_and_body_without_a_network() -> None:
    collected = Collected()
    server = make_sandbox("https://receiver.example/hook", deliver=collected)  # never started: no sockets
    server.put_reservation(stay(40))
    assert server.wait_for_webhooks(5)
    url, headers, body = collected.calls[-1]
    assert url == "https://receiver.example/hook"
    assert headers["x-stays-client-id"] == CLIENT_ID and body["action"] == "reservation.created"
    server.stop()


# --- delivery faults ------------------------------------------------------------------------------

def test_a_500_is_retried_until_the_receiver_takes_it(sandbox: StaysSandbox, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    sandbox.modify_reservation(SEEDED[0]["_id"], checkInTime="16:00")
    assert sandbox.wait_for_webhooks(5)
    assert [(e.attempt, e.status, e.error) for e in sandbox.webhook_log] == [
        (1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 200, None)]
    assert len(receiver.received) == 3
    assert len({json.dumps(body) for _, body in receiver.received}) == 1  # the same event each time


def test_gives_up_after_three_attempts_and_goes_on(sandbox: StaysSandbox, receiver: Receiver) -> None:
    receiver.statuses = [500, 500, 500]
    sandbox.modify_reservation(SEEDED[0]["_id"], checkInTime="16:00")
    sandbox.modify_reservation(SEEDED[1]["_id"], checkInTime="16:00")
    assert sandbox.wait_for_webhooks(5)
    log = sandbox.webhook_log
    assert [(e.record_id, e.attempt, e.status) for e in log] == [
        (SEEDED[0]["_id"], 1, 500), (SEEDED[0]["_id"], 2, 500), (SEEDED[0]["_id"], 3, 500), (SEEDED[1]["_id"], 1, 200)]


def test_connection_errors_and_raising_deliverers_are_logged_and_retried() -> None:
    refused = Receiver()
    url = refused.url
    refused.close()  # nobody listens there any more
    with make_sandbox(url) as server:
        server.modify_reservation(SEEDED[0]["_id"], checkInTime="16:00")
        assert server.wait_for_webhooks(5)
        log = server.webhook_log
        assert [e.attempt for e in log] == [1, 2, 3]
        assert all(e.status is None and "ConnectError" in (e.error or "") for e in log)
    collected = Collected([RuntimeError("receiver exploded"), 200])
    with make_sandbox("http://127.0.0.1:9/hook", deliver=collected) as server:
        server.modify_reservation(SEEDED[0]["_id"], checkInTime="16:00")
        assert server.wait_for_webhooks(5)
        assert [(e.attempt, e.status, e.error) for e in server.webhook_log] == [
            (1, None, "RuntimeError: receiver exploded"), (2, 200, None)]


def test_drop_next_webhooks(sandbox: StaysSandbox, receiver: Receiver) -> None:
    sandbox.drop_next_webhooks(2)
    for n, code_time in enumerate(["16:00", "17:00", "18:00"]):
        sandbox.modify_reservation(SEEDED[n]["_id"], checkInTime=code_time)
    assert sandbox.wait_for_webhooks(5)
    assert [body["payload"]["_id"] for _, body in receiver.received] == [SEEDED[2]["_id"]]
    log = sandbox.webhook_log
    assert [(e.record_id, e.attempt, e.status) for e in log[:2]] == [(SEEDED[0]["_id"], 0, None),
                                                                     (SEEDED[1]["_id"], 0, None)]
    assert "dropped" in (log[0].error or "") and not log[0].delivered


def test_duplicate_next_webhooks(sandbox: StaysSandbox, receiver: Receiver) -> None:
    sandbox.duplicate_next_webhooks(1)
    sandbox.modify_reservation(SEEDED[0]["_id"], checkInTime="16:00")
    sandbox.modify_reservation(SEEDED[1]["_id"], checkInTime="16:00")
    assert sandbox.wait_for_webhooks(5)
    bodies = [body for _, body in receiver.received]
    assert len(bodies) == 3 and bodies[0] == bodies[1] and bodies[2]["payload"]["_id"] == SEEDED[1]["_id"]
    log = sandbox.webhook_log
    assert log[0].event == log[1].event != log[2].event


def test_delay_webhooks_never_blocks_the_data_operation(sandbox: StaysSandbox, receiver: Receiver) -> None:
    sandbox.delay_webhooks(0.4)
    changed_at = datetime.now().astimezone()
    sandbox.modify_reservation(SEEDED[0]["_id"], checkInTime="16:00")
    assert receiver.received == []  # the call returned before the delayed delivery (no timing bound needed)
    assert sandbox.wait_for_webhooks(5)
    assert (sandbox.webhook_log[0].sent_at - changed_at).total_seconds() >= 0.35
    sandbox.delay_webhooks(0)
    sandbox.modify_reservation(SEEDED[0]["_id"], checkInTime="17:00")
    assert sandbox.wait_for_webhooks(5)


def test_a_slow_receiver_never_blocks_the_data_operation() -> None:
    slow = Receiver(hang_seconds=30.0)
    try:
        with make_sandbox(slow.url, webhook_timeout=40.0) as server:
            for n in range(3):
                server.modify_reservation(SEEDED[n]["_id"], checkInTime="16:00")
            # the receiver holds the first delivery until released: had the changes waited for their
            # deliveries, this loop could not have finished before release.set()
            assert len(slow.received) <= 1
            slow.release.set()
            assert server.wait_for_webhooks(5)
            assert len(slow.received) == 3
    finally:
        slow.close()


@pytest.mark.parametrize("reverse", [False, True])
def test_hold_and_release_in_order_or_reversed(sandbox: StaysSandbox, receiver: Receiver, reverse: bool) -> None:
    sandbox.hold_webhooks()
    sandbox.modify_reservation(SEEDED[0]["_id"], checkOutDate="2026-07-04")
    sandbox.cancel_reservation(SEEDED[0]["_id"])
    sandbox.modify_reservation(SEEDED[0]["_id"], type="booked")
    assert not sandbox.wait_for_webhooks(0.3)
    assert receiver.received == []
    sandbox.release_webhooks(reverse=reverse)
    assert sandbox.wait_for_webhooks(5)
    in_order = ["reservation.modified", "reservation.canceled", "reservation.reactivated"]
    assert receiver.actions() == (in_order[::-1] if reverse else in_order)
    events = [e.event for e in sandbox.webhook_log]
    assert events == (sorted(events, reverse=True) if reverse else sorted(events))


def test_stop_does_not_hang_on_a_hung_receiver_or_held_events() -> None:
    hung = Receiver(hang_seconds=30)
    try:
        server = make_sandbox(hung.url, webhook_timeout=0.5).start()
        server.modify_reservation(SEEDED[0]["_id"], checkInTime="16:00")
        deadline = time.monotonic() + 2
        while not hung.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hung.received  # the delivery is in flight, the receiver hangs on it
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 20  # bounded by webhook_timeout, not by the receiver's 30 s hang
    finally:
        hung.close()
    collected = Collected()
    server = make_sandbox("http://127.0.0.1:9/hook", deliver=collected).start()
    server.hold_webhooks()
    server.modify_reservation(SEEDED[0]["_id"], checkInTime="16:00")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 20  # held events do not keep stop() waiting
    server.release_webhooks()
    assert not server.wait_for_webhooks(0.2)  # stopped: nothing is sent
    assert collected.calls == []
    server.start()  # and a restart sends what was queued
    assert server.wait_for_webhooks(5)
    assert collected.actions() == ["reservation.modified"]
    server.stop()


def test_stop_interrupts_a_delay_and_keeps_the_event(receiver: Receiver) -> None:
    server = make_sandbox(receiver.url).start()
    server.delay_webhooks(30)
    server.modify_reservation(SEEDED[0]["_id"], checkInTime="16:00")
    time.sleep(0.1)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 20  # the 30 s delay is interrupted, not waited out
    assert receiver.received == []
    server.delay_webhooks(0)
    server.start()
    assert server.wait_for_webhooks(5)
    assert receiver.actions() == ["reservation.modified"]
    server.stop()


# --- /_sandbox admin endpoints ---------------------------------------------------------------------

def admin(sandbox: StaysSandbox, method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, sandbox.admin_url + path, auth=AUTH, timeout=5, **kwargs)  # type: ignore[arg-type]


def test_admin_books_a_stay_the_client_can_read(sandbox: StaysSandbox, receiver: Receiver) -> None:
    answer = admin(sandbox, "POST", "/reservations", json={
        "listing": LISTINGS[1]["id"], "checkInDate": "2026-09-10", "checkOutDate": "2026-09-13",
        "checkInTime": "14:00", "checkOutTime": "10:00", "guestName": "Ana Souza"})
    assert answer.status_code == 201, answer.text
    booked = answer.json()
    assert len(booked["_id"]) == 24 and int(booked["_id"], 16) >= 0
    assert len(booked["id"]) == 5 and booked["id"].isalnum() and booked["id"].isupper()
    assert booked["_idlisting"] == LISTINGS[1]["_id"] and booked["type"] == "booked"
    assert (booked["checkInDate"], booked["checkInTime"], booked["checkOutDate"], booked["checkOutTime"]) == (
        "2026-09-10", "14:00", "2026-09-13", "10:00")
    assert booked["guestsDetails"]["list"][0]["name"] == "Ana Souza"
    assert set(booked) == set(stay(0))  # the seed's reservation shape
    with StaysClient(sandbox.base_url, CLIENT_ID, SECRET, timeout=2, backoff_seconds=0.01) as client:
        assert client.get_reservation(booked["id"]) == booked
    by_id = admin(sandbox, "POST", "/reservations", json={
        "listing": LISTINGS[0]["_id"], "checkInDate": "2026-09-20", "checkOutDate": "2026-09-21", "type": "reserved"})
    assert by_id.status_code == 201 and by_id.json()["type"] == "reserved"
    assert "checkInTime" not in by_id.json()  # the listing's default time applies
    assert by_id.json()["id"] != booked["id"] and by_id.json()["_id"] != booked["_id"]
    assert sandbox.wait_for_webhooks(5)
    assert receiver.actions() == ["client.created", "reservation.created", "client.created", "reservation.created"]


def test_admin_moves_and_cancels_a_stay(sandbox: StaysSandbox, receiver: Receiver) -> None:
    code = SEEDED[0]["id"]
    moved = admin(sandbox, "PATCH", f"/reservations/{code}", json={"checkOutDate": "2026-07-05", "checkInTime": "12:00"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["checkOutDate"] == "2026-07-05" and moved.json()["checkInTime"] == "12:00"
    cancelled = admin(sandbox, "POST", f"/reservations/{SEEDED[0]['_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["type"] == "canceled"
    assert sandbox.wait_for_webhooks(5)
    assert receiver.actions() == ["reservation.modified", "reservation.canceled"]
    assert [r["type"] for r in sandbox.reservations() if r["id"] == code] == ["canceled"]


@pytest.mark.parametrize(("body", "message"), [
    ({"checkInDate": "2026-09-10", "checkOutDate": "2026-09-12"}, "listing is required"),
    ({"listing": "NOPE0", "checkInDate": "2026-09-10", "checkOutDate": "2026-09-12"}, "not a listing"),
    ({"listing": LISTINGS[0]["id"], "checkOutDate": "2026-09-12"}, "checkInDate is required"),
    ({"listing": LISTINGS[0]["id"], "checkInDate": "10/09/2026", "checkOutDate": "2026-09-12"}, "not a date"),
    ({"listing": LISTINGS[0]["id"], "checkInDate": "2026-09-12", "checkOutDate": "2026-09-12"}, "must be after"),
    ({"listing": LISTINGS[0]["id"], "checkInDate": "2026-09-10", "checkOutDate": "2026-09-12",
      "checkInTime": "25:00"}, "not a time"),
    ({"listing": LISTINGS[0]["id"], "checkInDate": "2026-09-10", "checkOutDate": "2026-09-12",
      "type": "cancelled"}, "type"),
    ({"listing": LISTINGS[0]["id"], "checkInDate": "2026-09-10", "checkOutDate": "2026-09-12",
      "guest": "x"}, "unknown fields guest"),
])
def test_admin_booking_validation(sandbox: StaysSandbox, body: dict, message: str) -> None:
    before = sandbox.reservations()
    answer = admin(sandbox, "POST", "/reservations", json=body)
    assert answer.status_code == 400
    assert message in answer.json()["message"]
    assert sandbox.reservations() == before


def test_admin_errors_and_auth(sandbox: StaysSandbox) -> None:
    assert admin(sandbox, "POST", "/reservations", content=b"not json").status_code == 400
    assert admin(sandbox, "POST", "/reservations", json=[1]).json()["message"] == "the body must be a JSON object"
    assert admin(sandbox, "PATCH", "/reservations/NOPE0", json={"checkInTime": "10:00"}).status_code == 404
    assert admin(sandbox, "POST", "/reservations/NOPE0/cancel").status_code == 404
    bad_move = admin(sandbox, "PATCH", f"/reservations/{SEEDED[0]['id']}", json={"checkOutDate": "2026-06-01"})
    assert bad_move.status_code == 400 and "must be after" in bad_move.json()["message"]
    assert admin(sandbox, "PATCH", f"/reservations/{SEEDED[0]['id']}", json={"type": "canceled"}).status_code == 400
    assert admin(sandbox, "PATCH", f"/reservations/{SEEDED[0]['id']}", json={}).status_code == 400
    assert admin(sandbox, "GET", "/reservations").status_code == 405
    assert admin(sandbox, "GET", "/nothing").status_code == 404
    anonymous = httpx.post(sandbox.admin_url + "/reservations", json={}, timeout=5)
    assert anonymous.status_code == 401


def test_admin_is_not_hit_by_api_faults_and_is_logged(sandbox: StaysSandbox) -> None:
    sandbox.set_outage(True)
    sandbox.refuse_writes(403)
    answer = admin(sandbox, "POST", "/reservations", json={
        "listing": LISTINGS[0]["id"], "checkInDate": "2026-09-10", "checkOutDate": "2026-09-12"})
    assert answer.status_code == 201
    sandbox.set_outage(False)
    sandbox.fail_next(1, 503)
    assert admin(sandbox, "POST", f"/reservations/{answer.json()['id']}/cancel").status_code == 200
    reads = httpx.get(sandbox.base_url + "/content/listings", auth=AUTH, timeout=5)
    assert reads.status_code == 503  # the injected failure is still there for the pipeline's call
    assert ("POST", "/_sandbox/reservations") in sandbox.request_log


def test_admin_sets_the_webhook_url_of_a_running_sandbox(receiver: Receiver) -> None:
    with make_sandbox(None) as server:
        assert admin(server, "GET", "/webhook").json() == {"url": None}
        assert admin(server, "PUT", "/webhook", json={"url": "mailto:x"}).status_code == 400
        assert admin(server, "PUT", "/webhook", json={"url": receiver.url}).json() == {"url": receiver.url}
        admin(server, "POST", "/reservations", json={
            "listing": LISTINGS[0]["id"], "checkInDate": "2026-09-10", "checkOutDate": "2026-09-12"})
        assert server.wait_for_webhooks(5)
        assert receiver.actions()[-1] == "reservation.created"
