"""Offline temporary passwords: the sandbox cloud computes them for the lock (which checks them
itself, online or not) and the production TuyaClient asks for them over loopback HTTPS (no fakes)."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta, timezone

import pytest

from lock_pipeline.clock import ManualClock
from lock_pipeline.sandbox.seed import SeedLock
from lock_pipeline.sandbox.tuya_cloud import OFFLINE_CODE_DIGITS, TuyaSandbox, _ok
from lock_pipeline.tuya import OfflinePassword, TuyaClient, TuyaCode, TuyaError
from lock_pipeline_tests.helpers import make_tuya_client as make_client

pytestmark = pytest.mark.integration  # sandbox servers on loopback

NOW = datetime(2025, 3, 14, 15, 0, tzinfo=timezone.utc)   # a whole hour
START = NOW - timedelta(hours=3)                             # the sandbox clock starts at 12:00 UTC
FRONT = SeedLock(device_id="eb00000000000000000001", name="Fechadura Atlantica 101")
BACK = SeedLock(device_id="eb00000000000000000002", name="Ipanema 304", online=False)
NO_OFFLINE = SeedLock(device_id="eb00000000000000000003", name="Porta sem offline", offline_codes_supported=False)
PLUG = SeedLock(device_id="eb00000000000000000004", name="Smart plug", category="cz", product_name="Plug")
LOCKS = [FRONT, BACK, NO_OFFLINE, PLUG]


def offline_path(device: SeedLock | str) -> str:
    device_id = device if isinstance(device, str) else device.device_id
    return f"/v1.1/devices/{device_id}/door-lock/offline-temp-password"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def sandbox(clock: ManualClock):
    with TuyaSandbox(LOCKS, clock=clock, max_offline_codes_per_lock=3) as server:
        yield server


@pytest.fixture
def client(sandbox: TuyaSandbox):
    with make_client(sandbox) as tuya:
        yield tuya


def offline(tuya: TuyaClient, *, device: SeedLock = FRONT, name: str = "LP EV23J", start: datetime = NOW,
            hours: float = 72) -> OfflinePassword:
    return tuya.create_offline_password(device.device_id, name=name, effective=start,
                                        invalid=start + timedelta(hours=hours))


def raw_offline(tuya: TuyaClient, device: SeedLock = FRONT, **body) -> dict:
    """The endpoint with any body, through the real client's signed transport."""
    return tuya._call("POST", offline_path(device), payload=body, idempotent=False)


def calls_to(sandbox: TuyaSandbox, method: str, path: str) -> int:
    return sum(1 for entry in sandbox.request_log if entry == (method, path))


def answer(sandbox: TuyaSandbox, monkeypatch: pytest.MonkeyPatch, method: str, path: str, reply) -> None:
    real = sandbox._handle

    def handle(m, target, headers, body):
        if m == method and target.split("?")[0] == path:
            return reply
        return real(m, target, headers, body)

    monkeypatch.setattr(sandbox, "_handle", handle)


def error_of(call) -> TuyaError:
    with pytest.raises(TuyaError) as caught:
        call()
    return caught.value


# -- creating them ----------------------------------------------------------------------------------

def test_a_multiple_code_has_its_times_floored_to_the_hour(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    asked_start, asked_end = NOW + timedelta(minutes=30), NOW + timedelta(hours=5, minutes=45)
    code = client.create_offline_password(FRONT.device_id, name="LP EV23J", effective=asked_start, invalid=asked_end)
    assert (code.effective, code.invalid) == (NOW, NOW + timedelta(hours=5))  # 15:30 -> 15:00, 20:45 -> 20:00
    assert code.name == "LP EV23J" and code.password_id.isdigit()
    assert len(code.digits) == OFFLINE_CODE_DIGITS and code.digits.isdigit()
    [held] = sandbox.offline_codes(FRONT.device_id)
    assert (held.password_id, held.digits, held.kind, held.effective, held.invalid) == \
        (code.password_id, code.digits, "multiple", NOW, NOW + timedelta(hours=5))

    assert not sandbox.would_open(FRONT.device_id, code.digits, NOW - timedelta(hours=1))
    assert not sandbox.would_open(FRONT.device_id, code.digits, NOW - timedelta(seconds=1))
    assert sandbox.would_open(FRONT.device_id, code.digits, NOW)
    assert sandbox.would_open(FRONT.device_id, code.digits, NOW + timedelta(hours=4, minutes=59))
    assert not sandbox.would_open(FRONT.device_id, code.digits, NOW + timedelta(hours=5))
    assert not sandbox.would_open(FRONT.device_id, code.digits, NOW + timedelta(hours=6))
    assert sandbox.offline_codes(FRONT.device_id)[0].first_used_at is None  # looking records nothing


def test_an_unused_code_dies_24_hours_after_its_start(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    code = offline(client, hours=5 * 24)
    assert sandbox.would_open(FRONT.device_id, code.digits, NOW + timedelta(hours=23, minutes=59))
    assert not sandbox.would_open(FRONT.device_id, code.digits, NOW + timedelta(hours=24))
    assert not sandbox.enter_code(FRONT.device_id, code.digits, NOW + timedelta(days=2))  # too late, forever
    assert sandbox.offline_codes(FRONT.device_id)[0].first_used_at is None
    assert not sandbox.enter_code(FRONT.device_id, code.digits, NOW + timedelta(days=3))


def test_a_code_used_within_24_hours_keeps_working_until_its_end(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    code = offline(client, hours=5 * 24)
    first = NOW + timedelta(hours=20)
    assert sandbox.enter_code(FRONT.device_id, code.digits, first)
    assert sandbox.offline_codes(FRONT.device_id)[0].first_used_at == first
    assert sandbox.enter_code(FRONT.device_id, code.digits, NOW + timedelta(days=3))
    assert sandbox.would_open(FRONT.device_id, code.digits, NOW + timedelta(days=5) - timedelta(seconds=1))
    assert not sandbox.would_open(FRONT.device_id, code.digits, NOW + timedelta(days=5))
    assert sandbox.would_open(FRONT.device_id, code.digits, NOW + timedelta(hours=10))  # before it, as ever
    assert sandbox.offline_codes(FRONT.device_id)[0].first_used_at == first  # the first use stays the first


def test_offline_codes_work_on_an_offline_lock(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    assert not sandbox.is_online(BACK.device_id)
    code = offline(client, device=BACK)
    assert sandbox.enter_code(BACK.device_id, code.digits, NOW + timedelta(hours=1))
    assert not sandbox.enter_code(FRONT.device_id, code.digits, NOW + timedelta(hours=1))  # another lock's code


def test_a_once_code_starts_this_hour_lasts_6_hours_and_works_once(sandbox: TuyaSandbox, client: TuyaClient,
                                                                   clock: ManualClock) -> None:
    clock.set(START + timedelta(minutes=40))
    result = raw_offline(client, name="Entrega", type="once")
    assert (result["effective_time"], result["invalid_time"]) == \
        (int(START.timestamp()), int((START + timedelta(hours=6)).timestamp()))
    digits = result["offline_temp_password"]
    assert sandbox.would_open(FRONT.device_id, digits, START + timedelta(hours=1))
    assert sandbox.enter_code(FRONT.device_id, digits, START + timedelta(hours=1))
    assert not sandbox.enter_code(FRONT.device_id, digits, START + timedelta(hours=1, minutes=5))
    assert not sandbox.would_open(FRONT.device_id, digits, START + timedelta(hours=2))
    assert [c.kind for c in sandbox.offline_codes(FRONT.device_id)] == ["once"]


def test_the_body_is_also_accepted_nested_as_tuya_names_it(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    result = raw_offline(client, offline_pwd_add_request={
        "name": "Aninhado", "type": "multiple", "effective_time": int(NOW.timestamp()),
        "invalid_time": int((NOW + timedelta(hours=3)).timestamp())})
    assert result["offline_temp_password_name"] == "Aninhado"
    assert set(result) == {"offline_temp_password_id", "offline_temp_password", "offline_temp_password_name",
                           "effective_time", "invalid_time"}


# -- clearing them ----------------------------------------------------------------------------------

def test_clear_one_clears_that_code_only_once_typed_at_the_lock(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    first = offline(client, name="LP A")
    second = offline(client, name="LP B")
    assert sandbox.enter_code(FRONT.device_id, first.digits, NOW + timedelta(hours=1))
    assert sandbox.enter_code(FRONT.device_id, second.digits, NOW + timedelta(hours=1))
    clearing = client.clear_offline_password(FRONT.device_id, first.password_id, "LP A fim")
    assert clearing.isdigit() and clearing not in (first.digits, second.digits)

    assert sandbox.would_open(FRONT.device_id, first.digits, NOW + timedelta(hours=3))  # asked, not yet typed
    typed = NOW + timedelta(hours=2)
    assert not sandbox.enter_code(FRONT.device_id, clearing, typed)  # clears, does not open
    assert not sandbox.would_open(FRONT.device_id, first.digits, NOW + timedelta(hours=3))
    assert not sandbox.enter_code(FRONT.device_id, first.digits, NOW + timedelta(hours=3))
    assert sandbox.enter_code(FRONT.device_id, second.digits, NOW + timedelta(hours=3))
    codes = {c.password_id: c for c in sandbox.offline_codes(FRONT.device_id)}
    assert codes[first.password_id].cleared_at == typed and codes[second.password_id].cleared_at is None
    [clear_code] = [c for c in codes.values() if c.kind == "clear_one"]
    assert (clear_code.clears, clear_code.first_used_at) == (first.password_id, typed)
    assert sandbox.would_open(FRONT.device_id, first.digits, NOW + timedelta(hours=1, minutes=30))  # before typing


def test_clear_all_clears_every_code_issued_before_it(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    first = offline(client, name="LP A")
    second = offline(client, name="LP B")
    clearing = raw_offline(client, name="Limpar tudo", type="clear_all")["offline_temp_password"]
    after = offline(client, name="LP C")
    assert not sandbox.enter_code(FRONT.device_id, clearing, NOW + timedelta(hours=1))
    for code, works in ((first, False), (second, False), (after, True)):
        assert sandbox.would_open(FRONT.device_id, code.digits, NOW + timedelta(hours=2)) is works


def test_clear_one_needs_an_offline_code_of_this_lock(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    assert error_of(lambda: client.clear_offline_password(FRONT.device_id, "424242", "x")).code == \
        TuyaCode.DATA_NOT_EXIST
    code = offline(client, device=BACK)
    assert error_of(lambda: client.clear_offline_password(FRONT.device_id, code.password_id, "x")).code == 1000
    pin_id = client.create_temp_password(FRONT.device_id, pin="1234567", name="PIN", effective=NOW,
                                         invalid=NOW + timedelta(hours=2))
    assert error_of(lambda: client.clear_offline_password(FRONT.device_id, pin_id, "x")).code == 1000


def test_an_offline_code_cannot_be_deleted_remotely(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    code = offline(client)
    assert error_of(lambda: client.delete_temp_password(FRONT.device_id, code.password_id)).code == 1000
    assert sandbox.would_open(FRONT.device_id, code.digits, NOW + timedelta(hours=1))


# -- the cloud's refusals ---------------------------------------------------------------------------

def test_name_too_long_is_1031(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    caught = error_of(lambda: offline(client, name="x" * 21))
    assert caught.code == TuyaCode.NAME_TOO_LONG == 1031 and not caught.retryable
    assert offline(client, name="x" * 20).name == "x" * 20


def test_a_live_code_with_the_same_name_is_1038(sandbox: TuyaSandbox, client: TuyaClient,
                                                 clock: ManualClock) -> None:
    offline(client, name="LP EV23J", hours=3)
    caught = error_of(lambda: offline(client, name="LP EV23J", start=NOW + timedelta(days=1)))
    assert caught.code == TuyaCode.DUPLICATE_NAME == 1038
    offline(client, name="LP EV23J", device=BACK)  # another lock, other names
    clock.set(NOW + timedelta(hours=3))  # the first one has ended
    offline(client, name="LP EV23J", start=NOW + timedelta(days=1))


def test_more_than_the_per_lock_maximum_is_1067(sandbox: TuyaSandbox, client: TuyaClient,
                                                clock: ManualClock) -> None:
    for index in range(3):
        offline(client, name=f"LP {index}", hours=3)
    caught = error_of(lambda: offline(client, name="LP 3"))
    assert caught.code == TuyaCode.TOO_MANY_OFFLINE_PASSWORDS == 1067
    assert calls_to(sandbox, "POST", offline_path(FRONT)) == 4  # not retried
    raw_offline(client, name="Limpar", type="clear_all")  # clearing codes are not counted
    clock.set(NOW + timedelta(hours=3))
    offline(client, name="LP 3", start=NOW + timedelta(hours=3))


def test_a_lock_without_offline_passwords_answers_2004(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    caught = error_of(lambda: offline(client, device=NO_OFFLINE))
    assert (caught.code, caught.msg, caught.retryable) == (TuyaCode.LOCK_TYPE_NOT_SUPPORTED,
                                                           "not support offline password", False)
    sandbox.set_offline_codes_supported(FRONT.device_id, False)
    assert error_of(lambda: offline(client)).code == 2004
    sandbox.set_offline_codes_supported(NO_OFFLINE.device_id, True)
    assert offline(client, device=NO_OFFLINE).digits


def test_not_a_lock_is_2004_and_an_unknown_device_1106(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    plug = error_of(lambda: offline(client, device=PLUG))
    assert plug.code == 2004 and plug.msg == "not support the lock type"
    unknown = error_of(lambda: client.create_offline_password("eb99999999999999999999", name="x", effective=NOW,
                                                              invalid=NOW + timedelta(hours=2)))
    assert unknown.code == TuyaCode.PERMISSION_DENIED


def test_times_and_types_are_validated(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    within_one_hour = error_of(lambda: client.create_offline_password(
        FRONT.device_id, name="x", effective=NOW + timedelta(minutes=10), invalid=NOW + timedelta(minutes=50)))
    assert within_one_hour.code == TuyaCode.PARAM_ILLEGAL and "rounded down" in within_one_hour.msg
    past = error_of(lambda: offline(client, start=START - timedelta(days=3), hours=24))
    assert past.code == 1109 and "past" in past.msg
    assert error_of(lambda: raw_offline(client, name="x", type="forever")).code == 1109
    assert error_of(lambda: raw_offline(client, name="", type="once")).code == 1109
    assert error_of(lambda: raw_offline(client, name="x", type="multiple", effective_time="soon",
                                        invalid_time=int(NOW.timestamp()))).code == 1109
    with pytest.raises(ValueError):  # the client's own checks, before any call
        client.create_offline_password(FRONT.device_id, name="x", effective=NOW, invalid=NOW)
    with pytest.raises(ValueError):
        client.create_offline_password(FRONT.device_id, name="x", effective=NOW.replace(tzinfo=None),
                                       invalid=NOW + timedelta(hours=2))
    assert sandbox.offline_codes(FRONT.device_id) == []


def test_faults_and_signing_apply_as_everywhere(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    client.get_device(FRONT.device_id)
    sandbox.inject("throttle", path_contains="/offline-temp-password")
    offline(client)  # refused unprocessed: resent, lands once
    assert calls_to(sandbox, "POST", offline_path(FRONT)) == 2 and len(sandbox.offline_codes(FRONT.device_id)) == 1
    sandbox.expire_tokens()
    offline(client, name="LP B")
    assert len(sandbox.offline_codes(FRONT.device_id)) == 2


def test_an_ambiguous_create_is_not_resent(sandbox: TuyaSandbox) -> None:
    with make_client(sandbox, timeout=0.3) as tuya:
        sandbox.inject("timeout", path_contains="/offline-temp-password")
        caught = error_of(lambda: offline(tuya))
    assert caught.retryable and "may have been applied" in str(caught)
    assert calls_to(sandbox, "POST", offline_path(FRONT)) == 1


def test_a_clearing_code_is_resent_after_a_server_error(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    code = offline(client)
    sandbox.inject("server_error", path_contains="/offline-temp-password")
    assert client.clear_offline_password(FRONT.device_id, code.password_id, "fim").isdigit()
    assert calls_to(sandbox, "POST", offline_path(FRONT)) == 3


# -- the client reads the answer defensively --------------------------------------------------------

def test_times_in_milliseconds_are_tolerated(sandbox: TuyaSandbox, client: TuyaClient,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    answer(sandbox, monkeypatch, "POST", offline_path(FRONT), _ok({
        "offline_temp_password_id": 98765, "offline_temp_password": "0012345678",
        "effective_time": int(NOW.timestamp()) * 1000, "invalid_time": int((NOW + timedelta(hours=3)).timestamp()) * 1000}))
    code = offline(client, name="LP X")
    assert code == OfflinePassword(password_id="98765", digits="0012345678", name="LP X", effective=NOW,
                                   invalid=NOW + timedelta(hours=3))


BAD_ANSWERS = [
    ("no id", {"offline_temp_password": "1234567890", "effective_time": 1, "invalid_time": 2},
     "no offline_temp_password_id"),
    ("no digits", {"offline_temp_password_id": 1, "effective_time": 1, "invalid_time": 2},
     "not a string of digits"),
    ("digits as a number", {"offline_temp_password_id": 1, "offline_temp_password": 1234567890,
                            "effective_time": 1, "invalid_time": 2}, "not a string of digits"),
    ("digits with letters", {"offline_temp_password_id": 1, "offline_temp_password": "12345x7890",
                             "effective_time": 1, "invalid_time": 2}, "not a string of digits"),
    ("no times", {"offline_temp_password_id": 1, "offline_temp_password": "1234567890"},
     "without effective_time / invalid_time"),
    ("empty window", {"offline_temp_password_id": 1, "offline_temp_password": "1234567890",
                      "effective_time": 1741964400, "invalid_time": 1741964400}, "not after its effective_time"),
    ("not an object", ["1234567890"], "not an object"),
]


@pytest.mark.parametrize("name, result, message", BAD_ANSWERS, ids=[c[0] for c in BAD_ANSWERS])
def test_a_broken_answer_is_a_clear_error_without_the_digits(sandbox: TuyaSandbox, client: TuyaClient,
                                                             monkeypatch: pytest.MonkeyPatch, name, result,
                                                             message) -> None:
    answer(sandbox, monkeypatch, "POST", offline_path(FRONT), _ok(result))
    caught = error_of(lambda: offline(client))
    assert caught.code is None and not caught.retryable
    assert str(caught).startswith("Tuya unexpected answer: ") and message in str(caught)
    assert "1234567890" not in str(caught) and "1234567890" not in repr(caught)
    if name == "no times":
        assert client.clear_offline_password(FRONT.device_id, "1", "fim") == "1234567890"  # a clear needs no window


def test_digits_never_show_in_reprs_or_errors(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    code = offline(client, name="LP Maria")
    clearing = client.clear_offline_password(FRONT.device_id, code.password_id, "LP Maria fim")
    for text in (repr(code), str(code), repr(sandbox.offline_codes(FRONT.device_id))):
        assert code.digits not in text and clearing not in text
    caught = error_of(lambda: offline(client, name="LP Maria"))
    for text in (str(caught), repr(caught), repr(pickle.loads(pickle.dumps(caught)))):
        assert code.digits not in text


# -- the lock's memory survives a restart ----------------------------------------------------------

def test_offline_codes_survive_a_restart(clock: ManualClock, tmp_path) -> None:
    state_file = tmp_path / "tuya_state.json"
    with TuyaSandbox([FRONT, NO_OFFLINE], clock=clock, state_file=state_file) as first, make_client(first) as tuya:
        used = offline(tuya, name="LP A", hours=5 * 24)
        cleared = offline(tuya, name="LP B")
        unused = offline(tuya, name="LP C")
        assert first.enter_code(FRONT.device_id, used.digits, NOW + timedelta(hours=1))
        clearing = tuya.clear_offline_password(FRONT.device_id, cleared.password_id, "LP B fim")
        assert not first.enter_code(FRONT.device_id, clearing, NOW + timedelta(hours=2))
        first.set_offline_codes_supported(NO_OFFLINE.device_id, True)
        before = first.offline_codes(FRONT.device_id)
    assert "offline_codes" in json.loads(state_file.read_text())["locks"][0]
    with TuyaSandbox([FRONT, NO_OFFLINE], clock=clock, state_file=state_file) as second, \
            make_client(second) as tuya:
        assert second.offline_codes(FRONT.device_id) == before
        assert [c.digits for c in second.offline_codes(FRONT.device_id)] == [c.digits for c in before]
        later = NOW + timedelta(days=3)
        assert second.would_open(FRONT.device_id, used.digits, later)       # first use remembered
        assert not second.would_open(FRONT.device_id, cleared.digits, NOW + timedelta(hours=3))
        assert not second.would_open(FRONT.device_id, unused.digits, later)  # the 24 h rule still holds
        assert offline(tuya, device=NO_OFFLINE).digits                       # the switch was kept
        assert error_of(lambda: offline(tuya, name="LP A")).code == 1038      # and the names


def test_the_keypad_also_takes_online_pins_and_a_single_use_pin_works_once(sandbox: TuyaSandbox,
                                                                           client: TuyaClient) -> None:
    client.create_temp_password(FRONT.device_id, pin="1234567", name="PIN", effective=NOW,
                                invalid=NOW + timedelta(hours=5))
    client.create_temp_password(FRONT.device_id, pin="7654321", name="Uma vez", effective=NOW,
                                invalid=NOW + timedelta(hours=5), single_use=True)
    assert sandbox.enter_code(FRONT.device_id, "1234567", NOW + timedelta(hours=1))
    assert sandbox.enter_code(FRONT.device_id, "1234567", NOW + timedelta(hours=2))
    assert not sandbox.enter_code(FRONT.device_id, "1234567", NOW + timedelta(hours=5))
    assert sandbox.enter_code(FRONT.device_id, "7654321", NOW + timedelta(hours=1))
    assert not sandbox.enter_code(FRONT.device_id, "7654321", NOW + timedelta(hours=2))
    assert not sandbox.would_open(FRONT.device_id, "7654321", NOW + timedelta(hours=2))
    assert not sandbox.enter_code(FRONT.device_id, "١٢٣٤٥٦٧", NOW + timedelta(hours=1))  # not ASCII digits
    assert not sandbox.would_open(FRONT.device_id, "", NOW + timedelta(hours=1))
