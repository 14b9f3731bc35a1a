"""Production Tuya Cloud client for door locks.

Signed HTTPS calls (post-2021 algorithm, see :mod:`lock_pipeline.tuya.signing`) with a timeout
on every call, a cached access token that is refreshed before it expires, bounded retries
with exponential backoff on throttling / 5xx / timeouts / connection errors, and the
password-ticket flow for temporary PINs (create, and modify-password to move a PIN's window
without changing its digits), offline temporary passwords (computed by the cloud for the lock,
so the lock need not be online), and device status data points (battery).

Why the transport is our own (httpx) and not ``tinytuya.Cloud``: tinytuya calls ``requests``
with no timeout (a hung cloud call would hang a Dagster run forever), builds
``https://<region host>`` itself (no sandbox, no custom base URL), renews the token only when
the answer's text contains "token invalid" (so 1010 "token is expired" is never renewed),
never uses refresh tokens, retries nothing, and sends the access secret as a header on token
calls. What we keep from it is what the real cloud is known to accept: the signing algorithm
(the tests prove our ``sign`` equals tinytuya's for the same request) and its device-list
endpoint (``/v1.0/iot-01/associated-users/devices`` paged by ``last_row_key``).

Protocol time (``t``, token expiry) is wall-clock time by necessity: the cloud checks it.
The pipeline's injected clock is for business time only and never reaches this module.

Nothing here logs, and no exception carries a PIN, ticket key, token or secret.
"""

from __future__ import annotations

import json
import os
import random
import re
import ssl
import threading
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import IntEnum
from typing import Any, Iterable, Mapping, Protocol
from urllib.parse import urlencode, urlsplit

import httpx

from lock_pipeline.tuya import signing
from lock_pipeline.tuya.ticket_crypto import TicketCryptoError, decrypt_ticket_key, encrypt_pin

DEVICE_LIST_PATH = "/v1.0/iot-01/associated-users/devices"
OFFLINE_PASSWORD_PATH = "/v1.1/devices/{device_id}/door-lock/offline-temp-password"
TOKEN_PATH = "/v1.0/token"
_DEVICE_PAGE_SIZE = 50
_MAX_DEVICE_PAGES = 200
_MAX_BACKOFF_SECONDS = 30.0
_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class TuyaCode(IntEnum):
    """Codes the pipeline reacts to. Tuya answers errors as HTTP 200 ``{"success": false, "code"}``."""

    SYSTEM_ERROR = 500
    DATA_NOT_EXIST = 1000
    GRANT_TYPE_INVALID = 1003
    SIGN_INVALID = 1004
    CLIENT_ID_INVALID = 1005
    TOKEN_EXPIRED = 1010
    TOKEN_INVALID = 1011
    TOKEN_STATUS_INVALID = 1012
    REQUEST_TIME_INVALID = 1013
    MISSING_HEADER = 1105
    PERMISSION_DENIED = 1106
    URI_PATH_INVALID = 1108
    PARAM_ILLEGAL = 1109
    CONCURRENT_REQUEST_LIMIT = 1110
    SYSTEM_BUSY = 1111
    TOO_FREQUENT = 1199
    NAME_TOO_LONG = 1031               # offline password name over 20 characters (as public callers report)
    DUPLICATE_NAME = 1038              # a live offline password of the lock already has this name
    TOO_MANY_OFFLINE_PASSWORDS = 1067  # the lock's offline passwords in the period are at their maximum
    DEVICE_OFFLINE = 2001
    # "Not support ...": a door-lock call on a device that is not a lock, and (the sandbox's choice,
    # Tuya documents no code) a lock that refuses modify-password or has no offline passwords.
    LOCK_TYPE_NOT_SUPPORTED = 2004
    # Tuya documents no OpenAPI code for these two lock answers (only the Zigbee
    # delivery_status 4 / 5); the sandbox uses these numbers and the pipeline keys on them.
    DUPLICATE_PASSWORD = 2303
    PASSWORD_STORAGE_FULL = 2304
    API_NOT_AUTHORIZED = 28841105


