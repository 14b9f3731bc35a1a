"""A sandbox Tuya Cloud that speaks the real OpenAPI wire protocol on loopback HTTPS.

It is part of the product (the embedded default runs on it) and what the tests talk to, so
it checks what the real cloud checks: every request's HMAC-SHA256 signature (post-2021
algorithm, ``Signature-Headers`` honoured, query keys sorted and not URL-encoded, body hash
over the exact bytes), the ``t`` skew, tokens that expire (real wall-clock time) and
refresh tokens that work once, and HTTP methods per path. The door-lock flow is real too:
a one-time ticket whose key is AES-encrypted under the access secret, the PIN decrypted
from the create call with that key, Wi-Fi lock phases (1 to be sent, 2 on the lock,
3 to be deleted, 0 deleted), offline locks, a finite PIN store, duplicate PINs.

Answers are Tuya's: HTTP 200 with ``{"success": true, "result", "t"}`` or
``{"success": false, "code", "msg", "t"}``. Codes used:

====== =============================================================== =====================
code   when                                                            source
====== =============================================================== =====================
1000   unknown or already deleted password id                          Tuya "data not exist"
1003   ``grant_type`` is not 1                                         Tuya
1004   bad or missing ``sign`` / ``sign_method``                       Tuya
1005   unknown ``client_id``                                           Tuya
1010   access token expired (``token_ttl_seconds``, wall clock)        Tuya "token is expired"
1011   unknown or missing access token                                 Tuya "token invalid"
1012   refresh token unknown or already used                           Tuya
1013   ``t`` missing or more than ``max_skew_seconds`` from now        Tuya
1106   device not in the project                                       Tuya "permission deny"
1108   no such path, or wrong HTTP method on a path                    Tuya
1109   illegal parameter (PIN length/digits, name, times, ticket)      Tuya
1110   rate limit exceeded / injected throttle                         Tuya
2001   injected "offline" fault only (Wi-Fi locks accept PINs offline) Tuya
2004   door-lock call on a device that is not a lock                   Tuya
2303   the PIN's digits equal another live PIN's on the lock           sandbox choice [1]
2304   the lock already holds its maximum number of live PINs          sandbox choice [1]
====== =============================================================== =====================

[1] Tuya documents no OpenAPI code for these (only Zigbee ``delivery_status`` 4 "password
already exists" and 5 "maximum number reached"); the client exposes both as ``TuyaCode``.

Persistence: with ``state_file`` the locks' state (online flags, storage limits, every PIN
with its digits, as the lock itself holds them) survives a restart of the embedded default,
so the pipeline's database and the "lock" do not drift apart. The file is written atomically
with mode 0600; tokens and tickets are not kept (clients simply authenticate again).

Time: protocol checks (``t`` skew, token and ticket expiry, rate limit) use real time;
the lock's truth (is a PIN inside its window, which PINs are live) uses the injected clock,
so the season simulator can move days while the HTTPS protocol stays honest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, urlsplit

from lock_pipeline.clock import Clock, SystemClock
from lock_pipeline.sandbox.seed import SeedLock
from lock_pipeline.sandbox.tls import LoopbackTls, make_loopback_tls
from lock_pipeline.tuya import signing
from lock_pipeline.tuya.ticket_crypto import TicketCryptoError, decrypt_pin, encrypt_ticket_key

DEFAULT_ACCESS_ID = "sandboxaccessid00001"
DEFAULT_ACCESS_SECRET = "lockpipelinesandboxsecret0000001"  # 32 characters, like a real Access Secret

DUPLICATE_PASSWORD = 2303
PASSWORD_STORAGE_FULL = 2304
FAULTS = frozenset({"throttle", "server_error", "timeout", "token_expired", "html", "offline", "malformed"})
LOCK_CATEGORIES = frozenset({"ms", "jtmspro", "jtmsbh", "mk"})
MAX_PIN_NAME_LENGTH = 20   # Tuya's lock SDK refuses temp-password names over 20 characters
TICKET_TTL_SECONDS = 300   # "The temporary key is valid for 5 minutes."
TIMEOUT_FAULT_SECONDS = 30.0
LIVE_PHASES = (1, 2, 3)
ON_LOCK_PHASES = (2, 3)
_MAX_BODY_BYTES = 1 << 20

_HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>Tengine</center>\r\n</body>\r\n</html>\r\n")


@dataclass(frozen=True)
class SandboxPin:
    """One temporary password as the lock and cloud hold it (tests and simulations only)."""

    password_id: str
    name: str
    digits: str = field(repr=False)
    effective: datetime
    invalid: datetime
    phase: int
    time_zone: str | None = None
    single_use: bool = False
    foreign: bool = False  # made outside the pipeline (owner's or cleaner's code)

    def is_live(self, now: datetime) -> bool:
        return self.phase in LIVE_PHASES and now < self.invalid

    def opens_at(self, at: datetime) -> bool:
        return self.phase in ON_LOCK_PHASES and self.effective <= at < self.invalid


@dataclass
class _LockState:
    seed: SeedLock
    online: bool
    storage_limit: int | None = None
    pins: dict[int, SandboxPin] = field(default_factory=dict)
    created_at: int = field(default_factory=lambda: int(time.time()))


@dataclass
class _Ticket:
    device_id: str
    key: bytes = field(repr=False)
    expires_at: float


@dataclass
class _Fault:
    kind: str
    remaining: int
    path_contains: str | None


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"


class _CloudError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(code, msg)
        self.code = code
        self.msg = msg


class _TokenBucket:
    def __init__(self, rate_per_second: float) -> None:
        self.rate = rate_per_second
        self.capacity = max(1.0, rate_per_second)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens < 1.0:
                return False
            self.tokens -= 1.0
            return True


_Route = tuple[str, "re.Pattern[str]", str]
_ROUTES: list[_Route] = [
    ("GET", re.compile(r"/v1\.0/token"), "_token_grant"),
    ("GET", re.compile(r"/v1\.0/token/(?P<refresh_token>[^/]+)"), "_token_refresh"),
    ("GET", re.compile(r"/v1\.0/iot-01/associated-users/devices"), "_list_devices"),
    ("GET", re.compile(r"/v1\.0/devices/(?P<device_id>[^/]+)"), "_get_device"),
    ("POST", re.compile(r"/v1\.0/devices/(?P<device_id>[^/]+)/door-lock/password-ticket"), "_password_ticket"),
    ("POST", re.compile(r"/v1\.0/devices/(?P<device_id>[^/]+)/door-lock/temp-password"), "_create_temp_password"),
    ("GET", re.compile(r"/v1\.0/devices/(?P<device_id>[^/]+)/door-lock/temp-passwords"), "_list_temp_passwords"),
    ("GET", re.compile(r"/v1\.0/devices/(?P<device_id>[^/]+)/door-lock/temp-password/(?P<password_id>[^/]+)"),
     "_get_temp_password"),
    ("DELETE", re.compile(r"/v1\.0/devices/(?P<device_id>[^/]+)/door-lock/temp-passwords/(?P<password_id>[^/]+)"),
     "_delete_temp_password"),
]


class TuyaSandbox:
    """The sandbox cloud: start it, point a ``TuyaClient`` at ``base_url`` with ``verify=ca_cert_path``."""

    def __init__(self, locks: Iterable[SeedLock] = (), *, access_id: str = DEFAULT_ACCESS_ID,
                 access_secret: str = DEFAULT_ACCESS_SECRET, clock: Clock | None = None,
                 token_ttl_seconds: int = 7200, max_pins_per_lock: int = 20, max_skew_seconds: int = 900,
                 host: str = "127.0.0.1", port: int = 0, call_latency: float = 0.0,
                 rate_limit_per_second: float | None = None, state_file: str | Path | None = None) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the sandbox cloud serves loopback only, not {host!r}")
        if len(access_secret.encode("utf-8")) != 32:
            raise ValueError("access_secret must be 32 bytes, like a real Tuya Access Secret (it is an AES-256 key)")
        self.access_id = access_id
        self.access_secret = access_secret
        self._clock: Clock = clock or SystemClock()
        self._token_ttl = token_ttl_seconds
        self._max_pins = max_pins_per_lock
        self._max_skew = max_skew_seconds
        self._host = host
        self._port = port
        self._latency = call_latency
        self._bucket = _TokenBucket(rate_limit_per_second) if rate_limit_per_second else None
        self._uid = "sbx" + secrets.token_hex(8)
        self._state = threading.RLock()
        self._locks: dict[str, _LockState] = {}
        self._access_tokens: dict[str, float] = {}    # access token -> wall-clock expiry
        self._refresh_tokens: dict[str, str] = {}     # refresh token -> its access token
        self._tickets: dict[str, _Ticket] = {}
        self._faults: list[_Fault] = []
        self._next_password_id = 10_000_001
        self._request_log: list[tuple[str, str]] = []
        self._stopping = threading.Event()
        self._server: _SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tls: LoopbackTls | None = None
        self._state_file = Path(state_file) if state_file else None
        for lock in locks:
            if lock.device_id in self._locks:
                raise ValueError(f"lock {lock.device_id} is listed twice")
            self._locks[lock.device_id] = _LockState(seed=lock, online=lock.online)
        if self._state_file is not None and self._state_file.exists():
            self._load_state(self._state_file)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "TuyaSandbox":
        if self._server is not None:
            return self
        self._stopping.clear()
        self._tls = make_loopback_tls()
        self._server = _SandboxHTTPServer((self._host, self._port), self, self._tls.server_context())
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"tuya-sandbox-{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread, tls = self._server, self._thread, self._tls
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in latency or a "timeout" fault
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if tls is not None:
            tls.remove()
        self._server = self._thread = self._tls = None

    def __enter__(self) -> "TuyaSandbox":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Tuya sandbox is not started")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"https://{host}:{self._port}"

    @property
    def ca_cert_path(self) -> str:
        if self._tls is None:
            raise RuntimeError("the Tuya sandbox is not started")
        return self._tls.ca_cert_path

    # -- locks -----------------------------------------------------------------------------

    def add_lock(self, lock: SeedLock) -> None:
        with self._state:
            if lock.device_id in self._locks:
                raise ValueError(f"lock {lock.device_id} is already in the sandbox")
            self._locks[lock.device_id] = _LockState(seed=lock, online=lock.online)
            self._persist()

    def remove_lock(self, device_id: str) -> None:
        with self._state:
            self._lock_state(device_id)
            del self._locks[device_id]
            self._persist()

    def set_online(self, device_id: str, online: bool) -> None:
        """Coming online delivers what waited: phase 1 -> 2 (on the lock), phase 3 -> 0 (deleted)."""
        with self._state:
            state = self._lock_state(device_id)
            state.online = online
            if online:
                for pid, pin in list(state.pins.items()):
                    if pin.phase == 1:
                        state.pins[pid] = replace(pin, phase=2)
                    elif pin.phase == 3:
                        state.pins[pid] = replace(pin, phase=0)
            self._persist()

    def is_online(self, device_id: str) -> bool:
        with self._state:
            return self._lock_state(device_id).online

    def add_foreign_pin(self, device_id: str, pin: str, name: str, effective: datetime, invalid: datetime) -> str:
        """A code someone made outside the pipeline (owner, cleaner); the pipeline must leave it alone."""
        _require_aware(effective)
        _require_aware(invalid)
        with self._state:
            state = self._lock_state(device_id)
            if not (pin.isascii() and pin.isdigit() and len(pin) == state.seed.pin_length):
                raise ValueError(f"a PIN on this lock is exactly {state.seed.pin_length} digits")
            password_id = self._new_password_id()
            state.pins[password_id] = SandboxPin(
                password_id=str(password_id), name=name, digits=pin,
                effective=effective.astimezone(timezone.utc), invalid=invalid.astimezone(timezone.utc),
                phase=2 if state.online else 1, foreign=True,
            )
            self._persist()
            return str(password_id)

    def set_storage_limit(self, device_id: str, limit: int) -> None:
        if limit < 0:
            raise ValueError("a storage limit is >= 0")
        with self._state:
            self._lock_state(device_id).storage_limit = limit
            self._persist()

    # -- the lock's own truth --------------------------------------------------------------

    def would_open(self, device_id: str, pin: str, at: datetime) -> bool:
        """Would typing ``pin`` at ``at`` open the door: a PIN on the lock (phase 2 or 3) inside its window."""
        _require_aware(at)
        with self._state:
            return any(p.digits == pin and p.opens_at(at) for p in self._lock_state(device_id).pins.values())

    def pins(self, device_id: str) -> list[SandboxPin]:
        """Every temp password the cloud knows for the lock, deleted ones (phase 0) included."""
        with self._state:
            return [pin for _, pin in sorted(self._lock_state(device_id).pins.items())]

    # -- faults and observation ------------------------------------------------------------

    def inject(self, fault: str, count: int = 1, *, path_contains: str | None = None) -> None:
        """Answer the next ``count`` matching requests with ``fault`` instead of serving them.

        throttle: code 1110; server_error: HTTP 500; timeout: no answer for 30 s (then the
        connection closes); token_expired: code 1010; html: HTTP 502 HTML page; offline: 2001;
        malformed: HTTP 200 JSON without "success" (a broken proxy or API change).
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: use one of {sorted(FAULTS)}")
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._state:
            self._faults.append(_Fault(fault, count, path_contains))

    def clear_faults(self) -> None:
        with self._state:
            self._faults.clear()

    def expire_tokens(self) -> None:
        """Every access token issued so far now answers 1010; refresh tokens stay usable."""
        with self._state:
            for token in self._access_tokens:
                self._access_tokens[token] = 0.0

    @property
    def request_count(self) -> int:
        with self._state:
            return len(self._request_log)

    @property
    def request_log(self) -> list[tuple[str, str]]:
        """(method, path) per request, query left out and refresh tokens redacted."""
        with self._state:
            return list(self._request_log)

    # -- request handling (called from server threads) -------------------------------------

    def _handle(self, method: str, target: str, headers: Message, body: bytes) -> _Reply | None:
        """One HTTP request -> one reply, or None to drop the connection unanswered."""
        parts = urlsplit(target)
        path = parts.path
        with self._state:
            shown = "/v1.0/token/<refresh_token>" if path.startswith("/v1.0/token/") else path
            self._request_log.append((method, shown))
            fault = self._take_fault(path)
        if self._latency and self._stopping.wait(self._latency):
            return None
        if fault is not None:
            return self._fault_reply(fault)
        if self._bucket is not None and not self._bucket.take():
            return _fail(1110, "concurrent request over limit")
        query_pairs = parse_qsl(parts.query, keep_blank_values=True)
        try:
            self._authenticate(method, path, query_pairs, headers, body)
            handler, params = self._route(method, path)
            payload = _parse_json_body(body) if body else None
            with self._state:
                result = handler(params, dict(query_pairs), payload)
                if method != "GET":
                    self._persist()
        except _CloudError as error:
            return _fail(error.code, error.msg)
        except Exception as bug:  # a sandbox bug must show up as one, not as a dropped connection
            return _Reply(500, _json({"success": False, "code": 500, "msg": f"sandbox bug: {type(bug).__name__}",
                                      "t": _now_ms()}))
        return _ok(result)

    def _take_fault(self, path: str) -> str | None:
        for fault in self._faults:
            if fault.path_contains is None or fault.path_contains in path:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault.kind
        return None

    def _fault_reply(self, kind: str) -> _Reply | None:
        if kind == "throttle":
            return _fail(1110, "concurrent request over limit")
        if kind == "token_expired":
            return _fail(1010, "token is expired")
        if kind == "offline":
            return _fail(2001, "device is offline")
        if kind == "server_error":
            return _Reply(500, _json({"success": False, "code": 500, "msg": "system error, please contact the admin",
                                      "t": _now_ms()}))
        if kind == "html":
            return _Reply(502, _HTML_502, "text/html")
        if kind == "malformed":
            return _Reply(200, _json({"t": _now_ms(), "tid": uuid.uuid4().hex}))
        self._stopping.wait(TIMEOUT_FAULT_SECONDS)  # "timeout": never answer
        return None

    def _authenticate(self, method: str, path: str, query_pairs: list[tuple[str, str]], headers: Message,
                      body: bytes) -> None:
        client_id = headers.get("client_id")
        if not client_id or not secrets.compare_digest(client_id.encode(), self.access_id.encode()):
            raise _CloudError(1005, "clientId invalid")
        t_header = headers.get("t", "")
        if not t_header.isdigit() or abs(int(t_header) / 1000 - time.time()) > self._max_skew:
            raise _CloudError(1013, "request time is invalid")
        is_token_call = path == "/v1.0/token" or path.startswith("/v1.0/token/")
        access_token = "" if is_token_call else headers.get("access_token", "")
        names = [name for name in headers.get("Signature-Headers", "").split(":") if name]
        signed_headers = [(name, headers[name]) for name in names if headers.get(name) is not None]
        expected = signing.request_sign(
            secret=self.access_secret, client_id=client_id, t_ms=t_header, nonce=headers.get("nonce", ""),
            method=method, body=body, url_path_and_query=signing.path_and_query(path, query_pairs),
            access_token=access_token, signed_headers=signed_headers,
        )
        provided = headers.get("sign", "")
        if headers.get("sign_method", "HMAC-SHA256") != signing.SIGN_METHOD \
                or not secrets.compare_digest(provided.encode(), expected.encode()):
            raise _CloudError(1004, "sign invalid")
        if is_token_call:
            return
        with self._state:
            expires_at = self._access_tokens.get(access_token) if access_token else None
        if expires_at is None:
            raise _CloudError(1011, "token invalid")
        if time.time() >= expires_at:
            raise _CloudError(1010, "token is expired")

    def _route(self, method: str, path: str) -> tuple[Callable[..., Any], dict[str, str]]:
        path_known = False
        for route_method, pattern, handler_name in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method == method:
                return getattr(self, handler_name), match.groupdict()
            path_known = True
        raise _CloudError(1108, f"uri path invalid{' (method not allowed)' if path_known else ''}")

    # -- endpoints (run under self._state) --------------------------------------------------

    def _token_grant(self, params: dict, query: dict, payload: Any) -> dict:
        if query.get("grant_type") != "1":
            raise _CloudError(1003, "grant type invalid")
        return self._issue_token()

    def _token_refresh(self, params: dict, query: dict, payload: Any) -> dict:
        old_access = self._refresh_tokens.pop(params["refresh_token"], None)
        if old_access is None:
            raise _CloudError(1012, "token status is invalid")
        self._access_tokens.pop(old_access, None)
        return self._issue_token()

    def _issue_token(self) -> dict:
        now = time.time()
        if len(self._access_tokens) > 1000:
            self._access_tokens = {t: exp for t, exp in self._access_tokens.items() if exp > now}
            self._refresh_tokens = {r: a for r, a in self._refresh_tokens.items() if a in self._access_tokens}
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self._access_tokens[access] = now + self._token_ttl
        self._refresh_tokens[refresh] = access
        return {"access_token": access, "refresh_token": refresh, "expire_time": self._token_ttl, "uid": self._uid}

    def _list_devices(self, params: dict, query: dict, payload: Any) -> dict:
        size = _int_param(query.get("size", "20"), "size", minimum=1, maximum=100)
        ids = sorted(self._locks)
        last_row_key = query.get("last_row_key") or ""
        start = sum(1 for device_id in ids if device_id <= last_row_key) if last_row_key else 0
        page = ids[start:start + size]
        return {
            "devices": [self._device_json(device_id) for device_id in page],
            "has_more": start + size < len(ids),
            "last_row_key": page[-1] if page else last_row_key,
            "total": len(ids),
        }

    def _get_device(self, params: dict, query: dict, payload: Any) -> dict:
        self._known_device(params["device_id"])
        return self._device_json(params["device_id"])

    def _password_ticket(self, params: dict, query: dict, payload: Any) -> dict:
        device_id = params["device_id"]
        self._door_lock(device_id)
        now = time.monotonic()
        self._tickets = {tid: ticket for tid, ticket in self._tickets.items() if ticket.expires_at > now}
        ticket_id = secrets.token_urlsafe(6)
        key = secrets.token_hex(8).encode("ascii")  # 16 bytes, the AES-128 key for this one PIN
        self._tickets[ticket_id] = _Ticket(device_id=device_id, key=key, expires_at=now + TICKET_TTL_SECONDS)
        return {"ticket_id": ticket_id, "ticket_key": encrypt_ticket_key(key, self.access_secret),
                "expire_time": TICKET_TTL_SECONDS}

    def _create_temp_password(self, params: dict, query: dict, payload: Any) -> dict:
        device_id = params["device_id"]
        state = self._door_lock(device_id)
        body = _require_object(payload)
        if body.get("password_type") != "ticket":
            raise _CloudError(1109, "param is illegal: password_type must be ticket")
        ticket = self._tickets.pop(str(body.get("ticket_id", "")), None)  # single use, whatever follows
        if ticket is None or ticket.device_id != device_id or ticket.expires_at <= time.monotonic():
            raise _CloudError(1109, "param is illegal: ticket_id unknown, used, expired or for another device")
        try:
            digits = decrypt_pin(str(body.get("password", "")), ticket.key)
        except TicketCryptoError:
            raise _CloudError(1109, "param is illegal: password does not decrypt with the ticket key") from None
        length = state.seed.pin_length
        if not (digits.isascii() and digits.isdigit() and len(digits) == length):
            raise _CloudError(1109, f"param is illegal: password must be exactly {length} digits on this lock")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_PIN_NAME_LENGTH:
            raise _CloudError(1109, f"param is illegal: name must be 1 to {MAX_PIN_NAME_LENGTH} characters")
        effective = _epoch_param(body.get("effective_time"), "effective_time")
        invalid = _epoch_param(body.get("invalid_time"), "invalid_time")
        now = self._clock.now()
        if invalid <= effective:
            raise _CloudError(1109, "param is illegal: invalid_time must be after effective_time")
        if invalid <= now:
            raise _CloudError(1109, "param is illegal: invalid_time is in the past")
        use_type = body.get("type", 0)
        if use_type not in (0, 1) or isinstance(use_type, bool):
            raise _CloudError(1109, "param is illegal: type must be 0 or 1")
        time_zone = body.get("time_zone")
        if time_zone is not None and not isinstance(time_zone, str):
            raise _CloudError(1109, "param is illegal: time_zone must be a string")
        live = [pin for pin in state.pins.values() if pin.is_live(now)]
        if any(secrets.compare_digest(pin.digits, digits) for pin in live):
            raise _CloudError(DUPLICATE_PASSWORD, "duplicate password: the lock already holds this PIN")
        limit = self._max_pins if state.storage_limit is None else state.storage_limit
        if len(live) >= limit:
            raise _CloudError(PASSWORD_STORAGE_FULL, f"password storage full: the lock holds {limit} PINs")
        password_id = self._new_password_id()
        state.pins[password_id] = SandboxPin(
            password_id=str(password_id), name=name, digits=digits, effective=effective, invalid=invalid,
            phase=2 if state.online else 1, time_zone=time_zone or None, single_use=use_type == 1,
        )
        return {"id": password_id}

    def _list_temp_passwords(self, params: dict, query: dict, payload: Any) -> list[dict]:
        state = self._door_lock(params["device_id"])
        now = self._clock.now()
        valid = query.get("valid")
        if valid not in (None, "true", "false"):
            raise _CloudError(1109, "param is illegal: valid must be true or false")
        pins = [pin for _, pin in sorted(state.pins.items())
                if valid is None or pin.is_live(now) == (valid == "true")]
        return [_pin_json(pin) for pin in pins]

    def _get_temp_password(self, params: dict, query: dict, payload: Any) -> dict:
        state = self._door_lock(params["device_id"])
        return _pin_json(self._pin(state, params["password_id"]))

    def _delete_temp_password(self, params: dict, query: dict, payload: Any) -> bool:
        """Online: gone now. Offline: phase 3 until the lock wakes. Never sent (phase 1): cancelled."""
        state = self._door_lock(params["device_id"])
        pin = self._pin(state, params["password_id"])
        if pin.phase == 0:
            raise _CloudError(1000, "data not exist")
        if pin.phase == 1 or (pin.phase == 2 and state.online):
            new_phase = 0
        else:
            new_phase = 3
        state.pins[int(pin.password_id)] = replace(pin, phase=new_phase)
        return True

    # -- persistence -----------------------------------------------------------------------

    def _persist(self) -> None:
        """Write the locks' state (called under self._state after every change)."""
        if self._state_file is None:
            return
        document = {
            "version": 1,
            "next_password_id": self._next_password_id,
            "locks": [
                {
                    "seed": dataclasses.asdict(state.seed), "online": state.online,
                    "storage_limit": state.storage_limit, "created_at": state.created_at,
                    "pins": [_pin_record(pin) for _, pin in sorted(state.pins.items())],
                }
                for _, state in sorted(self._locks.items())
            ],
        }
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._state_file.with_name(self._state_file.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
        os.replace(temporary, self._state_file)

    def _new_password_id(self) -> int:
        value = self._next_password_id
        self._next_password_id += 1
        return value

    def _load_state(self, path: Path) -> None:
        """Restore a saved state over the seed: the seed's lock definitions win, the saved state keeps
        each lock's online flag, limit and PINs; locks added at run time come back too."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            seed_fields = {f.name for f in dataclasses.fields(SeedLock)}
            for saved in document["locks"]:
                seed = SeedLock(**{k: v for k, v in saved["seed"].items() if k in seed_fields})
                state = self._locks.setdefault(seed.device_id, _LockState(seed=seed, online=seed.online))
                state.online = bool(saved["online"])
                state.storage_limit = saved.get("storage_limit")
                state.created_at = int(saved.get("created_at", state.created_at))
                state.pins = {int(record["password_id"]): _pin_from_record(record) for record in saved["pins"]}
            self._next_password_id = int(document["next_password_id"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"Tuya sandbox state file {path} is unreadable ({type(exc).__name__}): "
                             "delete it to start the sandbox locks afresh") from None

    # -- helpers ---------------------------------------------------------------------------

    def _lock_state(self, device_id: str) -> _LockState:
        try:
            return self._locks[device_id]
        except KeyError:
            raise KeyError(f"no lock {device_id!r} in the Tuya sandbox") from None

    def _known_device(self, device_id: str) -> _LockState:
        state = self._locks.get(device_id)
        if state is None:
            raise _CloudError(1106, "permission deny")
        return state

    def _door_lock(self, device_id: str) -> _LockState:
        state = self._known_device(device_id)
        if state.seed.category not in LOCK_CATEGORIES:
            raise _CloudError(2004, "not support the lock type")
        return state

    @staticmethod
    def _pin(state: _LockState, password_id: str) -> SandboxPin:
        pin = state.pins.get(int(password_id)) if password_id.isdigit() else None
        if pin is None:
            raise _CloudError(1000, "data not exist")
        return pin

    def _device_json(self, device_id: str) -> dict:
        state = self._locks[device_id]
        seed = state.seed
        return {
            "id": seed.device_id, "name": seed.name, "online": state.online, "category": seed.category,
            "product_name": seed.product_name, "product_id": "sbx" + seed.device_id[-10:], "uuid": seed.device_id[-16:],
            "uid": self._uid, "owner_id": "sandbox", "sub": False, "time_zone": "-03:00", "icon": "", "ip": "",
            "model": "", "active_time": state.created_at, "create_time": state.created_at,
            "update_time": state.created_at,
        }


# -- wire helpers ---------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _ok(result: Any) -> _Reply:
    return _Reply(200, _json({"success": True, "result": result, "t": _now_ms(), "tid": uuid.uuid4().hex}))


def _fail(code: int, msg: str) -> _Reply:
    return _Reply(200, _json({"success": False, "code": code, "msg": msg, "t": _now_ms(), "tid": uuid.uuid4().hex}))


def _parse_json_body(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _CloudError(1109, "param is illegal: body is not JSON") from None


def _require_object(payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise _CloudError(1109, "param is illegal: a JSON object body is required")
    return payload


def _int_param(raw: str, name: str, *, minimum: int, maximum: int) -> int:
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise _CloudError(1109, f"param is illegal: {name} must be {minimum}..{maximum}")
    return int(raw)


def _epoch_param(value: Any, name: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 10**10:
        raise _CloudError(1109, f"param is illegal: {name} must be epoch seconds (10 digits)")
    return datetime.fromtimestamp(value, tz=timezone.utc)


def _pin_json(pin: SandboxPin) -> dict:
    return {
        "id": int(pin.password_id), "name": pin.name, "phase": pin.phase,
        "effective_time": int(pin.effective.timestamp()), "invalid_time": int(pin.invalid.timestamp()),
        "time_zone": pin.time_zone or "", "phone": "",
    }


def _pin_record(pin: SandboxPin) -> dict:
    record = dataclasses.asdict(pin)
    record["effective"], record["invalid"] = pin.effective.isoformat(), pin.invalid.isoformat()
    return record


def _pin_from_record(record: dict) -> SandboxPin:
    return SandboxPin(**{**record, "effective": datetime.fromisoformat(record["effective"]),
                         "invalid": datetime.fromisoformat(record["invalid"])})


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant!r}: the sandbox only handles aware instants")


class _SandboxHTTPServer(ThreadingHTTPServer):
    """Threaded HTTPS server; TLS handshakes run in the worker threads, never in the accept loop."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: TuyaSandbox, context: ssl.SSLContext) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sandbox = sandbox
        self.ssl_context = context
        self._connections: set[ssl.SSLSocket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        try:
            # Headers and body go out as separate writes: without NODELAY, Nagle + delayed ACK add ~40 ms a call.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        try:
            connection = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with self._connections_lock:
            self._connections.add(connection)
        try:
            _Handler(connection, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            try:
                connection.close()
            except OSError:
                pass

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a dropped client is not news, and request details must not reach stderr."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TuyaSandbox/1"
    sys_version = ""
    timeout = 30  # idle keep-alive connections close after this
    server: _SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no request lines on stderr (they would carry paths and ids, never needed)."""

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY_BYTES:
            self.close_connection = True
            self.send_error(400)
            return
        body = self.rfile.read(length) if length else b""
        reply = self.server.sandbox._handle(self.command, self.path, self.headers, body)
        if reply is None:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (OSError, ssl.SSLError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve
