"""The production TuyaClient against the sandbox cloud over real HTTPS on 127.0.0.1 (no fakes)."""

from __future__ import annotations

import pickle
import time
from datetime import datetime, timedelta, timezone

import certifi
import pytest

from lock_pipeline.clock import ManualClock
from lock_pipeline.sandbox.seed import SeedLock
from lock_pipeline.sandbox.tuya_cloud import TuyaSandbox
from lock_pipeline.tuya import client as client_module
from lock_pipeline.tuya.client import TempPassword, TuyaClient, TuyaCode, TuyaDevice, TuyaError
from lock_pipeline_tests.helpers import make_tuya_client as make_client

pytestmark = pytest.mark.integration  # sandbox servers on loopback

NOW = datetime(2025, 3, 14, 15, 0, tzinfo=timezone.utc)
FRONT = SeedLock(device_id="eb00000000000000000001", name="Fechadura Atlantica 101")
BACK = SeedLock(device_id="eb00000000000000000002", name="Ipanema 304", online=False)
ZIGBEE = SeedLock(device_id="eb00000000000000000003", name="Zigbee lock", pin_length=6,
                  product_name="Zigbee Smart Lock")
TEMP_PASSWORDS = f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-passwords"
CREATE = f"/v1.0/devices/{FRONT.device_id}/door-lock/temp-password"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW - timedelta(hours=3))


@pytest.fixture
def sandbox(clock: ManualClock):
    with TuyaSandbox([FRONT, BACK, ZIGBEE], clock=clock, max_pins_per_lock=4) as server:
        yield server


@pytest.fixture
def client(sandbox: TuyaSandbox):
    with make_client(sandbox) as tuya:
        yield tuya


def create(tuya: TuyaClient, pin: str, *, device: SeedLock = FRONT, name: str = "EV23J Maria",
           start: datetime = NOW, hours: float = 24, **extra) -> str:
    return tuya.create_temp_password(device.device_id, pin=pin, name=name, effective=start,
                                     invalid=start + timedelta(hours=hours), **extra)


def calls_to(sandbox: TuyaSandbox, method: str, path: str) -> int:
    return sum(1 for entry in sandbox.request_log if entry == (method, path))


# -- the happy path ---------------------------------------------------------------------------------

