"""Moving a PIN's window (modify-password), PIN-length refusals, and lock status / battery:
the sandbox cloud on loopback HTTPS and the production TuyaClient against it (no fakes)."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta, timezone

import pytest

from lock_pipeline.clock import ManualClock
from lock_pipeline.sandbox.seed import SeedLock
from lock_pipeline.sandbox.tuya_cloud import TuyaSandbox, _ok
from lock_pipeline.tuya import (
    Battery,
    DataPoint,
    TuyaClient,
    TuyaCode,
    TuyaDevice,
    TuyaError,
    battery_from_status,
    pin_length_from_error,
)
from lock_pipeline.tuya.ticket_crypto import decrypt_ticket_key, encrypt_pin
from lock_pipeline_tests.helpers import make_tuya_client as make_client

pytestmark = pytest.mark.integration  # sandbox servers on loopback

NOW = datetime(2025, 3, 14, 15, 0, tzinfo=timezone.utc)
FRONT = SeedLock(device_id="eb00000000000000000001", name="Fechadura Atlantica 101")
BACK = SeedLock(device_id="eb00000000000000000002", name="Ipanema 304", online=False)
ZIGBEE = SeedLock(device_id="eb00000000000000000003", name="Zigbee lock", pin_length=6, battery_kind="level",
                  battery_start=50)
OLD_MODEL = SeedLock(device_id="eb00000000000000000004", name="Porta antiga", modify_supported=False)
PLUG = SeedLock(device_id="eb00000000000000000005", name="Smart plug", category="cz", product_name="Plug")
LOCKS = [FRONT, BACK, ZIGBEE, OLD_MODEL, PLUG]


def modify_path(device: SeedLock, password_id: str) -> str:
    return f"/v1.0/devices/{device.device_id}/door-lock/temp-passwords/{password_id}/modify-password"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW - timedelta(hours=3))


@pytest.fixture
def sandbox(clock: ManualClock):
    with TuyaSandbox(LOCKS, clock=clock, max_pins_per_lock=4) as server:
        yield server


@pytest.fixture
def client(sandbox: TuyaSandbox):
    with make_client(sandbox) as tuya:
        yield tuya


def create(tuya: TuyaClient, pin: str, *, device: SeedLock = FRONT, name: str = "LP EV23J", start: datetime = NOW,
           hours: float = 24) -> str:
    return tuya.create_temp_password(device.device_id, pin=pin, name=name, effective=start,
                                     invalid=start + timedelta(hours=hours))


def modify(tuya: TuyaClient, password_id: str, pin: str, *, device: SeedLock = FRONT, name: str = "LP EV23J",
           start: datetime, hours: float = 24, **extra) -> None:
    tuya.modify_temp_password(device.device_id, password_id, pin=pin, name=name, effective=start,
                              invalid=start + timedelta(hours=hours), **extra)


def calls_to(sandbox: TuyaSandbox, method: str, path: str) -> int:
    return sum(1 for entry in sandbox.request_log if entry == (method, path))


def answer(sandbox: TuyaSandbox, monkeypatch: pytest.MonkeyPatch, method: str, path: str, reply) -> None:
    """The sandbox answers ``method path`` with ``reply`` (a broken or unusual cloud), the rest for real."""
    real = sandbox._handle

    def handle(m, target, headers, body):
        if m == method and target.split("?")[0] == path:
            return reply
        return real(m, target, headers, body)

    monkeypatch.setattr(sandbox, "_handle", handle)


# -- modify-password on the lock -------------------------------------------------------------------

def test_modify_on_an_online_lock_moves_the_window_at_once_and_keeps_the_digits(sandbox: TuyaSandbox,
                                                                                client: TuyaClient) -> None:
    password_id = create(client, "1357913", name="LP EV23J Maria")
    moved = NOW + timedelta(days=2)
    assert client.modify_temp_password(FRONT.device_id, password_id, pin="1357913", name="LP EV23J Maria",
                                       effective=moved, invalid=moved + timedelta(days=1),
                                       time_zone="America/Sao_Paulo") is None

    listed = client.list_temp_passwords(FRONT.device_id)
    assert [(p.password_id, p.effective_time, p.invalid_time, p.phase) for p in listed] == \
        [(password_id, moved, moved + timedelta(days=1), 2)]
    assert client.get_temp_password(FRONT.device_id, password_id) == listed[0]
    [pin] = sandbox.pins(FRONT.device_id)
    assert (pin.digits, pin.time_zone) == ("1357913", "America/Sao_Paulo")

    assert not sandbox.would_open(FRONT.device_id, "1357913", NOW + timedelta(hours=1))  # the old window is gone
    assert not sandbox.would_open(FRONT.device_id, "1357913", moved - timedelta(seconds=1))
    assert sandbox.would_open(FRONT.device_id, "1357913", moved)
    assert sandbox.would_open(FRONT.device_id, "1357913", moved + timedelta(hours=23, minutes=59))
    assert not sandbox.would_open(FRONT.device_id, "1357913", moved + timedelta(days=1))
    assert calls_to(sandbox, "PUT", modify_path(FRONT, password_id)) == 1


def test_modify_on_an_offline_lock_waits_at_phase_1_and_the_lock_keeps_the_old_window(sandbox: TuyaSandbox,
                                                                                     client: TuyaClient) -> None:
    password_id = create(client, "2468024")
    sandbox.set_online(FRONT.device_id, False)
    later = NOW + timedelta(days=3)
    modify(client, password_id, "2468024", start=later)

    record = client.get_temp_password(FRONT.device_id, password_id)
    assert (record.effective_time, record.invalid_time, record.phase) == (later, later + timedelta(days=1), 1)
    assert sandbox.would_open(FRONT.device_id, "2468024", NOW + timedelta(hours=1))      # what the lock holds
    assert not sandbox.would_open(FRONT.device_id, "2468024", later + timedelta(hours=1))  # not there yet

    sandbox.set_online(FRONT.device_id, True)
    assert client.get_temp_password(FRONT.device_id, password_id).phase == 2
    assert not sandbox.would_open(FRONT.device_id, "2468024", NOW + timedelta(hours=1))
    assert sandbox.would_open(FRONT.device_id, "2468024", later + timedelta(hours=1))


def test_modify_of_a_pin_never_sent_to_an_offline_lock_replaces_it_before_delivery(sandbox: TuyaSandbox,
                                                                                   client: TuyaClient) -> None:
    password_id = create(client, "3141592", device=BACK)
    later = NOW + timedelta(days=1)
    modify(client, password_id, "3141592", device=BACK, start=later)
    assert client.get_temp_password(BACK.device_id, password_id).phase == 1
    assert not sandbox.would_open(BACK.device_id, "3141592", NOW + timedelta(hours=1))
    assert not sandbox.would_open(BACK.device_id, "3141592", later + timedelta(hours=1))
    sandbox.set_online(BACK.device_id, True)
    assert not sandbox.would_open(BACK.device_id, "3141592", NOW + timedelta(hours=1))
    assert sandbox.would_open(BACK.device_id, "3141592", later + timedelta(hours=1))


def test_delete_after_an_offline_modify_waits_for_the_lock_that_still_holds_the_old_copy(
        sandbox: TuyaSandbox, client: TuyaClient) -> None:
    password_id = create(client, "1010101")
    sandbox.set_online(FRONT.device_id, False)
    modify(client, password_id, "1010101", start=NOW + timedelta(days=3))
    client.delete_temp_password(FRONT.device_id, password_id)
    assert client.get_temp_password(FRONT.device_id, password_id).phase == 3
    assert sandbox.would_open(FRONT.device_id, "1010101", NOW + timedelta(hours=1))  # the lock has not heard yet
    sandbox.set_online(FRONT.device_id, True)
    assert client.get_temp_password(FRONT.device_id, password_id).phase == 0
    assert not sandbox.would_open(FRONT.device_id, "1010101", NOW + timedelta(hours=1))
    assert not sandbox.would_open(FRONT.device_id, "1010101", NOW + timedelta(days=3, hours=1))


def test_a_lock_that_refuses_modify_answers_2004_and_is_not_retried(sandbox: TuyaSandbox,
                                                                    client: TuyaClient) -> None:
    password_id = create(client, "4040404", device=OLD_MODEL)
    with pytest.raises(TuyaError) as caught:
        modify(client, password_id, "4040404", device=OLD_MODEL, start=NOW + timedelta(days=1))
    assert caught.value.code == TuyaCode.LOCK_TYPE_NOT_SUPPORTED and not caught.value.retryable
    assert caught.value.msg == "not support this function"
    assert calls_to(sandbox, "PUT", modify_path(OLD_MODEL, password_id)) == 1
    assert client.get_temp_password(OLD_MODEL.device_id, password_id).effective_time == NOW  # unchanged

    other = create(client, "5050505")
    sandbox.set_modify_supported(FRONT.device_id, False)  # the switch works at run time too
    with pytest.raises(TuyaError) as refused:
        modify(client, other, "5050505", start=NOW + timedelta(days=1))
    assert refused.value.code == 2004
    sandbox.set_modify_supported(FRONT.device_id, True)
    modify(client, other, "5050505", start=NOW + timedelta(days=1))


def test_modify_of_an_unknown_or_deleted_pin_is_1000(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    with pytest.raises(TuyaError) as unknown:
        modify(client, "424242", "1234567", start=NOW)
    assert unknown.value.code == TuyaCode.DATA_NOT_EXIST and not unknown.value.retryable
    password_id = create(client, "6060606")
    client.delete_temp_password(FRONT.device_id, password_id)
    with pytest.raises(TuyaError) as deleted:
        modify(client, password_id, "6060606", start=NOW)
    assert deleted.value.code == TuyaCode.DATA_NOT_EXIST


def test_modify_spends_its_ticket_like_a_create(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    password_id = create(client, "7070707")
    base = f"/v1.0/devices/{FRONT.device_id}"
    ticket = client._call("POST", f"{base}/door-lock/password-ticket")
    key = decrypt_ticket_key(ticket["ticket_key"], sandbox.access_secret)
    body = {"name": "LP EV23J", "password": encrypt_pin("7070707", key), "password_type": "ticket",
            "ticket_id": ticket["ticket_id"], "effective_time": int((NOW + timedelta(days=1)).timestamp()),
            "invalid_time": int((NOW + timedelta(days=2)).timestamp())}
    assert client._call("PUT", modify_path(FRONT, password_id), payload=body, idempotent=False) is True
    with pytest.raises(TuyaError) as reused:
        client._call("PUT", modify_path(FRONT, password_id), payload=body, idempotent=False)
    assert reused.value.code == TuyaCode.PARAM_ILLEGAL and "ticket_id" in reused.value.msg
    other_ticket = client._call("POST", f"/v1.0/devices/{ZIGBEE.device_id}/door-lock/password-ticket")
    other_key = decrypt_ticket_key(other_ticket["ticket_key"], sandbox.access_secret)
    elsewhere = {**body, "ticket_id": other_ticket["ticket_id"], "password": encrypt_pin("7070707", other_key)}
    with pytest.raises(TuyaError) as wrong_device:
        client._call("PUT", modify_path(FRONT, password_id), payload=elsewhere, idempotent=False)
    assert wrong_device.value.code == TuyaCode.PARAM_ILLEGAL


def test_modify_is_validated_like_a_create(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    password_id = create(client, "8080808")
    with pytest.raises(TuyaError) as long_name:
        modify(client, password_id, "8080808", name="x" * 21, start=NOW)
    assert long_name.value.code == TuyaCode.PARAM_ILLEGAL
    with pytest.raises(TuyaError) as past:
        modify(client, password_id, "8080808", start=NOW - timedelta(days=3))
    assert past.value.code == TuyaCode.PARAM_ILLEGAL and "past" in past.value.msg
    with pytest.raises(ValueError):  # checked before any call
        modify(client, password_id, "8080808", start=NOW, hours=0)
    assert client.get_temp_password(FRONT.device_id, password_id).effective_time == NOW


def test_modify_to_another_live_pins_digits_is_2303_and_says_no_digits(sandbox: TuyaSandbox,
                                                                       client: TuyaClient) -> None:
    create(client, "1111111", name="A")
    second = create(client, "2222222", name="B", start=NOW + timedelta(days=2))
    with pytest.raises(TuyaError) as caught:
        modify(client, second, "1111111", name="B", start=NOW + timedelta(days=3))
    assert caught.value.code == TuyaCode.DUPLICATE_PASSWORD
    for text in (str(caught.value), repr(caught.value), repr(pickle.loads(pickle.dumps(caught.value)))):
        assert "1111111" not in text and "2222222" not in text
    modify(client, second, "2222222", name="B", start=NOW + timedelta(days=3))  # its own digits are fine


def test_an_ambiguous_modify_is_not_resent_and_says_to_re_read_the_pin(sandbox: TuyaSandbox) -> None:
    with make_client(sandbox, timeout=0.3) as tuya:
        password_id = create(tuya, "9090909")
        sandbox.inject("timeout", path_contains="/modify-password")
        with pytest.raises(TuyaError) as caught:
            modify(tuya, password_id, "9090909", start=NOW + timedelta(days=1))
    assert caught.value.retryable and "may have been applied" in str(caught.value)
    assert "re-read the PIN" in str(caught.value) and "9090909" not in str(caught.value)
    assert calls_to(sandbox, "PUT", modify_path(FRONT, password_id)) == 1


def test_a_throttled_modify_is_resent_and_lands_once(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    password_id = create(client, "1212121")
    sandbox.inject("throttle", path_contains="/modify-password")
    modify(client, password_id, "1212121", start=NOW + timedelta(days=1))
    assert calls_to(sandbox, "PUT", modify_path(FRONT, password_id)) == 2
    assert client.get_temp_password(FRONT.device_id, password_id).effective_time == NOW + timedelta(days=1)


def test_modify_answered_with_result_false_is_an_error(sandbox: TuyaSandbox, client: TuyaClient,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    password_id = create(client, "1313131")
    answer(sandbox, monkeypatch, "PUT", modify_path(FRONT, password_id), _ok(False))
    with pytest.raises(TuyaError, match="unexpected answer"):
        modify(client, password_id, "1313131", start=NOW + timedelta(days=1))


def test_a_modified_pin_survives_a_restart_with_the_lock_holding_the_old_copy(clock: ManualClock, tmp_path) -> None:
    state_file = tmp_path / "tuya_state.json"
    later = NOW + timedelta(days=2)
    with TuyaSandbox([FRONT], clock=clock, state_file=state_file) as first, make_client(first) as tuya:
        password_id = create(tuya, "1414141")
        first.set_online(FRONT.device_id, False)
        modify(tuya, password_id, "1414141", start=later)
        first.set_modify_supported(FRONT.device_id, False)
    with TuyaSandbox([FRONT], clock=clock, state_file=state_file) as second, make_client(second) as tuya:
        record = tuya.get_temp_password(FRONT.device_id, password_id)
        assert (record.effective_time, record.phase) == (later, 1)
        assert second.would_open(FRONT.device_id, "1414141", NOW + timedelta(hours=1))
        with pytest.raises(TuyaError) as refused:  # the switch was kept too
            modify(tuya, password_id, "1414141", start=later)
        assert refused.value.code == 2004
        second.set_online(FRONT.device_id, True)
        assert not second.would_open(FRONT.device_id, "1414141", NOW + timedelta(hours=1))
        assert second.would_open(FRONT.device_id, "1414141", later + timedelta(hours=1))


# -- PIN length refusals ----------------------------------------------------------------------------

def test_wrong_pin_length_names_the_length_the_lock_takes(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    with pytest.raises(TuyaError) as seven:
        create(client, "123456")
    assert seven.value.code == TuyaCode.PARAM_ILLEGAL
    assert seven.value.msg == "param is illegal: password must be exactly 7 digits on this lock"  # stable wording
    assert pin_length_from_error(seven.value) == 7 and "123456" not in str(seven.value)
    with pytest.raises(TuyaError) as six:
        create(client, "1234567", device=ZIGBEE)
    assert six.value.msg == "param is illegal: password must be exactly 6 digits on this lock"
    assert pin_length_from_error(six.value) == 6

    password_id = create(client, "1234567")
    with pytest.raises(TuyaError) as on_modify:
        modify(client, password_id, "12345678", start=NOW)
    assert pin_length_from_error(on_modify.value) == 7 and "12345678" not in repr(on_modify.value)


def test_pin_length_is_only_read_from_a_1109_that_names_it() -> None:
    assert pin_length_from_error(TuyaError(1109, "param is illegal: name must be 1 to 20 characters", "/p")) is None
    assert pin_length_from_error(TuyaError(2303, "exactly 7 digits", "/p")) is None
    assert pin_length_from_error(TuyaError(None, "HTTP 500", "/p")) is None


# -- status and battery -----------------------------------------------------------------------------

def test_devices_carry_their_battery_in_the_list_and_the_detail(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    devices = {d.device_id: d for d in client.list_devices()}
    assert devices[FRONT.device_id].battery == Battery(value="90", kind="percent", code="residual_electricity",
                                                       percent=90)
    assert devices[ZIGBEE.device_id].battery == Battery(value="medium", kind="level", code="battery_state",
                                                        percent=None)
    assert devices[PLUG.device_id].battery is None
    assert client.get_device(ZIGBEE.device_id).battery == devices[ZIGBEE.device_id].battery
    assert calls_to(sandbox, "GET", f"/v1.0/devices/{FRONT.device_id}/status") == 0  # no extra call needed


def test_status_endpoint_reports_the_same_data_points(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    assert client.get_status(FRONT.device_id) == [DataPoint(code="residual_electricity", value=90)]
    assert client.get_status(ZIGBEE.device_id) == [DataPoint(code="battery_state", value="medium")]
    assert battery_from_status(client.get_status(FRONT.device_id)).percent == 90
    assert battery_from_status(client.get_status(PLUG.device_id)) is None
    with pytest.raises(TuyaError) as unknown:
        client.get_status("eb99999999999999999999")
    assert unknown.value.code == TuyaCode.PERMISSION_DENIED


def test_batteries_drain_with_the_sandbox_clock(sandbox: TuyaSandbox, client: TuyaClient,
                                                clock: ManualClock) -> None:
    clock.advance(timedelta(days=10))
    assert client.get_device(FRONT.device_id).battery.percent == 85  # 0.5 % a day
    clock.advance(timedelta(days=70))
    assert client.get_device(FRONT.device_id).battery.value == "50"
    assert client.get_device(ZIGBEE.device_id).battery.value == "low"  # 50 - 40 = 10 %
    assert DataPoint(code="alarm_lock", value="low_battery") in client.get_status(ZIGBEE.device_id)
    clock.advance(timedelta(days=400))
    assert sandbox.battery_percent(FRONT.device_id) == 0  # never below empty


def test_set_battery_sets_what_the_lock_reports(sandbox: TuyaSandbox, client: TuyaClient,
                                                clock: ManualClock) -> None:
    sandbox.set_battery(FRONT.device_id, 15)
    assert client.get_device(FRONT.device_id).battery.percent == 15
    assert DataPoint(code="alarm_lock", value="low_battery") in client.get_status(FRONT.device_id)
    sandbox.set_battery(ZIGBEE.device_id, 75)
    assert client.get_device(ZIGBEE.device_id).battery.value == "high"
    sandbox.set_battery(ZIGBEE.device_id, 59)
    assert client.get_device(ZIGBEE.device_id).battery.value == "medium"
    clock.advance(timedelta(days=2))
    assert client.get_device(FRONT.device_id).battery.percent == 14
    with pytest.raises(ValueError):
        sandbox.set_battery(FRONT.device_id, 101)


def test_an_offline_lock_reports_nothing_new_until_it_wakes(sandbox: TuyaSandbox, client: TuyaClient,
                                                            clock: ManualClock) -> None:
    clock.advance(timedelta(days=20))
    assert client.get_device(BACK.device_id).battery.percent == 90  # offline since the start: last report
    sandbox.set_online(BACK.device_id, True)
    assert client.get_device(BACK.device_id).battery.percent == 80
    sandbox.set_online(BACK.device_id, False)
    clock.advance(timedelta(days=20))
    assert client.get_device(BACK.device_id).battery.percent == 80


def test_a_battery_survives_a_restart(clock: ManualClock, tmp_path) -> None:
    state_file = tmp_path / "tuya_state.json"
    with TuyaSandbox([FRONT], clock=clock, state_file=state_file) as first:
        first.set_battery(FRONT.device_id, 42)
    clock.advance(timedelta(days=4))
    with TuyaSandbox([FRONT], clock=clock, state_file=state_file) as second:
        assert second.battery_percent(FRONT.device_id) == 40


def test_weird_status_entries_give_no_battery_and_no_error(sandbox: TuyaSandbox, client: TuyaClient,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    weird = {"id": FRONT.device_id, "name": "x", "online": True, "category": "ms", "product_name": "p",
             "status": [None, 7, {"value": 3}, {"code": 5, "value": 80}, {"code": "residual_electricity", "value": True},
                        {"code": "battery_percentage", "value": 250}, {"code": "battery_state", "value": ["low"]}]}
    answer(sandbox, monkeypatch, "GET", f"/v1.0/devices/{FRONT.device_id}", _ok(weird))
    assert client.get_device(FRONT.device_id).battery is None
    answer(sandbox, monkeypatch, "GET", f"/v1.0/devices/{FRONT.device_id}", _ok({**weird, "status": "full"}))
    assert client.get_device(FRONT.device_id).battery is None
    answer(sandbox, monkeypatch, "GET", f"/v1.0/devices/{FRONT.device_id}/status", _ok({"not": "a list"}))
    with pytest.raises(TuyaError, match="unexpected answer: status is not a list"):
        client.get_status(FRONT.device_id)


def test_battery_from_status_reads_the_known_shapes() -> None:
    assert battery_from_status([DataPoint("va_battery", "55")]) == Battery("55", "percent", "va_battery", 55)
    assert battery_from_status([{"code": "battery_percentage", "value": 7}]) == \
        Battery("7", "percent", "battery_percentage", 7)
    level_then_percent = [DataPoint("battery_state", "low"), DataPoint("residual_electricity", 12)]
    assert battery_from_status(level_then_percent).kind == "percent"  # a number wins over a word
    assert battery_from_status([DataPoint("battery_state", "middle")]) == \
        Battery("middle", "level", "battery_state", None)  # kept as the lock says it
    assert battery_from_status([DataPoint("battery_state", "")]) is None
    assert battery_from_status([DataPoint("switch_1", True), DataPoint("residual_electricity", -1)]) is None
    assert battery_from_status([]) is None


def test_a_device_is_the_same_device_whatever_its_battery(sandbox: TuyaSandbox, client: TuyaClient,
                                                          clock: ManualClock) -> None:
    before = client.get_device(FRONT.device_id)
    clock.advance(timedelta(days=30))
    after = client.get_device(FRONT.device_id)
    assert before == after and before.battery != after.battery
    assert after == TuyaDevice(device_id=FRONT.device_id, name=FRONT.name, online=True, category="ms",
                               product_name="Wi-Fi Smart Lock")


def test_old_state_files_without_the_new_keys_still_load(clock: ManualClock, tmp_path) -> None:
    state_file = tmp_path / "tuya_state.json"
    with TuyaSandbox([FRONT, BACK], clock=clock, state_file=state_file) as first, make_client(first) as tuya:
        create(tuya, "1515151")
    document = json.loads(state_file.read_text())
    for lock in document["locks"]:
        for key in ("modify_supported", "offline_codes_supported", "battery", "offline_since", "offline_codes"):
            del lock[key]
        for pin in lock["pins"]:
            for key in ("held_digits", "held_effective", "held_invalid", "used_at"):
                del pin[key]
        for key in ("modify_supported", "offline_codes_supported", "battery_kind", "battery_start"):
            del lock["seed"][key]
    state_file.write_text(json.dumps(document))
    with TuyaSandbox([FRONT], clock=clock, state_file=state_file) as second, make_client(second) as tuya:
        assert second.would_open(FRONT.device_id, "1515151", NOW + timedelta(hours=1))
        assert tuya.get_device(FRONT.device_id).battery.percent == 90
        assert tuya.get_device(BACK.device_id).battery.percent == 90  # a lock from the file, not the seed
        assert second.offline_codes(FRONT.device_id) == []