TOKEN_CODES = frozenset({TuyaCode.TOKEN_EXPIRED, TuyaCode.TOKEN_INVALID, TuyaCode.TOKEN_STATUS_INVALID})
TRANSIENT_CODES = frozenset({TuyaCode.SYSTEM_ERROR, TuyaCode.CONCURRENT_REQUEST_LIMIT,
                             TuyaCode.SYSTEM_BUSY, TuyaCode.TOO_FREQUENT})
# Answers that prove the request was refused before it did anything: safe to resend even a create.
_REFUSED_UNPROCESSED = TOKEN_CODES | {TuyaCode.REQUEST_TIME_INVALID, TuyaCode.CONCURRENT_REQUEST_LIMIT,
                                      TuyaCode.TOO_FREQUENT, TuyaCode.SIGN_INVALID}


class TuyaError(Exception):
    """A Tuya call that failed: the cloud's code and message, or a transport/format problem (code None).

    ``retryable`` tells the caller a later attempt may succeed (throttling, 5xx, timeouts,
    a lock that is offline). The client has already spent its own bounded retries.
    """

    def __init__(self, code: int | None, msg: str, path: str, retryable: bool = False, method: str = "") -> None:
        self.code = None if code is None else int(code)
        self.msg = msg
        self.path = path
        self.retryable = retryable
        self.method = method
        super().__init__(self.code, msg, path, retryable, method)  # args rebuild it when unpickled

    def __str__(self) -> str:
        head = "Tuya" if self.code is None else f"Tuya {self.code}"
        where = f"{self.method} {self.path}" if self.method else self.path
        return f"{head} {self.msg} on {where}"

    def __repr__(self) -> str:
        return f"TuyaError({str(self)!r}, retryable={self.retryable})"


@dataclass(frozen=True)
class Battery:
    """A lock's battery as it reports it: ``value`` verbatim ("87", "low"), ``kind`` "percent" or
    "level", ``code`` the data point it came from, ``percent`` when the lock reports one."""

    value: str
    kind: str
    code: str
    percent: int | None


@dataclass(frozen=True)
class DataPoint:
    """One device status data point (``{"code", "value"}``), value as the device reports it."""

    code: str
    value: object


@dataclass(frozen=True)
class TuyaDevice:
    device_id: str
    name: str
    online: bool
    category: str
    product_name: str
    # A reading, not part of what the device is: two listings of one device compare equal while
    # its battery drains (and constructors written before it still work).
    battery: Battery | None = field(default=None, compare=False)


@dataclass(frozen=True)
class OfflinePassword:
    """An offline temporary password: the window is what the cloud actually used (whole hours)."""

    password_id: str
    digits: str = field(repr=False)
    name: str
    effective: datetime
    invalid: datetime


@dataclass(frozen=True)
class TempPassword:
    password_id: str
    name: str
    effective_time: datetime
    invalid_time: datetime
    phase: int | None
    delivery_status: int | None