def test_pin_round_trip_create_list_get_delete(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    password_id = create(client, "1357913", time_zone="America/Sao_Paulo")
    assert isinstance(password_id, str) and password_id.isdigit()
    assert sandbox.would_open(FRONT.device_id, "1357913", NOW + timedelta(hours=1))
    assert not sandbox.would_open(FRONT.device_id, "1357913", NOW - timedelta(minutes=1))
    assert not sandbox.would_open(FRONT.device_id, "1357913", NOW + timedelta(hours=24))

    expected = TempPassword(password_id=password_id, name="EV23J Maria", effective_time=NOW,
                            invalid_time=NOW + timedelta(hours=24), phase=2, delivery_status=None)
    assert client.list_temp_passwords(FRONT.device_id) == [expected]
    assert client.get_temp_password(FRONT.device_id, password_id) == expected
    assert sandbox.pins(FRONT.device_id)[0].time_zone == "America/Sao_Paulo"

    client.delete_temp_password(FRONT.device_id, password_id)
    assert client.list_temp_passwords(FRONT.device_id) == []
    assert [p.phase for p in client.list_temp_passwords(FRONT.device_id, valid_only=False)] == [0]
    assert not sandbox.would_open(FRONT.device_id, "1357913", NOW + timedelta(hours=1))


def test_single_use_sends_type_1(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    create(client, "1234567", single_use=True)
    create(client, "1234568", name="Other")
    assert [p.single_use for p in sandbox.pins(FRONT.device_id)] == [True, False]


def test_devices_are_listed_across_pages(clock: ManualClock) -> None:
    locks = [SeedLock(device_id=f"eb{i:020d}", name=f"Porta {i}", online=i % 3 != 0) for i in range(120)]
    with TuyaSandbox(locks, clock=clock) as server, make_client(server) as tuya:
        devices = tuya.list_devices()
        assert [d.device_id for d in devices] == [lock.device_id for lock in locks]
        assert devices[3] == TuyaDevice(device_id=locks[3].device_id, name="Porta 3", online=False, category="ms",
                                        product_name="Wi-Fi Smart Lock")
        assert calls_to(server, "GET", client_module.DEVICE_LIST_PATH) == 3  # 50 + 50 + 20


def test_get_device_reflects_online_state(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    assert client.get_device(ZIGBEE.device_id).product_name == "Zigbee Smart Lock"
    assert client.get_device(BACK.device_id).online is False
    sandbox.set_online(BACK.device_id, True)
    assert client.get_device(BACK.device_id).online is True


def test_offline_lock_pin_goes_from_phase_1_to_2(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    password_id = create(client, "2468024", device=BACK)
    assert client.get_temp_password(BACK.device_id, password_id).phase == 1
    assert not sandbox.would_open(BACK.device_id, "2468024", NOW + timedelta(hours=1))
    sandbox.set_online(BACK.device_id, True)
    assert client.get_temp_password(BACK.device_id, password_id).phase == 2
    assert sandbox.would_open(BACK.device_id, "2468024", NOW + timedelta(hours=1))


def test_foreign_pins_are_listed_with_their_names(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    foreign_id = sandbox.add_foreign_pin(FRONT.device_id, "9090909", "Limpeza", NOW - timedelta(days=2),
                                         NOW + timedelta(days=90))
    create(client, "1111111")
    listed = client.list_temp_passwords(FRONT.device_id)
    assert [(p.password_id, p.name) for p in listed][0] == (foreign_id, "Limpeza")
    assert len(listed) == 2


# -- the lock's refusals -----------------------------------------------------------------------------

def test_wrong_length_is_refused_and_not_retried(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    with pytest.raises(TuyaError) as caught:
        create(client, "123456")
    assert caught.value.code == TuyaCode.PARAM_ILLEGAL and not caught.value.retryable
    assert "7 digits" in str(caught.value)
    assert calls_to(sandbox, "POST", CREATE) == 1
    assert create(client, "123456", device=ZIGBEE)


def test_duplicate_pin_is_refused_with_its_own_code(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    create(client, "5555555", name="First")
    with pytest.raises(TuyaError) as caught:
        create(client, "5555555", name="Second", start=NOW + timedelta(days=3))
    assert caught.value.code == TuyaCode.DUPLICATE_PASSWORD and not caught.value.retryable
    assert "5555555" not in str(caught.value) and "5555555" not in repr(caught.value)


def test_storage_full_is_refused_with_its_own_code(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    sandbox.set_storage_limit(FRONT.device_id, 2)
    create(client, "1000001", name="A")
    create(client, "1000002", name="B")
    with pytest.raises(TuyaError) as caught:
        create(client, "1000003", name="C")
    assert caught.value.code == TuyaCode.PASSWORD_STORAGE_FULL


def test_offline_answer_is_not_retried_but_marked_retryable(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    client.get_device(FRONT.device_id)
    sandbox.inject("offline", path_contains="/door-lock/")
    with pytest.raises(TuyaError) as caught:
        client.list_temp_passwords(FRONT.device_id)
    assert caught.value.code == TuyaCode.DEVICE_OFFLINE and caught.value.retryable
    assert str(caught.value) == f"Tuya 2001 device is offline on GET {TEMP_PASSWORDS}"
    assert calls_to(sandbox, "GET", TEMP_PASSWORDS) == 1


def test_deleting_an_unknown_password_is_an_error(client: TuyaClient) -> None:
    with pytest.raises(TuyaError) as caught:
        client.delete_temp_password(FRONT.device_id, "424242")
    assert caught.value.code == TuyaCode.DATA_NOT_EXIST


# -- tokens and clocks -------------------------------------------------------------------------------

def test_token_is_fetched_once_and_reused(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    for _ in range(5):
        client.get_device(FRONT.device_id)
    assert calls_to(sandbox, "GET", "/v1.0/token") == 1


def test_expired_token_is_renewed_and_the_call_retried_once(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    client.get_device(FRONT.device_id)
    sandbox.expire_tokens()
    assert client.get_device(FRONT.device_id).device_id == FRONT.device_id
    paths = [path for _, path in sandbox.request_log]
    assert paths[0] == "/v1.0/token" and paths[-2].startswith("/v1.0/token/")  # renewed by refresh token
    assert calls_to(sandbox, "GET", f"/v1.0/devices/{FRONT.device_id}") == 3


def test_token_refused_twice_surfaces_the_error(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    client.get_device(FRONT.device_id)
    sandbox.inject("token_expired", count=2, path_contains=f"/devices/{FRONT.device_id}")
    with pytest.raises(TuyaError) as caught:
        client.get_device(FRONT.device_id)
    assert caught.value.code == TuyaCode.TOKEN_EXPIRED


def test_token_is_renewed_before_it_expires(clock: ManualClock) -> None:
    with TuyaSandbox([FRONT], clock=clock, token_ttl_seconds=1) as server, make_client(server) as tuya:
        tuya.get_device(FRONT.device_id)
        time.sleep(1.0)
        tuya.get_device(FRONT.device_id)
        methods_paths = [path for _, path in server.request_log]
        assert len(methods_paths) == 4 and methods_paths[2].startswith("/v1.0/token/")  # no refused call


def test_spent_refresh_token_falls_back_to_a_new_grant(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    client.get_device(FRONT.device_id)
    sandbox.expire_tokens()
    sandbox.inject("token_expired", path_contains="/v1.0/token/")
    assert client.get_device(FRONT.device_id).name == FRONT.name
    assert calls_to(sandbox, "GET", "/v1.0/token") == 2


def test_a_skewed_host_clock_is_corrected_from_the_cloud_time(sandbox: TuyaSandbox, client: TuyaClient,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "_epoch_ms", lambda: int(time.time() * 1000) - 20 * 60 * 1000)
    assert client.get_device(FRONT.device_id).device_id == FRONT.device_id
    assert calls_to(sandbox, "GET", "/v1.0/token") == 2  # 1013 once, then accepted


# -- retries, timeouts, broken answers ---------------------------------------------------------------

def test_throttle_is_retried_then_succeeds(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    client.get_device(FRONT.device_id)
    sandbox.inject("throttle", count=2)
    assert client.list_temp_passwords(FRONT.device_id) == []
    assert calls_to(sandbox, "GET", TEMP_PASSWORDS) == 3


def test_throttle_beyond_the_attempts_surfaces_a_retryable_error(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    client.get_device(FRONT.device_id)
    sandbox.inject("throttle", count=5)
    with pytest.raises(TuyaError) as caught:
        client.list_temp_passwords(FRONT.device_id)
    assert caught.value.code == TuyaCode.CONCURRENT_REQUEST_LIMIT and caught.value.retryable
    assert "after 3 attempts" in str(caught.value)
    assert calls_to(sandbox, "GET", TEMP_PASSWORDS) == 3


def test_server_error_is_retried(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    sandbox.inject("server_error", path_contains="/door-lock/")
    assert client.list_temp_passwords(FRONT.device_id) == []
    assert calls_to(sandbox, "GET", TEMP_PASSWORDS) == 2


def test_html_answer_becomes_a_clear_tuya_error(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    sandbox.inject("html", count=3, path_contains="/door-lock/")
    with pytest.raises(TuyaError) as caught:
        client.list_temp_passwords(FRONT.device_id)
    assert caught.value.code is None and caught.value.path == TEMP_PASSWORDS
    assert "HTTP 502" in str(caught.value) and "not JSON" in str(caught.value)
    sandbox.inject("html", path_contains="/door-lock/")
    assert client.list_temp_passwords(FRONT.device_id) == []


def test_json_without_success_becomes_a_clear_tuya_error(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    sandbox.inject("malformed", path_contains="/door-lock/")
    with pytest.raises(TuyaError) as caught:
        client.list_temp_passwords(FRONT.device_id)
    assert caught.value.code is None and not caught.value.retryable
    assert str(caught.value) == f"Tuya unexpected answer: no boolean 'success' field on GET {TEMP_PASSWORDS}"


def test_timeout_is_honoured_and_surfaces_after_the_attempts(sandbox: TuyaSandbox) -> None:
    with make_client(sandbox, timeout=0.3, max_attempts=2) as tuya:
        tuya.get_device(FRONT.device_id)
        sandbox.inject("timeout", count=2)
        started = time.monotonic()
        with pytest.raises(TuyaError) as caught:
            tuya.get_device(FRONT.device_id)
        elapsed = time.monotonic() - started
    assert 0.55 < elapsed < 20  # two 0.3 s timeouts, not the fault's 30 s silence each
    assert caught.value.code is None and caught.value.retryable
    assert "no answer within 0.3 s" in str(caught.value) and "after 2 attempts" in str(caught.value)


def test_a_create_that_timed_out_is_not_sent_twice(sandbox: TuyaSandbox) -> None:
    with make_client(sandbox, timeout=0.3) as tuya:
        sandbox.inject("timeout", path_contains="/door-lock/temp-password")
        with pytest.raises(TuyaError) as caught:
            create(tuya, "3141592")
    assert caught.value.retryable and "may have been applied" in str(caught.value)
    assert calls_to(sandbox, "POST", CREATE) == 1


def test_a_throttled_create_is_resent_and_lands_once(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    sandbox.inject("throttle", path_contains="/door-lock/temp-password")
    create(client, "2718281")
    assert calls_to(sandbox, "POST", CREATE) == 2
    assert [p.digits for p in sandbox.pins(FRONT.device_id)] == ["2718281"]


def test_delete_that_finds_nothing_after_an_ambiguous_failure_counts_as_done(sandbox: TuyaSandbox,
                                                                              client: TuyaClient) -> None:
    password_id = create(client, "1618033")
    client.delete_temp_password(FRONT.device_id, password_id)
    sandbox.inject("server_error", path_contains="/door-lock/temp-passwords/")
    client.delete_temp_password(FRONT.device_id, password_id)  # 500, then "data not exist": already gone
    with pytest.raises(TuyaError):
        client.delete_temp_password(FRONT.device_id, password_id)  # without the ambiguity it is an error


# -- TLS trust ---------------------------------------------------------------------------------------

def test_requests_ca_bundle_is_honoured(sandbox: TuyaSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_cert_path)
    with make_client(sandbox, verify=True) as tuya:
        assert tuya.get_device(FRONT.device_id).name == FRONT.name


def test_requests_ca_bundle_is_trusted_alongside_a_host_wide_ssl_cert_file(sandbox: TuyaSandbox,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded default's case: the host sets SSL_CERT_FILE, the sandbox adds its CA by REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_cert_path)
    with make_client(sandbox, verify=True) as tuya:
        assert tuya.get_device(FRONT.device_id).name == FRONT.name


def test_a_missing_ca_bundle_stops_the_start_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    with pytest.raises(ValueError, match="REQUESTS_CA_BUNDLE"):
        TuyaClient("https://openapi.tuyaus.com", "id", "x" * 32)


def test_ssl_cert_file_is_honoured(sandbox: TuyaSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", sandbox.ca_cert_path)
    with make_client(sandbox, verify=True) as tuya:
        assert tuya.get_device(FRONT.device_id).name == FRONT.name


def test_untrusted_certificate_fails_fast_and_clearly(sandbox: TuyaSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    with make_client(sandbox, verify=True) as tuya:
        with pytest.raises(TuyaError) as caught:
            tuya.get_device(FRONT.device_id)
    assert "certificate not trusted" in str(caught.value) and not caught.value.retryable
    assert sandbox.request_count == 0


# -- secrets stay secret -----------------------------------------------------------------------------

def test_no_pin_secret_or_token_in_errors_or_repr(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    create(client, "8675309")
    token = client._token.access_token
    refresh_token = client._token.refresh_token
    errors: list[TuyaError] = []
    with pytest.raises(TuyaError) as duplicate:
        create(client, "8675309", name="Again")
    errors.append(duplicate.value)
    sandbox.expire_tokens()
    sandbox.inject("server_error", count=3, path_contains="/v1.0/token/")
    with pytest.raises(TuyaError) as refresh_failed:
        client.get_device(FRONT.device_id)
    errors.append(refresh_failed.value)
    assert refresh_failed.value.path == "/v1.0/token/<refresh_token>"
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(client)]
    for text in texts:
        for secret in ("8675309", sandbox.access_secret, token, refresh_token):
            assert secret not in text, text
    unpickled = pickle.loads(pickle.dumps(duplicate.value))
    assert (unpickled.code, str(unpickled), unpickled.retryable) == (TuyaCode.DUPLICATE_PASSWORD,
                                                                      str(duplicate.value), False)


def test_arguments_are_checked_before_any_call(sandbox: TuyaSandbox, client: TuyaClient) -> None:
    with pytest.raises(ValueError):
        client.create_temp_password(FRONT.device_id, pin="12345a7", name="x", effective=NOW,
                                    invalid=NOW + timedelta(hours=1))
    with pytest.raises(ValueError):
        client.create_temp_password(FRONT.device_id, pin="1234567", name="x", effective=NOW.replace(tzinfo=None),
                                    invalid=NOW + timedelta(hours=1))
    with pytest.raises(ValueError):
        client.create_temp_password(FRONT.device_id, pin="1234567", name="x", effective=NOW, invalid=NOW)
    with pytest.raises(ValueError):
        client.get_temp_password("../token", "1")
    with pytest.raises(ValueError):
        TuyaClient("http://openapi.tuyaus.com", "id", "x" * 32)
    with pytest.raises(ValueError):
        TuyaClient("https://openapi.tuyaus.com", "id", "short")
    assert sandbox.request_count == 0
