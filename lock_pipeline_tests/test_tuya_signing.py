"""Signing and ticket crypto, checked against computations written here from the spec and
against tinytuya, whose signatures the real Tuya cloud is known to accept."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import types

import pytest
import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lock_pipeline.tuya import signing
from lock_pipeline.tuya.ticket_crypto import (
    TicketCryptoError,
    decrypt_pin,
    decrypt_ticket_key,
    encrypt_pin,
    encrypt_ticket_key,
)

# The module, not the class the package re-exports under the same name.
tinytuya_cloud = importlib.import_module("tinytuya.Cloud")

CLIENT_ID = "abcd1234efgh5678ijkl"
SECRET = "0123456789abcdef0123456789ABCDEF"
TOKEN = "3f2a9c0d1e4b5a6978877665544332211"
T_MS = 1_700_000_000_500
NONCE = "5138cc3a9033d69856923fd07b491173"


def independent_sign(*, method: str, path: str, body: bytes, token: str, nonce: str = NONCE,
                     t_ms: int = T_MS, headers_block: str = "") -> str:
    """The reference's formula, spelled out without the module under test."""
    content_sha = hashlib.sha256(body).hexdigest()
    to_sign = f"{method}\n{content_sha}\n{headers_block}\n{path}"
    message = CLIENT_ID + token + str(t_ms) + nonce + to_sign
    return hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest().upper()


def test_business_call_sign_matches_independent_computation() -> None:
    body = b'{"name":"EV23J Maria","password":"ABCDEF","effective_time":1700000000}'
    path = "/v1.0/devices/eb0123456789abcdef0123/door-lock/temp-password"
    ours = signing.request_sign(secret=SECRET, client_id=CLIENT_ID, t_ms=T_MS, nonce=NONCE, method="POST",
                                body=body, url_path_and_query=path, access_token=TOKEN)
    assert ours == independent_sign(method="POST", path=path, body=body, token=TOKEN)
    assert ours == ours.upper() and len(ours) == 64


def test_token_call_sign_leaves_out_the_token() -> None:
    ours = signing.request_sign(secret=SECRET, client_id=CLIENT_ID, t_ms=T_MS, nonce=NONCE, method="GET",
                                body=b"", url_path_and_query="/v1.0/token?grant_type=1")
    assert ours == independent_sign(method="GET", path="/v1.0/token?grant_type=1", body=b"", token="")
    assert ours != independent_sign(method="GET", path="/v1.0/token?grant_type=1", body=b"", token=TOKEN)


def test_empty_body_hashes_the_empty_string() -> None:
    assert signing.body_sha256(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_query_keys_are_sorted_and_not_url_encoded() -> None:
    pq = signing.path_and_query("/v1.0/x", {"size": "50", "last_row_key": "a b/c=d", "b": 2})
    assert pq == "/v1.0/x?b=2&last_row_key=a b/c=d&size=50"
    assert signing.path_and_query("/v1.0/x", None) == "/v1.0/x"
    assert signing.path_and_query("/v1.0/x", [("z", "1"), ("a", "2")]) == "/v1.0/x?a=2&z=1"


def test_signed_headers_block_follows_the_signature_headers_order() -> None:
    block = signing.signed_headers_block([("area_id", "29a33e8796834b1efa6"), ("call_id", "8afdb70ab2ed11eb85")])
    assert block == "area_id:29a33e8796834b1efa6\ncall_id:8afdb70ab2ed11eb85\n"
    ours = signing.request_sign(secret=SECRET, client_id=CLIENT_ID, t_ms=T_MS, nonce=NONCE, method="GET",
                                body=b"", url_path_and_query="/v1.0/p", access_token=TOKEN,
                                signed_headers=[("area_id", "29a33e8796834b1efa6"), ("call_id", "8afdb70ab2ed11eb85")])
    assert ours == independent_sign(method="GET", path="/v1.0/p", body=b"", token=TOKEN, headers_block=block)


def test_any_change_to_the_request_changes_the_sign() -> None:
    base = dict(secret=SECRET, client_id=CLIENT_ID, t_ms=T_MS, nonce=NONCE, method="POST", body=b"{}",
                url_path_and_query="/v1.0/a?x=1", access_token=TOKEN)
    reference = signing.request_sign(**base)
    for key, value in [("t_ms", T_MS + 1), ("nonce", "other"), ("method", "PUT"), ("body", b"{ }"),
                       ("url_path_and_query", "/v1.0/a?x=2"), ("access_token", TOKEN + "0"),
                       ("secret", SECRET[::-1])]:
        assert signing.request_sign(**{**base, key: value}) != reference, key


# -- tinytuya: the same request must carry the same sign ------------------------------------------

class _RecordingRequests:
    """Stands in for the ``requests`` module inside tinytuya only, to read the headers it would send."""

    Request = requests.Request

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def _answer(self) -> types.SimpleNamespace:
        text = json.dumps({"success": True, "t": T_MS, "result": {"access_token": TOKEN, "expire_time": 7200}})
        return types.SimpleNamespace(status_code=200, text=text, content=text.encode())

    def get(self, url: str, headers: dict) -> types.SimpleNamespace:
        self.sent.append({"method": "GET", "url": url, "headers": dict(headers), "data": ""})
        return self._answer()

    def request(self, method: str, url: str, headers: dict, data: str) -> types.SimpleNamespace:
        self.sent.append({"method": method, "url": url, "headers": dict(headers), "data": data})
        return self._answer()


@pytest.fixture
def tinytuya_recorder(monkeypatch: pytest.MonkeyPatch) -> tuple[object, _RecordingRequests]:
    recorder = _RecordingRequests()
    monkeypatch.setattr(tinytuya_cloud, "requests", recorder)
    monkeypatch.setattr(tinytuya_cloud, "time", types.SimpleNamespace(time=lambda: T_MS / 1000))
    cloud = tinytuya_cloud.Cloud(apiRegion="us", apiKey=CLIENT_ID, apiSecret=SECRET, initial_token=TOKEN)
    return cloud, recorder


def _ours_for(sent: dict, token: str, path: str, query: dict | None = None) -> str:
    """Our sign for what tinytuya sent, from the request's parts as the caller gave them."""
    names = [n for n in sent["headers"].get("Signature-Headers", "").split(":") if n]
    return signing.request_sign(
        secret=SECRET, client_id=CLIENT_ID, t_ms=int(sent["headers"]["t"]), nonce="", method=sent["method"],
        body=(sent["data"] or "").encode(), url_path_and_query=signing.path_and_query(path, query),
        access_token=token, signed_headers=[(n, sent["headers"][n]) for n in names],
    )


def test_token_sign_equals_tinytuya(tinytuya_recorder) -> None:
    cloud, recorder = tinytuya_recorder
    cloud.token = None
    cloud._gettoken()
    sent = recorder.sent[-1]
    assert sent["url"].endswith("/v1.0/token?grant_type=1")
    assert sent["headers"]["t"] == str(T_MS)
    assert _ours_for(sent, "", "/v1.0/token", {"grant_type": "1"}) == sent["headers"]["sign"]


def test_get_with_query_sign_equals_tinytuya(tinytuya_recorder) -> None:
    cloud, recorder = tinytuya_recorder
    query = {"size": "50", "last_row_key": "eb01 +/=&x"}  # URL-encoding would change these characters
    cloud.cloudrequest("/v1.0/iot-01/associated-users/devices", query=query)
    sent = recorder.sent[-1]
    assert "eb01+%2B%2F%3D%26x" in sent["url"]  # tinytuya sends it encoded but signs it raw
    assert _ours_for(sent, TOKEN, "/v1.0/iot-01/associated-users/devices", query) == sent["headers"]["sign"]


def test_post_with_body_and_signed_header_sign_equals_tinytuya(tinytuya_recorder) -> None:
    cloud, recorder = tinytuya_recorder
    post = {"name": "EV23J Maria", "password": "9F86D081884C7D65", "password_type": "ticket",
            "ticket_id": "9wxxoLM", "effective_time": 1700000000, "invalid_time": 1700086400, "type": 0}
    path = "/v1.0/devices/eb0123456789abcdef0123/door-lock/temp-password"
    cloud.cloudrequest(path, action="POST", post=post)
    sent = recorder.sent[-1]
    assert sent["headers"]["Signature-Headers"] == "Content-type"
    assert _ours_for(sent, TOKEN, path) == sent["headers"]["sign"]


def test_delete_sign_equals_tinytuya(tinytuya_recorder) -> None:
    cloud, recorder = tinytuya_recorder
    path = "/v1.0/devices/eb0123456789abcdef0123/door-lock/temp-passwords/10000001"
    cloud.cloudrequest(path, action="DELETE")
    sent = recorder.sent[-1]
    assert sent["method"] == "DELETE"
    assert _ours_for(sent, TOKEN, path) == sent["headers"]["sign"]


# -- ticket crypto ----------------------------------------------------------------------------------

def _aes_ecb_raw(key: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def test_pin_encryption_matches_hand_padded_aes128_ecb() -> None:
    key = b"0123456789abcdef"
    hand_padded = b"1234567" + bytes([9]) * 9
    assert encrypt_pin("1234567", key) == _aes_ecb_raw(key, hand_padded).hex().upper()


def test_ticket_key_decrypts_like_hand_padded_aes256_ecb() -> None:
    inner = b"a1b2c3d4e5f60718"
    ticket_key_hex = _aes_ecb_raw(SECRET.encode(), inner + bytes([16]) * 16).hex().upper()
    assert decrypt_ticket_key(ticket_key_hex, SECRET) == inner
    assert decrypt_ticket_key(ticket_key_hex.lower(), SECRET) == inner


def test_ticket_round_trip_both_directions() -> None:
    key = b"fedcba9876543210"
    assert decrypt_ticket_key(encrypt_ticket_key(key, SECRET), SECRET) == key
    assert decrypt_pin(encrypt_pin("0012345", key), key) == "0012345"


def test_wrong_secret_or_garbage_is_a_clean_error_without_key_material() -> None:
    key = b"fedcba9876543210"
    ticket_key_hex = encrypt_ticket_key(key, SECRET)
    with pytest.raises(TicketCryptoError) as wrong:
        decrypt_ticket_key(ticket_key_hex, SECRET[::-1])
    assert ticket_key_hex not in str(wrong.value) and SECRET[::-1] not in str(wrong.value)
    with pytest.raises(TicketCryptoError):
        decrypt_ticket_key("not hex", SECRET)
    with pytest.raises(TicketCryptoError):
        decrypt_ticket_key(ticket_key_hex, "short")
    with pytest.raises(TicketCryptoError):
        encrypt_pin("12a4567", key)