@dataclass(frozen=True)
class Token:
    """An access token and when to renew it (wall-clock epoch seconds: it may be shared between processes)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    renew_at: float

    def usable(self, now: float) -> bool:
        return now < self.renew_at


class TokenStore(Protocol):
    """Where clients in many processes share one token (Tuya's tokens live 2 h; every run asking for its
    own multiplied the token calls). ``exclusive`` lets one refresher at a time fetch a new token."""

    def load(self) -> Token | None: ...

    def save(self, token: Token) -> None: ...

    def exclusive(self) -> AbstractContextManager[None]: ...


@dataclass(frozen=True)
class _Outcome:
    result: Any = None
    error: TuyaError | None = None
    server_t_ms: int | None = None
    unprocessed: bool = False  # the request provably did nothing (safe to resend a create)


def _epoch_ms() -> int:
    """Wall-clock epoch milliseconds for the ``t`` header (the cloud rejects skewed ``t`` with 1013)."""
    return int(time.time() * 1000)


class TuyaClient:
    """Tuya Cloud OpenAPI for door locks, over httpx; thread-safe."""

    def __init__(self, base_url: str, access_id: str, access_secret: str, *, timeout: float = 10.0,
                 max_attempts: int = 4, backoff_seconds: float = 0.5, verify: bool | str = True,
                 token_store: TokenStore | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"Tuya base_url must be an https:// URL with a host, got {base_url!r}")
        if not access_id:
            raise ValueError("Tuya access_id is empty")
        if len(access_secret.encode("utf-8")) != 32:
            raise ValueError("Tuya access_secret must be the project's 32-character Access Secret")
        if timeout <= 0 or max_attempts < 1 or backoff_seconds < 0:
            raise ValueError("timeout must be > 0, max_attempts >= 1 and backoff_seconds >= 0")
        self._base_url = base_url.rstrip("/")
        self._access_id = access_id
        self._access_secret = access_secret
        self._timeout = float(timeout)
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._token: Token | None = None
        self._token_lock = threading.Lock()
        self._token_store = token_store
        self._refused_tokens: set[str] = set()  # answered 1010/1011: never adopted again from the store
        self._clock_offset_ms = 0
        self._http = httpx.Client(
            base_url=self._base_url,
            timeout=httpx.Timeout(self._timeout),
            verify=_tls_verification(verify),
            headers={"User-Agent": "lock_pipeline-tuya/1"},
            follow_redirects=False,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "TuyaClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TuyaClient(base_url={self._base_url!r}, access_id={_mask(self._access_id)!r})"

    # -- devices ---------------------------------------------------------------------------

    def list_devices(self) -> list[TuyaDevice]:
        """Every device linked to the cloud project, walking ``last_row_key`` pages."""
        devices: dict[str, TuyaDevice] = {}
        last_row_key: str | None = None
        seen_keys: set[str] = set()
        for _ in range(_MAX_DEVICE_PAGES):
            query = {"size": str(_DEVICE_PAGE_SIZE)}
            if last_row_key:
                query["last_row_key"] = last_row_key
            page = self._call("GET", DEVICE_LIST_PATH, query=query)
            if not isinstance(page, dict) or not isinstance(page.get("devices", page.get("list")), list):
                raise _malformed("GET", DEVICE_LIST_PATH, "device page has no 'devices' list")
            for raw in page.get("devices", page.get("list")):
                device = _parse_device(raw, "GET", DEVICE_LIST_PATH)
                devices.setdefault(device.device_id, device)
            if not page.get("has_more"):
                return list(devices.values())
            last_row_key = page.get("last_row_key")
            if not isinstance(last_row_key, str) or not last_row_key or last_row_key in seen_keys:
                raise _malformed("GET", DEVICE_LIST_PATH, "device page says has_more but gives no new last_row_key")
            seen_keys.add(last_row_key)
        raise _malformed("GET", DEVICE_LIST_PATH, f"device list did not end within {_MAX_DEVICE_PAGES} pages")

    def get_device(self, device_id: str) -> TuyaDevice:
        path = _device_path(device_id)
        return _parse_device(self._call("GET", path), "GET", path)

    def get_status(self, device_id: str) -> list[DataPoint]:
        """The device's status data points; entries that are not ``{code: str, value}`` are skipped."""
        path = f"{_device_path(device_id)}/status"
        result = self._call("GET", path)
        if not isinstance(result, list):
            raise _malformed("GET", path, "status is not a list")
        return _data_points(result)

    # -- temporary passwords ---------------------------------------------------------------

    def list_temp_passwords(self, device_id: str, *, valid_only: bool = True) -> list[TempPassword]:
        path = f"{_device_path(device_id)}/door-lock/temp-passwords"
        result = self._call("GET", path, query={"valid": "true"} if valid_only else None)
        if not isinstance(result, list):
            raise _malformed("GET", path, "temp-password list is not a list")
        return [_parse_temp_password(item, "GET", path) for item in result]

    def get_temp_password(self, device_id: str, password_id: str) -> TempPassword:
        path = f"{_device_path(device_id)}/door-lock/temp-password/{_safe_id(password_id, 'password_id')}"
        return _parse_temp_password(self._call("GET", path), "GET", path)

    def create_temp_password(self, device_id: str, *, pin: str, name: str, effective: datetime, invalid: datetime,
                             time_zone: str | None = None, single_use: bool = False) -> str:
        """Program a PIN valid in [effective, invalid) and return Tuya's password id.

        Runs the ticket flow: fetch a one-time ticket, decrypt its key with the access secret,
        send the PIN encrypted under it. The create itself is resent only when the cloud
        provably did not act on it (throttled, token refused, connection never made); after
        an ambiguous failure (timeout, 5xx) the error says so and the caller must look for the
        PIN by name before creating another.
        """
        base = _device_path(device_id)
        payload = self._pin_payload(base, pin, name, effective, invalid, time_zone)
        payload["type"] = 1 if single_use else 0
        create_path = f"{base}/door-lock/temp-password"
        result = self._call("POST", create_path, payload=payload, idempotent=False)
        password_id = result.get("id") if isinstance(result, dict) else None
        if password_id is None or isinstance(password_id, bool):
            raise _malformed("POST", create_path, "create answer has no password id")
        return str(password_id)

    def modify_temp_password(self, device_id: str, password_id: str, *, pin: str, name: str, effective: datetime,
                             invalid: datetime, time_zone: str | None = None) -> None:
        """Move an existing PIN to [effective, invalid), keeping its digits (``pin``, sent again
        encrypted under a fresh ticket, as the API requires).

        On an offline lock the cloud takes the change at once (phase 1) and the lock gets it when
        it wakes. Like a create it is resent only when the cloud provably did not act on it; after
        an ambiguous failure the error says it may have been applied, and the caller re-reads the
        PIN (``get_temp_password``) to see whether the window already moved. A lock that refuses
        modify answers ``TuyaCode.LOCK_TYPE_NOT_SUPPORTED`` (2004): create-then-revoke instead.
        """
        base = _device_path(device_id)
        path = f"{base}/door-lock/temp-passwords/{_safe_id(password_id, 'password_id')}/modify-password"
        payload = self._pin_payload(base, pin, name, effective, invalid, time_zone)
        result = self._call("PUT", path, payload=payload, idempotent=False, require_result=False,
                            ambiguous_hint="re-read the PIN to see whether its window changed before repeating")
        if result is False:
            raise _malformed("PUT", path, "modify answered success with result false")

    def create_offline_password(self, device_id: str, *, name: str, effective: datetime,
                                invalid: datetime) -> OfflinePassword:
        """An offline temporary password (``multiple``: many uses) for [effective, invalid).

        The cloud computes it for the lock, which checks it itself: the lock need not be online.
        The cloud rounds both times down to the whole hour and answers the window it used (in
        the result); the code must be typed for the first time within 24 h of that start or it
        never works, and it cannot be deleted remotely (only a clearing code typed at the lock,
        see :meth:`clear_offline_password`, or its end time stops it). Not resent after an
        ambiguous failure: it creates something.
        """
        start, end = _epoch_seconds(effective, "effective"), _epoch_seconds(invalid, "invalid")
        if end <= start:
            raise ValueError("invalid must be after effective")
        path = OFFLINE_PASSWORD_PATH.format(device_id=_safe_id(device_id, "device_id"))
        payload = {"name": name, "effective_time": start, "invalid_time": end, "type": "multiple"}
        result = self._call("POST", path, payload=payload, idempotent=False)
        return _parse_offline_password(result, name, "POST", path)

    def clear_offline_password(self, device_id: str, password_id: str, name: str) -> str:
        """Digits that, typed at the lock, clear the offline password ``password_id`` (``clear_one``).

        Resent like a read after an ambiguous failure: a second clearing code for the same
        password only ever takes access away.
        """
        path = OFFLINE_PASSWORD_PATH.format(device_id=_safe_id(device_id, "device_id"))
        payload = {"name": name, "type": "clear_one", "password_id": _safe_id(password_id, "password_id")}
        result = self._call("POST", path, payload=payload)
        return _offline_digits(result, "POST", path)[1]

    def delete_temp_password(self, device_id: str, password_id: str) -> None:
        """Delete (or, on an offline lock, schedule deletion of) one temp password.

        A "data not exist" answer is an error, except after an earlier attempt of this same
        call that may have gone through, where it means that attempt did the work.
        """
        path = f"{_device_path(device_id)}/door-lock/temp-passwords/{_safe_id(password_id, 'password_id')}"
        self._call("DELETE", path, require_result=False, absent_after_ambiguous_ok=True)

    def _pin_payload(self, base: str, pin: str, name: str, effective: datetime, invalid: datetime,
                     time_zone: str | None) -> dict[str, Any]:
        """The body a create and a modify share: the digits encrypted under a fresh ticket, and the window."""
        start, end = _pin_window(pin, effective, invalid)
        ticket_id, password = self._encrypt_under_ticket(base, pin)
        payload: dict[str, Any] = {"name": name, "password": password, "password_type": "ticket",
                                   "ticket_id": ticket_id, "effective_time": start, "invalid_time": end}
        if time_zone:
            payload["time_zone"] = time_zone
        return payload

    def _encrypt_under_ticket(self, base: str, pin: str) -> tuple[str, str]:
        """Fetch a one-time ticket and encrypt ``pin`` under its key: (ticket_id, password hex)."""
        ticket_path = f"{base}/door-lock/password-ticket"
        ticket = self._call("POST", ticket_path)
        if not isinstance(ticket, dict) or not ticket.get("ticket_id") or not isinstance(ticket.get("ticket_key"), str):
            raise _malformed("POST", ticket_path, "ticket answer lacks ticket_id / ticket_key")
        try:
            password = encrypt_pin(pin, decrypt_ticket_key(ticket["ticket_key"], self._access_secret))
        except TicketCryptoError:
            raise TuyaError(None, "ticket_key does not decrypt with the access secret (wrong TUYA_ACCESS_SECRET?)",
                            ticket_path, method="POST") from None
        return str(ticket["ticket_id"]), password

    # -- transport -------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
              payload: Any = None, auth: bool = True, idempotent: bool = True, require_result: bool = True,
              absent_after_ambiguous_ok: bool = False, shown_path: str | None = None,
              ambiguous_hint: str = "look for it before repeating") -> Any:
        """One logical call: sign, send, read the body, retry what may succeed, raise TuyaError otherwise."""
        shown = shown_path or path
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        failures = 0
        token_renewed = clock_corrected = maybe_applied = False
        while True:
            token = self._current_token() if auth else ""
            outcome = self._attempt(method, path, shown, query, body, token, require_result)
            error = outcome.error
            if error is None:
                return outcome.result
            if (absent_after_ambiguous_ok and maybe_applied
                    and error.code == TuyaCode.DATA_NOT_EXIST):
                return None
            if auth and error.code in TOKEN_CODES and not token_renewed:
                token_renewed = True
                self._discard_token(token)
                continue
            if error.code == TuyaCode.REQUEST_TIME_INVALID and not clock_corrected and outcome.server_t_ms:
                clock_corrected = True
                self._clock_offset_ms = outcome.server_t_ms - _epoch_ms()
                continue
            failures += 1
            maybe_applied = maybe_applied or not outcome.unprocessed
            may_resend = idempotent or outcome.unprocessed
            if error.code == TuyaCode.DEVICE_OFFLINE or not error.retryable:
                raise error  # 2001 is the caller's call (it may wait for the lock); the rest will not change
            if not may_resend:
                raise _with_msg(error, f"{error.msg}; the request may have been applied, {ambiguous_hint}")
            if failures >= self._max_attempts:
                raise _with_msg(error, f"{error.msg} (gave up after {failures} attempts)")
            time.sleep(self._backoff(failures))

    def _attempt(self, method: str, path: str, shown: str, query: Mapping[str, str] | None, body: bytes,
                 token: str, require_result: bool) -> _Outcome:
        t_ms = _epoch_ms() + self._clock_offset_ms
        nonce = uuid.uuid4().hex
        headers = {
            "client_id": self._access_id,
            "sign": signing.request_sign(
                secret=self._access_secret, client_id=self._access_id, t_ms=t_ms, nonce=nonce,
                method=method, body=body, url_path_and_query=signing.path_and_query(path, query),
                access_token=token,
            ),
            "t": str(t_ms),
            "nonce": nonce,
            "sign_method": signing.SIGN_METHOD,
            "lang": "en",
        }
        if token:
            headers["access_token"] = token
        if body:
            headers["Content-Type"] = "application/json"
        url = path + ("?" + urlencode(sorted(query.items())) if query else "")
        try:
            response = self._http.request(method, url, content=body or None, headers=headers)
        except httpx.TimeoutException as exc:
            never_sent = isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
            return _Outcome(error=TuyaError(None, f"no answer within {self._timeout:g} s ({type(exc).__name__})",
                                            shown, retryable=True, method=method), unprocessed=never_sent)
        except httpx.TransportError as exc:
            cert_problem = "CERTIFICATE_VERIFY_FAILED" in str(exc)
            detail = "TLS certificate not trusted (pass verify=<CA bundle> or set SSL_CERT_FILE)" if cert_problem \
                else f"connection failed ({type(exc).__name__})"
            return _Outcome(error=TuyaError(None, detail, shown, retryable=not cert_problem, method=method),
                            unprocessed=isinstance(exc, httpx.ConnectError))
        return _interpret(response, method, shown, require_result)

    def _backoff(self, failures: int) -> float:
        delay = self._backoff_seconds * (2 ** (failures - 1))
        return min(_MAX_BACKOFF_SECONDS, delay * random.uniform(1.0, 1.25))

    # -- token -----------------------------------------------------------------------------

    def _current_token(self) -> str:
        with self._token_lock:
            if self._token is None or not self._token.usable(time.time()):
                self._token = self._shared_or_new_token()
            return self._token.access_token

    def _shared_or_new_token(self) -> Token:
        """A usable token: the shared one when another client already has it, else a new one (fetched by
        one refresher at a time, and shared)."""
        store = self._token_store
        if store is None:
            return self._fetch_token(self._token)
        shared = store.load()
        if self._adoptable(shared):
            return shared
        with store.exclusive():
            shared = store.load()  # another process may have refreshed while we waited
            if self._adoptable(shared):
                return shared
            token = self._fetch_token(shared or self._token)
            store.save(token)
            return token

    def _adoptable(self, token: Token | None) -> bool:
        return token is not None and token.usable(time.time()) and token.access_token not in self._refused_tokens

    def _discard_token(self, access_token: str) -> None:
        """Force renewal of this token (not of one another thread already got instead)."""
        with self._token_lock:
            self._refused_tokens.add(access_token)
            if self._token is not None and self._token.access_token == access_token:
                self._token = replace(self._token, renew_at=0.0)

    def _fetch_token(self, previous: Token | None) -> Token:
        refresh_token = previous.refresh_token if previous else None
        if refresh_token and _SAFE_ID.match(refresh_token):
            try:
                result = self._call("GET", f"{TOKEN_PATH}/{refresh_token}", auth=False,
                                    shown_path=f"{TOKEN_PATH}/<refresh_token>")
                return _token_from(result, f"{TOKEN_PATH}/<refresh_token>")
            except TuyaError as exc:
                if exc.code is None:
                    raise  # the cloud is unreachable: a fresh grant would fail the same way
                # refresh token spent or refused: fall through to a fresh grant
        return _token_from(self._call("GET", TOKEN_PATH, query={"grant_type": "1"}, auth=False), TOKEN_PATH)


