"""The sandbox cloud holds requests to the real protocol: raw HTTPS requests, signed here
independently of the client, and tinytuya itself talking to it."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from lock_pipeline.clock import ManualClock
from lock_pipeline.sandbox.seed import SeedLock
from lock_pipeline.sandbox.tuya_cloud import DUPLICATE_PASSWORD, PASSWORD_STORAGE_FULL, TuyaSandbox
from lock_pipeline.tuya.ticket_crypto import decrypt_ticket_key, encrypt_pin

pytestmark = pytest.mark.integration  # sandbox servers on loopback

NOW = datetime(2025, 3, 14, 15, 0, tzinfo=timezone.utc)
FRONT = SeedLock(device_id="eb00000000000000000001", name="Fechadura Atlantica 101")
BACK = SeedLock(device_id="eb00000000000000000002", name="Ipanema 304", online=False)
ZIGBEE = SeedLock(device_id="eb00000000000000000003", name="Zigbee lock", pin_length=6)
PLUG = SeedLock(device_id="eb00000000000000000004", name="Smart plug", category="cz", product_name="Plug")


class Raw:
    """A bare-hands Tuya caller: httpx for transport, hmac/hashlib for the sign, nothing from the client."""

    def __init__(self, sandbox: TuyaSandbox) -> None:
        self.sandbox = sandbox
        self.http = httpx.Client(base_url=sandbox.base_url, verify=_ctx(sandbox.ca_cert_path), timeout=5)
        self.token = ""

    def call(self, method: str, path: str, *, query: dict[str, str] | None = None, body: Any = None,
             token: str | None = None, t_ms: int | None = None, secret: str | None = None,
             nonce: str | None = None) -> dict:
        token = self.token if token is None else token
        raw_body = b"" if body is None else json.dumps(body).encode()
        t = str(t_ms if t_ms is not None else int(time.time() * 1000))
        nonce = uuid.uuid4().hex if nonce is None else nonce
        sorted_query = "&".join(f"{k}={v}" for k, v in sorted((query or {}).items()))
        url = path + (f"?{sorted_query}" if sorted_query else "")
        to_sign = f"{method}\n{hashlib.sha256(raw_body).hexdigest()}\n\n{url}"
        message = self.sandbox.access_id + token + t + nonce + to_sign
        sign = hmac.new((secret or self.sandbox.access_secret).encode(), message.encode(),
                        hashlib.sha256).hexdigest().upper()
        headers = {"client_id": self.sandbox.access_id, "sign": sign, "t": t, "nonce": nonce,
                   "sign_method": "HMAC-SHA256"}
        if token:
            headers["access_token"] = token
        if raw_body:
            headers["Content-Type"] = "application/json"
        response = self.http.request(method, path, params=query, content=raw_body or None, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def login(self) -> dict:
        answer = self.call("GET", "/v1.0/token", query={"grant_type": "1"}, token="")
        assert answer["success"] is True, answer
        self.token = answer["result"]["access_token"]
        return answer["result"]

    def create_pin(self, device_id: str, pin: str, *, name: str = "EV23J Maria", start: datetime = NOW,
                   hours: float = 24) -> dict:
        ticket = self.call("POST", f"/v1.0/devices/{device_id}/door-lock/password-ticket")
        assert ticket["success"] is True, ticket
        key = decrypt_ticket_key(ticket["result"]["ticket_key"], self.sandbox.access_secret)
        return self.call("POST", f"/v1.0/devices/{device_id}/door-lock/temp-password", body={
            "name": name, "password": encrypt_pin(pin, key), "password_type": "ticket",
            "ticket_id": ticket["result"]["ticket_id"], "effective_time": int(start.timestamp()),
            "invalid_time": int((start + timedelta(hours=hours)).timestamp()), "type": 0,
        })


def _ctx(cafile: str):
    import ssl
    return ssl.create_default_context(cafile=cafile)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW - timedelta(hours=3))


@pytest.fixture
def sandbox(clock: ManualClock):
    with TuyaSandbox([FRONT, BACK, ZIGBEE, PLUG], clock=clock, max_pins_per_lock=3) as server:
        yield server


@pytest.fixture
def raw(sandbox: TuyaSandbox) -> Raw:
    caller = Raw(sandbox)
    caller.login()
    yield caller
    caller.http.close()


def _error(answer: dict) -> tuple[int, str]:
    assert answer["success"] is False, answer
    assert isinstance(answer["t"], int)
    return answer["code"], answer["msg"]


# -- authentication -------------------------------------------------------------------------------

def test_token_answer_has_the_documented_shape(sandbox: TuyaSandbox) -> None:
    result = Raw(sandbox).login()
    assert set(result) >= {"access_token", "refresh_token", "expire_time", "uid"}
    assert result["expire_time"] == 7200


def test_wrong_signature_is_1004(raw: Raw) -> None:
    assert _error(raw.call("GET", f"/v1.0/devices/{FRONT.device_id}", secret="x" * 32))[0] == 1004
    assert _error(raw.call("GET", "/v1.0/token", query={"grant_type": "1"}, token="", secret="y" * 32))[0] == 1004


def test_tampered_body_breaks_the_signature(sandbox: TuyaSandbox, raw: Raw) -> None:
    body = json.dumps({"a": 1}).encode()
    t = str(int(time.time() * 1000))
    path = f"/v1.0/devices/{FRONT.device_id}/door-lock/password-ticket"
    to_sign = f"POST\n{hashlib.sha256(body).hexdigest()}\n\n{path}"
    sign = hmac.new(sandbox.access_secret.encode(), (sandbox.access_id + raw.token + t + to_sign).encode(),
                    hashlib.sha256).hexdigest().upper()
    headers = {"client_id": sandbox.access_id, "sign": sign, "t": t, "sign_method": "HMAC-SHA256",
               "access_token": raw.token}
    good = raw.http.post(path, content=body, headers=headers).json()
    bad = raw.http.post(path, content=body + b" ", headers=headers).json()
    assert good["success"] is True
    assert _error(bad)[0] == 1004


def test_stale_timestamp_is_1013(raw: Raw) -> None:
    stale = int(time.time() * 1000) - 16 * 60 * 1000
    assert _error(raw.call("GET", f"/v1.0/devices/{FRONT.device_id}", t_ms=stale))[0] == 1013
    future = int(time.time() * 1000) + 16 * 60 * 1000
    assert _error(raw.call("GET", "/v1.0/token", query={"grant_type": "1"}, token="", t_ms=future))[0] == 1013


def test_unknown_token_is_1011_and_expired_token_is_1010(sandbox: TuyaSandbox, raw: Raw) -> None:
    assert _error(raw.call("GET", f"/v1.0/devices/{FRONT.device_id}", token="0" * 32))[0] == 1011
    assert raw.call("GET", f"/v1.0/devices/{FRONT.device_id}")["success"] is True
    sandbox.expire_tokens()
    assert _error(raw.call("GET", f"/v1.0/devices/{FRONT.device_id}")) == (1010, "token is expired")


def test_tokens_expire_by_wall_clock(clock: ManualClock) -> None:
    with TuyaSandbox([FRONT], clock=clock, token_ttl_seconds=1) as server:
        caller = Raw(server)
        caller.login()
        assert caller.call("GET", f"/v1.0/devices/{FRONT.device_id}")["success"] is True
        clock.advance(timedelta(days=30))  # business time moving does not expire protocol tokens
        assert caller.call("GET", f"/v1.0/devices/{FRONT.device_id}")["success"] is True
        time.sleep(1.1)
        assert _error(caller.call("GET", f"/v1.0/devices/{FRONT.device_id}"))[0] == 1010
        caller.http.close()


def test_refresh_token_works_once_and_replaces_both_tokens(sandbox: TuyaSandbox) -> None:
    caller = Raw(sandbox)
    first = caller.login()
    refreshed = caller.call("GET", f"/v1.0/token/{first['refresh_token']}", token="")
    assert refreshed["success"] is True
    assert refreshed["result"]["access_token"] != first["access_token"]
    assert _error(caller.call("GET", f"/v1.0/token/{first['refresh_token']}", token=""))[0] == 1012
    assert _error(caller.call("GET", f"/v1.0/devices/{FRONT.device_id}", token=first["access_token"]))[0] == 1011
    caller.token = refreshed["result"]["access_token"]
    assert caller.call("GET", f"/v1.0/devices/{FRONT.device_id}")["success"] is True
    caller.http.close()


def test_grant_type_other_than_1_is_refused(sandbox: TuyaSandbox) -> None:
    assert _error(Raw(sandbox).call("GET", "/v1.0/token", query={"grant_type": "2"}, token=""))[0] == 1003


def test_wrong_method_is_1108_and_unknown_device_is_1106(raw: Raw) -> None:
    assert _error(raw.call("POST", f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-passwords"))[0] == 1108
    assert _error(raw.call("DELETE", f"/v1.0/devices/{FRONT.device_id}"))[0] == 1108
    assert _error(raw.call("GET", "/v1.0/no/such/api"))[0] == 1108
    assert _error(raw.call("GET", "/v1.0/devices/eb99999999999999999999"))[0] == 1106


def test_door_lock_calls_on_a_plug_are_2004(raw: Raw) -> None:
    assert _error(raw.call("POST", f"/v1.0/devices/{PLUG.device_id}/door-lock/password-ticket"))[0] == 2004


# -- devices --------------------------------------------------------------------------------------

def test_device_list_pages_with_last_row_key(clock: ManualClock) -> None:
    locks = [SeedLock(device_id=f"eb{i:020d}", name=f"Lock {i}") for i in range(7)]
    with TuyaSandbox(locks, clock=clock) as server:
        caller = Raw(server)
        caller.login()
        seen, last_row_key = [], None
        while True:
            query = {"size": "3", **({"last_row_key": last_row_key} if last_row_key else {})}
            page = caller.call("GET", "/v1.0/iot-01/associated-users/devices", query=query)["result"]
            seen += [d["id"] for d in page["devices"]]
            assert page["total"] == 7
            if not page["has_more"]:
                break
            last_row_key = page["last_row_key"]
        assert seen == [lock.device_id for lock in locks]
        caller.http.close()


# -- the ticket flow and the lock's truth -----------------------------------------------------------

def test_ticket_is_single_use_and_bound_to_its_device(sandbox: TuyaSandbox, raw: Raw) -> None:
    ticket = raw.call("POST", f"/v1.0/devices/{FRONT.device_id}/door-lock/password-ticket")["result"]
    assert set(ticket) == {"ticket_id", "ticket_key", "expire_time"} and 0 < ticket["expire_time"] <= 600
    key = decrypt_ticket_key(ticket["ticket_key"], sandbox.access_secret)
    body = {"name": "EV23J Maria", "password": encrypt_pin("7654321", key), "password_type": "ticket",
            "ticket_id": ticket["ticket_id"], "effective_time": int(NOW.timestamp()),
            "invalid_time": int((NOW + timedelta(days=1)).timestamp())}
    elsewhere = raw.call("POST", f"/v1.0/devices/{ZIGBEE.device_id}/door-lock/temp-password", body=body)
    assert _error(elsewhere)[0] == 1109  # and that spent the ticket
    again = raw.call("POST", f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-password", body=body)
    assert _error(again)[0] == 1109


def test_pin_encrypted_with_another_key_is_refused(sandbox: TuyaSandbox, raw: Raw) -> None:
    ticket = raw.call("POST", f"/v1.0/devices/{FRONT.device_id}/door-lock/password-ticket")["result"]
    answer = raw.call("POST", f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-password", body={
        "name": "x", "password": encrypt_pin("7654321", b"0" * 16), "password_type": "ticket",
        "ticket_id": ticket["ticket_id"], "effective_time": int(NOW.timestamp()),
        "invalid_time": int((NOW + timedelta(days=1)).timestamp())})
    assert _error(answer)[0] == 1109
    assert sandbox.pins(FRONT.device_id) == []


def test_created_pin_opens_only_inside_its_window(sandbox: TuyaSandbox, raw: Raw) -> None:
    created = raw.create_pin(FRONT.device_id, "1357913")
    assert created["success"] is True and isinstance(created["result"]["id"], int)
    [pin] = sandbox.pins(FRONT.device_id)
    assert (pin.digits, pin.phase, pin.name) == ("1357913", 2, "EV23J Maria")
    assert sandbox.would_open(FRONT.device_id, "1357913", NOW)
    assert sandbox.would_open(FRONT.device_id, "1357913", NOW + timedelta(hours=23, minutes=59))
    assert not sandbox.would_open(FRONT.device_id, "1357913", NOW - timedelta(seconds=1))
    assert not sandbox.would_open(FRONT.device_id, "1357913", NOW + timedelta(hours=24))
    assert not sandbox.would_open(FRONT.device_id, "1357914", NOW)
    assert not sandbox.would_open(BACK.device_id, "1357913", NOW)


def test_pin_length_and_digits_follow_the_lock(raw: Raw) -> None:
    code, msg = _error(raw.create_pin(FRONT.device_id, "123456"))
    assert code == 1109 and "7 digits" in msg and "123456" not in msg
    assert _error(raw.create_pin(ZIGBEE.device_id, "1234567"))[0] == 1109
    assert raw.create_pin(ZIGBEE.device_id, "123456")["success"] is True


def test_duplicate_digits_on_a_lock_are_refused(raw: Raw) -> None:
    assert raw.create_pin(FRONT.device_id, "2468024", name="A")["success"] is True
    code, msg = _error(raw.create_pin(FRONT.device_id, "2468024", name="B", start=NOW + timedelta(days=5)))
    assert code == DUPLICATE_PASSWORD and "2468024" not in msg
    assert raw.create_pin(ZIGBEE.device_id, "246802")["success"] is True  # other lock, other store


def test_storage_full_and_per_lock_limit(sandbox: TuyaSandbox, raw: Raw) -> None:
    for index in range(3):
        assert raw.create_pin(FRONT.device_id, f"100000{index}", name=f"G{index}")["success"] is True
    assert _error(raw.create_pin(FRONT.device_id, "1000009"))[0] == PASSWORD_STORAGE_FULL
    sandbox.set_storage_limit(ZIGBEE.device_id, 1)
    assert raw.create_pin(ZIGBEE.device_id, "100000")["success"] is True
    assert _error(raw.create_pin(ZIGBEE.device_id, "100001"))[0] == PASSWORD_STORAGE_FULL


def test_expired_pins_free_their_slot_and_leave_the_valid_list(sandbox: TuyaSandbox, clock: ManualClock,
                                                               raw: Raw) -> None:
    for index in range(3):
        assert raw.create_pin(FRONT.device_id, f"200000{index}", name=f"G{index}", hours=2)["success"] is True
    clock.set(NOW + timedelta(hours=3))
    assert raw.call("GET", f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-passwords",
                    query={"valid": "true"})["result"] == []
    assert raw.create_pin(FRONT.device_id, "2000000", start=NOW + timedelta(hours=3))["success"] is True


def test_names_and_windows_are_validated(raw: Raw) -> None:
    assert _error(raw.create_pin(FRONT.device_id, "3000001", name="x" * 21))[0] == 1109
    assert _error(raw.create_pin(FRONT.device_id, "3000002", name=""))[0] == 1109
    assert _error(raw.create_pin(FRONT.device_id, "3000003", hours=-1))[0] == 1109
    assert _error(raw.create_pin(FRONT.device_id, "3000004", start=NOW - timedelta(days=3)))[0] == 1109


def test_offline_lock_holds_pin_at_phase_1_until_it_wakes(sandbox: TuyaSandbox, raw: Raw) -> None:
    pid = raw.create_pin(BACK.device_id, "4000001")["result"]["id"]
    one = raw.call("GET", f"/v1.0/devices/{BACK.device_id}/door-lock/temp-password/{pid}")["result"]
    assert one["phase"] == 1
    assert not sandbox.would_open(BACK.device_id, "4000001", NOW + timedelta(hours=1))
    sandbox.set_online(BACK.device_id, True)
    one = raw.call("GET", f"/v1.0/devices/{BACK.device_id}/door-lock/temp-password/{pid}")["result"]
    assert one["phase"] == 2
    assert sandbox.would_open(BACK.device_id, "4000001", NOW + timedelta(hours=1))


def test_delete_on_offline_lock_waits_at_phase_3_and_still_opens(sandbox: TuyaSandbox, raw: Raw) -> None:
    pid = raw.create_pin(FRONT.device_id, "5000001")["result"]["id"]
    sandbox.set_online(FRONT.device_id, False)
    assert raw.call("DELETE", f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-passwords/{pid}")["result"] is True
    listed = raw.call("GET", f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-passwords",
                      query={"valid": "true"})["result"]
    assert [(item["id"], item["phase"]) for item in listed] == [(pid, 3)]
    assert sandbox.would_open(FRONT.device_id, "5000001", NOW + timedelta(hours=1))
    sandbox.set_online(FRONT.device_id, True)
    assert not sandbox.would_open(FRONT.device_id, "5000001", NOW + timedelta(hours=1))
    assert raw.call("GET", f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-passwords",
                    query={"valid": "true"})["result"] == []
    gone = raw.call("DELETE", f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-passwords/{pid}")
    assert _error(gone)[0] == 1000


def test_delete_of_a_never_delivered_pin_cancels_it(sandbox: TuyaSandbox, raw: Raw) -> None:
    pid = raw.create_pin(BACK.device_id, "6000001")["result"]["id"]
    raw.call("DELETE", f"/v1.0/devices/{BACK.device_id}/door-lock/temp-passwords/{pid}")
    sandbox.set_online(BACK.device_id, True)
    assert [pin.phase for pin in sandbox.pins(BACK.device_id)] == [0]
    assert not sandbox.would_open(BACK.device_id, "6000001", NOW + timedelta(hours=1))


def test_list_items_have_the_documented_fields(sandbox: TuyaSandbox, raw: Raw) -> None:
    foreign = sandbox.add_foreign_pin(FRONT.device_id, "9999999", "Limpeza", NOW - timedelta(days=1),
                                      NOW + timedelta(days=60))
    raw.create_pin(FRONT.device_id, "7000001")
    listed = raw.call("GET", f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-passwords",
                      query={"valid": "true"})["result"]
    assert [item["name"] for item in listed] == ["Limpeza", "EV23J Maria"]
    assert str(listed[0]["id"]) == foreign
    for item in listed:
        assert {"id", "name", "effective_time", "invalid_time", "phase"} <= set(item)
        assert len(str(item["effective_time"])) == 10 and "password" not in item
    assert sandbox.would_open(FRONT.device_id, "9999999", NOW)


# -- faults, limits, lifecycle --------------------------------------------------------------------

def test_injected_faults_answer_like_the_real_failures(sandbox: TuyaSandbox, raw: Raw) -> None:
    path = f"/v1.0/devices/{FRONT.device_id}"
    sandbox.inject("throttle")
    assert _error(raw.call("GET", path))[0] == 1110
    sandbox.inject("token_expired")
    assert _error(raw.call("GET", path))[0] == 1010
    sandbox.inject("offline")
    assert _error(raw.call("GET", path))[0] == 2001
    sandbox.inject("html", path_contains="/door-lock/")
    assert raw.call("GET", path)["success"] is True  # not matching: served
    sandbox.inject("server_error")
    with pytest.raises(AssertionError, match="system error"):
        raw.call("GET", path)
    html = raw.http.get(f"{path}/door-lock/temp-passwords")
    assert html.status_code == 502 and html.headers["content-type"].startswith("text/html")
    assert raw.call("GET", path)["success"] is True


def test_rate_limit_answers_1110_when_exceeded(clock: ManualClock) -> None:
    with TuyaSandbox([FRONT], clock=clock, rate_limit_per_second=5) as server:
        caller = Raw(server)
        caller.login()
        codes = [caller.call("GET", f"/v1.0/devices/{FRONT.device_id}").get("code") for _ in range(12)]
        assert 1110 in codes
        time.sleep(0.5)
        assert caller.call("GET", f"/v1.0/devices/{FRONT.device_id}")["success"] is True
        caller.http.close()


def test_stop_does_not_hang_on_a_request_stuck_in_a_timeout_fault(clock: ManualClock) -> None:
    server = TuyaSandbox([FRONT], clock=clock).start()
    server.inject("timeout")
    caller = Raw(server)
    with pytest.raises(httpx.ReadTimeout):
        caller.http.get("/v1.0/token", params={"grant_type": "1"}, timeout=0.3)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 20  # the fault's 30 s wait is interrupted, not waited out
    caller.http.close()


def test_request_log_counts_and_no_stderr_noise(sandbox: TuyaSandbox, raw: Raw, capfd) -> None:
    before = sandbox.request_count
    raw.create_pin(FRONT.device_id, "8000001")
    raw.call("GET", "/v1.0/devices/eb99999999999999999999")
    assert sandbox.request_count == before + 3
    assert sandbox.request_log[-1] == ("GET", "/v1.0/devices/eb99999999999999999999")
    out, err = capfd.readouterr()
    assert err == "" and "8000001" not in out


def test_tls_is_verified_against_the_sandbox_ca_only(sandbox: TuyaSandbox) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sandbox.base_url}/v1.0/token", verify=True, timeout=2)


# -- interoperability: tinytuya, which the real cloud accepts, is accepted here ------------------

def test_tinytuya_talks_to_the_sandbox(sandbox: TuyaSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_cert_path)
    cloud_module = importlib.import_module("tinytuya.Cloud")
    cloud = cloud_module.Cloud(apiRegion="us", apiKey=sandbox.access_id, apiSecret=sandbox.access_secret,
                               initial_token="unused")
    cloud.urlhost = sandbox.base_url.removeprefix("https://")
    cloud.token = None
    assert cloud._gettoken(), cloud.error
    device = cloud.cloudrequest(f"/v1.0/devices/{FRONT.device_id}")
    assert device["success"] is True and device["result"]["name"] == FRONT.name
    page = cloud.cloudrequest("/v1.0/iot-01/associated-users/devices", query={"size": "2"})
    assert page["success"] is True and page["result"]["has_more"] is True
    ticket = cloud.cloudrequest(f"/v1.0/devices/{FRONT.device_id}/door-lock/password-ticket", action="POST", post={})
    assert ticket["success"] is True, ticket
    key = decrypt_ticket_key(ticket["result"]["ticket_key"], sandbox.access_secret)
    created = cloud.cloudrequest(f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-password", action="POST", post={
        "name": "tinytuya", "password": encrypt_pin("1122334", key), "password_type": "ticket",
        "ticket_id": ticket["result"]["ticket_id"], "effective_time": int(NOW.timestamp()),
        "invalid_time": int((NOW + timedelta(days=1)).timestamp())})
    assert created["success"] is True, created
    pid = created["result"]["id"]
    deleted = cloud.cloudrequest(f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-passwords/{pid}", action="DELETE")
    assert deleted["success"] is True, deleted
    assert [pin.phase for pin in sandbox.pins(FRONT.device_id)] == [0]


def test_state_file_keeps_the_locks_across_a_restart(clock: ManualClock, tmp_path) -> None:
    state_file = tmp_path / "home" / "tuya_sandbox_state.json"
    with TuyaSandbox([FRONT, BACK], clock=clock, state_file=state_file) as first:
        caller = Raw(first)
        caller.login()
        kept = caller.create_pin(FRONT.device_id, "1212121")["result"]["id"]
        caller.create_pin(BACK.device_id, "3434343")
        first.set_storage_limit(BACK.device_id, 5)
        caller.http.close()
    assert state_file.stat().st_mode & 0o077 == 0
    with TuyaSandbox([FRONT, BACK, ZIGBEE], clock=clock, state_file=state_file) as second:
        assert second.would_open(FRONT.device_id, "1212121", NOW + timedelta(hours=1))
        assert [(p.password_id, p.phase) for p in second.pins(FRONT.device_id)] == [(str(kept), 2)]
        assert [p.phase for p in second.pins(BACK.device_id)] == [1]
        assert second.pins(ZIGBEE.device_id) == []  # new in the seed: added, empty
        caller = Raw(second)
        caller.login()
        newer = caller.create_pin(FRONT.device_id, "5656565")["result"]["id"]
        assert newer > kept + 1  # ids are not reused after a restart
        caller.http.close()
    state_file.write_text("{not json")
    with pytest.raises(ValueError, match="delete it"):
        TuyaSandbox([FRONT], state_file=state_file)
