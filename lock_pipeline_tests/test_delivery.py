"""The code reaches the guest: write-back to the Stays reservation and signed notifications, end to end.

Real Postgres, the sandbox Stays and Tuya servers, the real sensors and jobs on a controlled clock,
and the real notification receiver (``lock-pipeline sandbox notifications``), which verifies every
event with the standardwebhooks library's own verifier. No client is mocked.
"""

from __future__ import annotations

import base64
from datetime import date, timedelta

import pytest
from sqlalchemy import text
from standardwebhooks import Webhook

from lock_pipeline.sandbox.notifications import NotificationReceiver
from lock_pipeline_tests.harness import Harness, World, local

D0 = date(2026, 11, 24)  # Tuesday
SECRET = "whsec_" + base64.b64encode(b"lock-pipeline-test-secret-32byte").decode()
WRITE_BACK = {"LOCK_PIPELINE_STAYS_WRITE_BACK": "pin"}


@pytest.fixture
def receiver():
    server = NotificationReceiver(SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def made(made):
    def make(world: World, start, **env: str) -> Harness:
        h = made(world, start, **env)
        h.use_step_retry_delay(0.01)  # the same 3 step retries, without waiting out 2 s, 4 s, 8 s
        return h

    return make


def notify_env(receiver: NotificationReceiver, **more: str) -> dict[str, str]:
    return {"LOCK_PIPELINE_NOTIFY_URL": receiver.url, "LOCK_PIPELINE_NOTIFY_SECRET": SECRET, **more}


def deliver_all(h: Harness, rounds: int = 5) -> list:
    """Delivery runs until nothing more is due now (a stay's later events wait behind its earlier ones)."""
    runs = []
    for _ in range(rounds):
        launched = h.deliver()
        if not launched:
            break
        assert all(run.success for run in launched)
        runs.extend(launched)
    return runs


def stays_field(h: Harness, code: str, name: str = "door_code") -> str | None:
    """What the sandbox's GET /booking/reservations/{code} shows in the door-code field (None: never written)."""
    [field] = [f for f in h.stays.custom_fields() if f["internalName"] == name] or [None]
    with _client(h) as client:
        reservation = client.get_reservation(code)
    if field is None:
        return None
    values = {v["_idfield"]: v["val"] for v in reservation.get("appCustomFields") or []}
    return values.get(field["_idfield"])


def _client(h: Harness):
    from lock_pipeline.stays.client import StaysClient
    from season.driver import STAYS_CLIENT_ID, STAYS_CLIENT_SECRET

    return StaysClient(h.stays.base_url, STAYS_CLIENT_ID, STAYS_CLIENT_SECRET, timeout=10)


def writes(h: Harness) -> list[tuple[str, str]]:
    """The write requests the Stays sandbox received (PATCH a reservation, POST a custom field)."""
    return [(method, target) for method, target in h.stays.request_log if method in ("PATCH", "POST", "DELETE")]


def outbox(h: Harness, code: str) -> list:
    with h.engine.connect() as conn:
        return conn.execute(text("""
            SELECT o.event_type, o.channel, o.state, o.attempts, o.event_id, o.last_error
            FROM pipeline.delivery_outbox o JOIN pipeline.reservations r USING (reservation_id)
            WHERE r.code = :c ORDER BY o.outbox_id"""), {"c": code}).all()


def delivery(h: Harness, code: str) -> tuple[str, object]:
    with h.engine.connect() as conn:
        row = conn.execute(text("SELECT delivery_state, delivered_at FROM admin.reservations "
                                "WHERE reservation_code = :c"), {"c": code}).one()
    return row.delivery_state, row.delivered_at


def issues(h: Harness) -> list[tuple[str, str | None]]:
    return [(row["issue"], row["reservation_code"]) for row in h.attention()]


def only_pin(h: Harness, code: str) -> str:
    [(_device, pin)] = h.pins_of(code)
    return pin


# ====================================================================== write-back to Stays

def test_an_active_pin_is_written_to_its_stays_reservation_once(made):
    world = World()
    listing, _lock = world.listing(1, "Vila Madalena 81")
    world.stay("WRITE", listing, D0, D0 + timedelta(days=2))
    h = made(world, local(D0, 9), **WRITE_BACK)
    h.step(local(D0, 9))
    assert h.state_of("WRITE") == "active" and delivery(h, "WRITE") == ("pending", None)
    assert stays_field(h, "WRITE") is None  # nothing is written by the PIN runs themselves
    [run] = deliver_all(h)
    assert run.dagster_run.job_name == "deliver_codes_job" and run.dagster_run.tags["lock_pipeline/stay.WRITE"] == "code.active"
    assert stays_field(h, "WRITE") == only_pin(h, "WRITE")
    [field] = h.stays.custom_fields()
    assert (field["internalName"], field["type"], field["target"]) == ("door_code", "text", "reservation")
    state, delivered_at = delivery(h, "WRITE")
    assert state == "delivered" and delivered_at == h.now
    assert [(e.event_type, e.channel, e.state) for e in outbox(h, "WRITE")] == [("code.active", "stays_field", "delivered")]
    # The reservation kept its type: the PATCH carried the one just read.
    assert next(r for r in h.stays.reservations() if r["id"] == "WRITE")["type"] == "booked"
    before = len(writes(h))
    h.step(local(D0, 9, 30))
    assert deliver_all(h) == [] and len(writes(h)) == before  # idempotent: nothing new, nothing written


def test_new_digits_are_rewritten_and_a_cancellation_clears_the_field(made):
    world = World()
    listing, lock = world.listing(1, "Santa Cecília 74")
    stay = world.stay("STUCK", listing, D0, D0 + timedelta(days=2))
    h = made(world, local(D0, 14), **WRITE_BACK)
    h.step(local(D0, 14))
    deliver_all(h)
    [(_, old_pin)] = h.pins_of("STUCK")
    assert stays_field(h, "STUCK") == old_pin
    h.tuya.set_modify_supported(lock, False)  # the lock will not move the PIN: new digits
    h.stays.modify_reservation(stay["_id"], checkOutDate=(D0 + timedelta(days=3)).isoformat())
    h.step(local(D0, 14, 30))
    h.step(local(D0, 15))
    new_pin = next(pin for _, pin in h.pins_of("STUCK") if pin != old_pin)
    deliver_all(h)
    assert stays_field(h, "STUCK") == new_pin  # the old code's revoke did not clear the new digits
    assert [(e.event_type, e.state) for e in outbox(h, "STUCK")] == [("code.active", "delivered"),
                                                                    ("code.changed", "delivered")]
    assert delivery(h, "STUCK")[0] == "delivered"
    h.stays.cancel_reservation(stay["_id"])
    h.step(local(D0, 15, 30))
    assert h.state_of("STUCK") == "revoked"
    deliver_all(h)
    assert stays_field(h, "STUCK") == ""  # cleared, not deleted
    assert outbox(h, "STUCK")[-1][:3] == ("code.revoked", "stays_field", "delivered")


def test_a_move_keeps_the_digits_and_the_end_of_the_stay_clears_the_field(made):
    world = World()
    listing, _lock = world.listing(1, "Consolação 71")
    stay = world.stay("MOVED", listing, D0, D0 + timedelta(days=2))
    h = made(world, local(D0, 14), **WRITE_BACK)
    h.step(local(D0, 14))
    deliver_all(h)
    pin = only_pin(h, "MOVED")
    h.stays.modify_reservation(stay["_id"], checkOutDate=(D0 + timedelta(days=3)).isoformat())
    h.step(local(D0, 14, 30))  # moved in place (same digits), then confirmed: announced again with the new window
    deliver_all(h)
    events = outbox(h, "MOVED")
    assert [(e.event_type, e.state) for e in events] == [("code.active", "delivered"), ("code.active", "delivered")]
    assert stays_field(h, "MOVED") == pin
    h.step(local(D0 + timedelta(days=3), 11, 30))  # after check-out: revoked at the end of access
    deliver_all(h)
    assert h.state_of("MOVED") == "revoked" and stays_field(h, "MOVED") == ""


@pytest.mark.parametrize("status", [403, 404])
def test_an_account_that_may_not_write_stops_write_back_with_one_alert_and_no_retry_storm(made, status):
    world = World()
    l1, _ = world.listing(1, "Perdizes 33")
    l2, _ = world.listing(2, "Pompéia 82")
    l3, _ = world.listing(3, "Lapa 83")
    world.stay("FIRST", l1, D0, D0 + timedelta(days=2))
    h = made(world, local(D0, 9), **WRITE_BACK)
    h.step(local(D0, 9))
    deliver_all(h)
    assert stays_field(h, "FIRST") == only_pin(h, "FIRST")  # the field exists: the refusal hits the PATCH
    h.stays.refuse_writes(status)
    for code, listing in (("REFU1", l2), ("REFU2", l3)):
        world_stay = World().stay(code, listing, D0 + timedelta(days=1), D0 + timedelta(days=3))
        h.stays.put_reservation(world_stay)
    h.step(local(D0, 9, 30))
    written = len(writes(h))
    deliver_all(h)
    assert len(writes(h)) == written + 1  # one refused PATCH, then the channel stopped: not one per stay
    [alert] = [row for row in h.attention() if row["issue"] == "delivery_failed"]
    assert f"HTTP {status}" in alert["what_to_do"] and "LOCK_PIPELINE_STAYS_WRITE_BACK=off" in alert["what_to_do"]
    for minutes in (10, 20, 40):  # the sensor keeps ticking: nothing is tried before the hourly probe
        h.move_to(local(D0, 9, 30) + timedelta(minutes=minutes))
        assert deliver_all(h) == []
    assert len(writes(h)) == written + 1
    assert {e.state for code in ("REFU1", "REFU2") for e in outbox(h, code)} == {"pending"}  # nothing lost
    assert delivery(h, "REFU1")[0] == "failed"
    h.move_to(local(D0, 10, 31))  # the probe: still refused, one more write, still one alert
    deliver_all(h)
    assert len(writes(h)) == written + 2 and len([i for i in issues(h) if i[0] == "delivery_failed"]) == 1
    h.stays.refuse_writes(None)  # someone granted write access
    h.move_to(local(D0, 11, 32))
    deliver_all(h)
    assert stays_field(h, "REFU1") == only_pin(h, "REFU1") and stays_field(h, "REFU2") == only_pin(h, "REFU2")
    assert "delivery_failed" not in {i[0] for i in issues(h)}
    assert delivery(h, "REFU2")[0] == "delivered"


# ====================================================================== signed notifications

def test_a_notification_is_signed_verified_and_names_the_stay_without_the_pin(made, receiver):
    world = World()
    listing, lock = world.listing(1, "Bela Vista 22")
    world.stay("NOTE1", listing, D0, D0 + timedelta(days=2), guest="Ana Lima")
    h = made(world, local(D0, 9), **notify_env(receiver))
    h.step(local(D0, 9))
    deliver_all(h)
    [got] = receiver.taken
    event = Webhook(SECRET).verify(got.body, got.headers)  # the library's own verifier, again
    assert event == got.event and event["type"] == "code.active"
    assert got.webhook_id == outbox(h, "NOTE1")[0].event_id
    data = event["data"]
    assert data["reservation_code"] == "NOTE1" and data["listing"] == "Bela Vista 22" and data["lock_id"] == lock
    assert data["access_from"] == local(D0, 13).isoformat() and data["access_until"] == local(D0 + timedelta(days=2), 11).isoformat()
    assert data["read_pin_with"] == "lock-pipeline pin show NOTE1" and data["pin_included"] is False
    assert "pin" not in data and only_pin(h, "NOTE1") not in got.body.decode()
    assert event["timestamp"] == "2026-11-24T12:00:00Z"  # when the lock took it (the pipeline's clock)
    with pytest.raises(Exception):
        Webhook("whsec_" + base64.b64encode(b"another-secret-another-secret-32").decode()).verify(got.body, got.headers)


def test_the_pin_is_in_the_body_only_when_the_operator_switches_it_on(made, receiver):
    world = World()
    listing, _ = world.listing(1, "Liberdade 73")
    world.stay("NOTE2", listing, D0, D0 + timedelta(days=2))
    h = made(world, local(D0, 9), **notify_env(receiver, LOCK_PIPELINE_NOTIFY_INCLUDE_PIN="true"), **WRITE_BACK)
    h.step(local(D0, 9))
    deliver_all(h)
    [event] = receiver.events()
    assert event["data"]["pin"] == only_pin(h, "NOTE2") and "read_pin_with" not in event["data"]
    assert stays_field(h, "NOTE2") == only_pin(h, "NOTE2")
    assert sorted(e.channel for e in outbox(h, "NOTE2")) == ["notify", "stays_field"]
    assert len({e.event_id for e in outbox(h, "NOTE2")}) == 1  # one event, two channels


def test_a_receiver_that_is_down_then_back_loses_nothing_and_retries_with_the_same_id(made, receiver):
    world = World()
    listing, _ = world.listing(1, "Aclimação 75")
    stay = world.stay("DOWN1", listing, D0, D0 + timedelta(days=2))
    h = made(world, local(D0, 9), **notify_env(receiver))
    receiver.stop()
    h.step(local(D0, 9))
    deliver_all(h)
    [row] = outbox(h, "DOWN1")
    assert (row.state, row.attempts) == ("failed", 1) and "could not reach" in row.last_error
    assert ("delivery_failed", "DOWN1") in issues(h)
    assert deliver_all(h) == []  # not due before its back-off (1 min)
    h.stays.cancel_reservation(stay["_id"])  # a second event of the stay, queued behind the first
    h.step(local(D0, 9, 1))
    assert h.state_of("DOWN1") == "revoked"
    deliver_all(h)
    assert [(e.event_type, e.state, e.attempts) for e in outbox(h, "DOWN1")] == [("code.active", "failed", 2),
                                                                                ("code.revoked", "pending", 0)]
    receiver.start()  # back, on the same port; it takes the first attempt but answers 500
    receiver.fail_next(1, 500)
    h.move_to(local(D0, 9, 4))
    deliver_all(h)
    h.move_to(local(D0, 9, 9))
    deliver_all(h)
    assert [(e.event_type, e.state) for e in outbox(h, "DOWN1")] == [("code.active", "delivered"),
                                                                    ("code.revoked", "delivered")]
    assert [r.event["type"] for r in receiver.received] == ["code.active", "code.active", "code.revoked"]
    first, retried, revoked = receiver.received
    assert first.status == 500 and retried.webhook_id == first.webhook_id  # a retry is recognisable
    assert [e["type"] for e in receiver.events()] == ["code.active", "code.revoked"]  # in order, none lost
    assert revoked.webhook_id != first.webhook_id
    assert "delivery_failed" not in {i[0] for i in issues(h)}


def test_delivery_states_and_the_alerts_when_every_channel_gives_up(made, receiver):
    world = World()
    listing, _ = world.listing(1, "Paraíso 76")
    world.stay("GIVUP", listing, D0 + timedelta(days=1), D0 + timedelta(days=4))  # arrives tomorrow 15:00
    h = made(world, local(D0, 9), **notify_env(receiver))
    receiver.stop()
    h.step(local(D0, 9))
    assert h.state_of("GIVUP") == "active" and delivery(h, "GIVUP") == ("pending", None)
    minutes = 0
    while outbox(h, "GIVUP")[0].state != "dead":
        minutes += 120
        assert minutes <= 26 * 60, "the row never gave up"
        h.move_to(local(D0, 9) + timedelta(minutes=minutes))
        deliver_all(h)
    [row] = outbox(h, "GIVUP")
    assert row.attempts > 5 and delivery(h, "GIVUP")[0] == "failed"
    found = issues(h)
    assert ("code_not_delivered_arrival_soon", "GIVUP") in found
    [alert] = [r for r in h.attention() if r["issue"] == "delivery_failed"]
    assert "gave up after 24 h" in alert["what_to_do"] and "GIVUP" in alert["reservation_code"]


def test_without_a_channel_nothing_is_queued_and_the_state_says_so(made):
    world = World()
    listing, _ = world.listing(1, "Sé 97")
    world.stay("PLAIN", listing, D0, D0 + timedelta(days=2))
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    assert h.state_of("PLAIN") == "active" and delivery(h, "PLAIN") == ("not_configured", None)
    assert outbox(h, "PLAIN") == [] and h.deliver() == []
    assert "code_not_delivered_arrival_soon" not in {i[0] for i in issues(h)}


def test_a_failed_pin_is_announced_once_with_its_reason(made, receiver):
    world = World()
    listing, _ = world.listing(1, "Brás 98")
    world.stay("FAILS", listing, D0, D0 + timedelta(days=2))
    h = made(world, local(D0, 9), **notify_env(receiver))
    h.move_to(local(D0, 9))
    h.sync()
    h.tuya.inject("server_error", count=1000, path_contains="temp-password")
    [run] = h.tick()
    assert not run.success
    h.move_to(local(D0, 9, 20))
    h.tick()  # retried on its schedule (15 min), failing again: not announced again
    deliver_all(h)
    assert [e["type"] for e in receiver.events()] == ["code.failed"]
    data = receiver.events()[0]["data"]
    assert data["reservation_code"] == "FAILS" and "500" in data["reason"] and "pin" not in data
    h.tuya.clear_faults()
    h.move_to(local(D0, 10, 25))  # the next retry on its schedule (1 h after the second failure)
    h.tick()
    h.tick()
    deliver_all(h)
    assert [e["type"] for e in receiver.events()] == ["code.failed", "code.active"]


# ====================================================================== settings and the local receiver

@pytest.mark.parametrize("env, expected", [
    ({"LOCK_PIPELINE_NOTIFY_URL": "http://automation.example.com/x", "LOCK_PIPELINE_NOTIFY_SECRET": SECRET},
     "use https://"),
    ({"LOCK_PIPELINE_NOTIFY_URL": "ftp://127.0.0.1/x", "LOCK_PIPELINE_NOTIFY_SECRET": SECRET}, "not an http(s) URL"),
    ({"LOCK_PIPELINE_NOTIFY_URL": "https://automation.example.com/x"}, "LOCK_PIPELINE_NOTIFY_SECRET is not"),
    ({"LOCK_PIPELINE_NOTIFY_URL": "https://a.example.com/x", "LOCK_PIPELINE_NOTIFY_SECRET": "hunter2"},
     "new-notify-secret"),
    ({"LOCK_PIPELINE_NOTIFY_URL": "https://a.example.com/x", "LOCK_PIPELINE_NOTIFY_SECRET": "whsec_c2hvcnQ="},
     "24 to 64"),
    ({"LOCK_PIPELINE_NOTIFY_SECRET": SECRET}, "LOCK_PIPELINE_NOTIFY_URL is not"),
    ({"LOCK_PIPELINE_STAYS_WRITE_BACK": "yes"}, "not one of off, pin"),
    ({"LOCK_PIPELINE_STAYS_PIN_FIELD": "door code"}, "LOCK_PIPELINE_STAYS_PIN_FIELD"),
    ({"LOCK_PIPELINE_NOTIFY_INCLUDE_PIN": "sometimes"}, "not true or false"),
])
def test_a_wrong_delivery_setting_stops_the_start_with_the_fix(env, expected):
    from lock_pipeline.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as error:
        load_settings(env)
    assert expected in str(error.value)


@pytest.mark.parametrize("url", ["https://automation.example.com/hooks/locks", "http://127.0.0.1:8787/x",
                                 "http://localhost:8787/x", "http://[::1]:8787/x"])
def test_https_or_loopback_notification_urls_are_accepted(url):
    from lock_pipeline.settings import load_settings

    settings = load_settings({"LOCK_PIPELINE_NOTIFY_URL": url, "LOCK_PIPELINE_NOTIFY_SECRET": SECRET,
                              "LOCK_PIPELINE_STAYS_WRITE_BACK": "pin"})
    assert settings.delivery_channels == ("stays_field", "notify")
    assert "LOCK_PIPELINE_NOTIFY_SECRET" not in settings.environment()  # never shown in the UI


@pytest.mark.integration
def test_the_sandbox_receiver_command_prints_each_event_it_verified(capfd):
    """`lock-pipeline sandbox notifications` as a reader runs it: a signed event is printed, a forged one is not."""
    import socket
    import subprocess
    import sys

    from lock_pipeline.cli import main
    from lock_pipeline.delivery.notify import Notifier, NotifyFailed

    assert main(["new-notify-secret"]) == 0
    fresh = capfd.readouterr().out.strip()
    assert fresh.startswith("whsec_") and Webhook(fresh)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "lock_pipeline.cli", "sandbox", "notifications", "--port",
                                str(port), "--secret", SECRET], stdout=subprocess.PIPE, text=True)
    try:
        assert "receiving signed code events on" in process.stdout.readline()  # listening
        url = f"http://127.0.0.1:{port}/lock-pipeline/events"
        body = '{"type":"code.active","timestamp":"2026-11-24T12:00:00Z","data":{"reservation_code":"EV23J"}}'
        with Notifier(url, fresh) as forged:  # signed with another secret: refused, not printed
            with pytest.raises(NotifyFailed, match="HTTP 401"):
                forged.send("msg_forged", body)
        with Notifier(url, SECRET) as notifier:
            assert notifier.send("msg_one", body) == 204
        line = process.stdout.readline()
        assert line.startswith("verified code.active for EV23J") and "msg_one" in line and "msg_forged" not in line
    finally:
        process.terminate()
        process.wait(timeout=30)


# ====================================================================== the backup code's way in, a field deleted in Stays

def test_a_backup_code_is_delivered_beside_the_online_one_and_cleared_with_it(made, receiver):
    """What the offline-code work calls: enqueue_code_event(code.backup_issued) with the digits encrypted."""
    from lock_pipeline.delivery.outbox import enqueue_code_event
    from lock_pipeline.vocabulary import CodeEvent

    world = World()
    listing, lock = world.listing(1, "Trancoso 99")
    stay = world.stay("BACKU", listing, D0, D0 + timedelta(days=2))
    h = made(world, local(D0, 9), **notify_env(receiver, LOCK_PIPELINE_NOTIFY_INCLUDE_PIN="true"), **WRITE_BACK)
    h.step(local(D0, 9))
    deliver_all(h)
    online = only_pin(h, "BACKU")
    with h.engine.begin() as conn:
        code_id, reservation_id = conn.execute(text(
            "SELECT code_id, reservation_id FROM pipeline.access_codes")).one()
        enqueue_code_event(conn, event=CodeEvent.BACKUP_ISSUED, reservation_id=reservation_id, code_id=code_id,
                           device_id=lock, valid_from=local(D0, 13), valid_until=local(D0 + timedelta(days=2), 11),
                           channels=h.settings.delivery_channels, now=h.now, pin_ciphertext=h.vault.encrypt("93817264"))
    deliver_all(h)
    assert stays_field(h, "BACKU") == f"{online} (backup: 93817264)"
    backup = receiver.events()[-1]
    assert backup["type"] == "code.backup_issued" and backup["data"]["pin"] == "93817264"
    with h.engine.connect() as conn:
        stored = conn.execute(text("SELECT string_agg(encode(pin_ciphertext, 'escape'), '') FROM pipeline.delivery_outbox"))
        assert "93817264" not in (stored.scalar() or "")  # encrypted at rest, like the code rows
    h.stays.cancel_reservation(stay["_id"])
    h.step(local(D0, 9, 30))
    deliver_all(h)
    assert stays_field(h, "BACKU") == "" and receiver.events()[-1]["type"] == "code.revoked"