# -- helpers ---------------------------------------------------------------------------------


def _with_msg(error: TuyaError, msg: str) -> TuyaError:
    return TuyaError(error.code, msg, error.path, retryable=error.retryable, method=error.method)


def _malformed(method: str, path: str, what: str) -> TuyaError:
    return TuyaError(None, f"unexpected answer: {what}", path, method=method)


def _interpret(response: httpx.Response, method: str, shown: str, require_result: bool) -> _Outcome:
    """Turn one HTTP answer into a result or a TuyaError; Tuya's errors come as HTTP 200 + success=false."""
    status = response.status_code
    content_type = response.headers.get("content-type", "no content type").split(";")[0]
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        data = None
    server_t = _as_int(data.get("t")) if isinstance(data, dict) else None
    if status >= 500 or status == 429:
        what = "" if data is not None else f", {content_type}, not JSON"
        return _Outcome(error=TuyaError(None, f"HTTP {status}{what}", shown, retryable=True, method=method),
                        server_t_ms=server_t, unprocessed=status == 429)
    if data is None:
        return _Outcome(error=TuyaError(None, f"answer is not JSON (HTTP {status}, {content_type})", shown,
                                        method=method))
    if not isinstance(data, dict) or not isinstance(data.get("success"), bool):
        reason = f"HTTP {status}, " if status != 200 else ""
        return _Outcome(error=_malformed(method, shown, f"{reason}no boolean 'success' field"))
    if data["success"] is False:
        code = _as_int(data.get("code"))
        msg = _clean_message(data.get("msg")) or "no message"
        retryable = code in TRANSIENT_CODES or code == TuyaCode.DEVICE_OFFLINE
        return _Outcome(error=TuyaError(code, msg, shown, retryable=retryable, method=method), server_t_ms=server_t,
                        unprocessed=code in _REFUSED_UNPROCESSED)
    if require_result and "result" not in data:
        return _Outcome(error=_malformed(method, shown, "success=true without 'result'"))
    return _Outcome(result=data.get("result"), server_t_ms=server_t)


def _token_from(result: Any, path: str) -> Token:
    if not isinstance(result, dict) or not isinstance(result.get("access_token"), str) or not result["access_token"]:
        raise _malformed("GET", path, "token answer has no access_token")
    expire_seconds = _as_int(result.get("expire_time")) or 3600
    margin = min(120.0, expire_seconds * 0.1)
    refresh = result.get("refresh_token")
    return Token(access_token=result["access_token"], refresh_token=refresh if isinstance(refresh, str) else None,
                 renew_at=time.time() + expire_seconds - margin)


def _parse_device(raw: Any, method: str, path: str) -> TuyaDevice:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise _malformed(method, path, "device entry without an id")
    status = raw.get("status")
    return TuyaDevice(
        device_id=raw["id"],
        name=str(raw.get("name") or ""),
        online=raw.get("online") is True,
        category=str(raw.get("category") or ""),
        product_name=str(raw.get("product_name") or ""),
        battery=battery_from_status(_data_points(status)) if isinstance(status, list) else None,
    )


PERCENT_BATTERY_CODES = ("residual_electricity", "battery_percentage", "va_battery")
LEVEL_BATTERY_CODES = ("battery_state",)


def _data_points(raw: list) -> list[DataPoint]:
    """Status entries as data points; an entry without a string ``code`` is skipped, never an error."""
    return [DataPoint(code=entry["code"], value=entry.get("value")) for entry in raw
            if isinstance(entry, dict) and isinstance(entry.get("code"), str) and entry["code"]]