def test_a_field_deleted_in_stays_is_found_or_created_again(made):
    import httpx

    world = World()
    l1, _ = world.listing(1, "Lapa 61")
    l2, _ = world.listing(2, "Lapa 62")
    world.stay("FLD01", l1, D0, D0 + timedelta(days=2))
    h = made(world, local(D0, 9), **WRITE_BACK)
    h.step(local(D0, 9))
    deliver_all(h)
    [field] = h.stays.custom_fields()
    from season.driver import STAYS_CLIENT_ID, STAYS_CLIENT_SECRET

    deleted = httpx.delete(f"{h.stays.base_url}/settings/app/custom-fields/{field['_idfield']}",
                           auth=(STAYS_CLIENT_ID, STAYS_CLIENT_SECRET))
    assert deleted.status_code == 200 and h.stays.custom_fields() == []
    h.stays.put_reservation(World().stay("FLD02", l2, D0, D0 + timedelta(days=2)))
    h.step(local(D0, 9, 30))
    deliver_all(h)
    [again] = h.stays.custom_fields()
    assert again["_idfield"] != field["_idfield"] and stays_field(h, "FLD02") == only_pin(h, "FLD02")
    assert outbox(h, "FLD02")[0].state == "delivered"


def test_a_backup_code_the_pipeline_issues_reaches_the_guest_and_leaves_the_attention_list(made, receiver):
    """The executor queues code.backup_issued in the transaction that records the offline code; once a channel
    delivered it, admin.attention no longer asks a person to give it to the guest."""
    world = World()
    listing, lock = world.listing(1, "Caraíva 12", online=False)
    world.stay("BKDLV", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))  # access 25/11 13:00
    h = made(world, local(D0, 9), **notify_env(receiver, LOCK_PIPELINE_NOTIFY_INCLUDE_PIN="true"))
    h.step(local(D0, 9))
    h.step(local(D0 + timedelta(days=1), 10, 30))  # within 3 h of access, the PIN still not on the offline lock
    [offline] = [c for c in h.tuya.offline_codes(lock) if c.kind == "multiple"]
    assert "backup_code_issued" in {issue for issue, _code in issues(h)}
    deliver_all(h)
    sent = [e for e in receiver.events() if e["type"] == "code.backup_issued"]
    assert [e["data"]["pin"] for e in sent] == [offline.digits]
    assert "backup_code_issued" not in {issue for issue, _code in issues(h)}
    assert delivery(h, "BKDLV")[0] == "delivered"  # the guest has a code that opens: not 'pending


def test_a_stay_cancelled_before_its_code_has_no_delivery_state(made, receiver):
    """Nothing to give anyone: not 'pending' (which would read as a code on its way)."""
    world = World()
    listing, _ = world.listing(1, "Saúde 31")
    world.stay("GONE1", listing, D0 + timedelta(days=10), D0 + timedelta(days=12), stays_type="canceled")
    world.stay("LATER", listing, D0 + timedelta(days=20), D0 + timedelta(days=22))
    h = made(world, local(D0, 9), **notify_env(receiver))
    h.step(local(D0, 9))
    assert delivery(h, "GONE1") == (None, None)
    assert delivery(h, "LATER") == ("pending", None)  # confirmed, its code not made yet