def battery_from_status(points: Iterable[DataPoint | Mapping[str, Any]]) -> Battery | None:
    """The battery among a device's data points, or None when it reports none we understand.

    Percent codes (``residual_electricity``, ``battery_percentage``, ``va_battery``: an integer
    0..100, or such a number as a string) win over a level (``battery_state``: a short word such
    as high / medium / low, kept as reported). Anything else is ignored, never an exception.
    """
    level: Battery | None = None
    for point in points:
        if isinstance(point, Mapping) and isinstance(point.get("code"), str):
            point = DataPoint(code=point["code"], value=point.get("value"))
        if not isinstance(point, DataPoint):
            continue
        if point.code in PERCENT_BATTERY_CODES:
            percent = _as_int(point.value)
            if percent is not None and 0 <= percent <= 100:
                return Battery(value=str(percent), kind="percent", code=point.code, percent=percent)
        elif point.code in LEVEL_BATTERY_CODES and level is None and isinstance(point.value, str):
            word = _clean_message(point.value)[:20]
            if word:
                level = Battery(value=word, kind="level", code=point.code, percent=None)
    return level


def _offline_digits(raw: Any, method: str, path: str) -> tuple[str, str]:
    """(id, digits) of an offline-temp-password answer; the digits never appear in an error."""
    if not isinstance(raw, dict):
        raise _malformed(method, path, "offline password answer is not an object")
    password_id = raw.get("offline_temp_password_id")
    if password_id in (None, "") or not isinstance(password_id, (int, str)) or isinstance(password_id, bool):
        raise _malformed(method, path, "offline password answer has no offline_temp_password_id")
    digits = raw.get("offline_temp_password")
    if not (isinstance(digits, str) and digits.isascii() and digits.isdigit()):
        # An integer would have lost any leading zeros: only a string of digits is trusted.
        raise _malformed(method, path, "offline_temp_password is missing or not a string of digits")
    return str(password_id), digits


def _parse_offline_password(raw: Any, sent_name: str, method: str, path: str) -> OfflinePassword:
    """An offline password answer; the window is the one the cloud reports it used (s or ms)."""
    password_id, digits = _offline_digits(raw, method, path)
    effective, invalid = _as_int(raw.get("effective_time")), _as_int(raw.get("invalid_time"))
    if effective is None or invalid is None:
        raise _malformed(method, path, "offline password answer without effective_time / invalid_time")
    start, end = _from_epoch(effective), _from_epoch(invalid)
    if end <= start:
        raise _malformed(method, path, "offline password answer's invalid_time is not after its effective_time")
    name = raw.get("offline_temp_password_name")
    return OfflinePassword(password_id=password_id, digits=digits,
                           name=name if isinstance(name, str) and name else sent_name, effective=start, invalid=end)


_PIN_LENGTH_MESSAGE = re.compile(r"exactly (\d{1,2}) digits")


def pin_length_from_error(error: TuyaError) -> int | None:
    """The PIN length a lock takes, when a refusal (1109) names it, as the sandbox does
    ("password must be exactly 7 digits on this lock"); None otherwise. The real cloud's
    wording is not documented: None there means "unknown", not "any length"."""
    if error.code != TuyaCode.PARAM_ILLEGAL:
        return None
    match = _PIN_LENGTH_MESSAGE.search(error.msg)
    return int(match.group(1)) if match else None


def _parse_temp_password(raw: Any, method: str, path: str) -> TempPassword:
    if not isinstance(raw, dict) or raw.get("id") in (None, "") or isinstance(raw.get("id"), bool):
        raise _malformed(method, path, "temp password without an id")
    effective, invalid = _as_int(raw.get("effective_time")), _as_int(raw.get("invalid_time"))
    if effective is None or invalid is None:
        raise _malformed(method, path, "temp password without effective_time / invalid_time")
    return TempPassword(
        password_id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        effective_time=_from_epoch(effective),
        invalid_time=_from_epoch(invalid),
        phase=_as_int(raw.get("phase")),
        delivery_status=_as_int(raw.get("delivery_status")),
    )


def _from_epoch(value: int) -> datetime:
    """Tuya documents seconds; tolerate a millisecond value rather than land in the year 50000."""
    seconds = value / 1000 if value > 10**11 else value
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _pin_window(pin: str, effective: datetime, invalid: datetime) -> tuple[int, int]:
    """Check a PIN and its window before any call: (effective, invalid) in epoch seconds."""
    if not (isinstance(pin, str) and pin.isascii() and pin.isdigit()):
        raise ValueError("a PIN is ASCII digits only")
    start, end = _epoch_seconds(effective, "effective"), _epoch_seconds(invalid, "invalid")
    if end <= start:
        raise ValueError("invalid must be after effective")
    return start, end


def _epoch_seconds(instant: datetime, name: str) -> int:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
    return int(instant.timestamp())


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _clean_message(value: Any) -> str:
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else " " for ch in text)[:200].strip()


def _safe_id(value: str, what: str) -> str:
    """Ids go into URL paths: refuse anything that could change the path or query."""
    if not isinstance(value, str) or not _SAFE_ID.match(value):
        raise ValueError(f"{what} {value!r} is not a plain Tuya id")
    return value


def _device_path(device_id: str) -> str:
    return f"/v1.0/devices/{_safe_id(device_id, 'device_id')}"


def _mask(value: str) -> str:
    return value[:4] + "…" if len(value) > 4 else "…"


# The variables that name a CA to trust (a private CA in front of Tuya, the sandbox's own); `lock-pipeline
# service-env` carries them into the services' environment.
CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")


def _tls_verification(verify: bool | str) -> bool | ssl.SSLContext:
    """What httpx should trust.

    An explicit CA bundle path wins alone. With ``verify=True`` every bundle the usual
    environment variables name is trusted together: SSL_CERT_FILE and SSL_CERT_DIR (which httpx
    reads) and REQUESTS_CA_BUNDLE (which httpx ignores, but deployments and the embedded sandbox
    set for a private CA). Together, not first-match: a host-wide SSL_CERT_FILE must not hide
    the private CA. With none set, httpx's default (certifi).
    """
    if verify is False:
        return False
    if isinstance(verify, str):
        return _context_from([(verify, "verify")])
    named = [(os.environ[v], v) for v in CA_VARIABLES if os.environ.get(v)]
    return _context_from(named) if named else True


def _context_from(locations: list[tuple[str, str]]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates and host names
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for location, source in locations:
        try:
            if os.path.isdir(location):
                context.load_verify_locations(capath=location)
            else:
                context.load_verify_locations(cafile=location)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"{source}={location!r} is not a readable CA bundle: {exc}") from None
    return context
