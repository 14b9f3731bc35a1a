"""A sandbox Tuya Cloud that speaks the real OpenAPI wire protocol on loopback HTTPS.

It is part of the product (the embedded default runs on it) and what the tests talk to, so
it checks what the real cloud checks: every request's HMAC-SHA256 signature (post-2021
algorithm, ``Signature-Headers`` honoured, query keys sorted and not URL-encoded, body hash
over the exact bytes), the ``t`` skew, tokens that expire (real wall-clock time) and
refresh tokens that work once, and HTTP methods per path. The door-lock flow is real too:
a one-time ticket whose key is AES-encrypted under the access secret, the PIN decrypted
from the create call with that key, Wi-Fi lock phases (1 to be sent, 2 on the lock,
3 to be deleted, 0 deleted), offline locks, a finite PIN store, duplicate PINs; changing a
PIN's window (modify-password), offline temporary passwords (computed by the lock, so they
work on an offline lock), and device status data points with a battery that drains.

Answers are Tuya's: HTTP 200 with ``{"success": true, "result", "t"}`` or
``{"success": false, "code", "msg", "t"}``. Codes used:

====== =============================================================== =====================
code   when                                                            source
====== =============================================================== =====================
1000   unknown or already deleted password id (get, delete, modify;    Tuya "data not exist"
       clear_one naming no offline code of the lock)
1003   ``grant_type`` is not 1                                         Tuya
1004   bad or missing ``sign`` / ``sign_method``                       Tuya
1005   unknown ``client_id``                                           Tuya
1010   access token expired (``token_ttl_seconds``, wall clock)        Tuya "token is expired"
1011   unknown or missing access token                                 Tuya "token invalid"
1012   refresh token unknown or already used                           Tuya
1013   ``t`` missing or more than ``max_skew_seconds`` from now        Tuya
1031   offline password name longer than 20 characters                 Tuya (seen) [2]
1038   a live offline password of the lock already has this name       Tuya (seen) [2]
1067   the lock already has its maximum of live offline passwords      Tuya (seen) [2]
1106   device not in the project                                       Tuya "permission deny"
1108   no such path, or wrong HTTP method on a path                    Tuya
1109   illegal parameter (PIN length/digits, name, times, ticket,      Tuya
       offline password type or times)
1110   rate limit exceeded / injected throttle                         Tuya
2001   injected "offline" fault only (Wi-Fi locks accept PINs offline) Tuya
2004   door-lock call on a device that is not a lock                   Tuya
2004   modify-password on a lock that refuses it                       sandbox choice [3]
       ("not support this function")
2004   offline password on a lock model without them                   sandbox choice [3]
       ("not support offline password")
2303   the PIN's digits equal another live PIN's on the lock           sandbox choice [1]
2304   the lock already holds its maximum number of live PINs          sandbox choice [1]
====== =============================================================== =====================

[1] Tuya documents no OpenAPI code for these (only Zigbee ``delivery_status`` 4 "password
already exists" and 5 "maximum number reached"); the client exposes both as ``TuyaCode``.
[2] Numbers and meanings as public callers report them (no official table was available).
[3] Tuya documents that some locks refuse these calls, not with which code; 2004 is the code
it uses for "this lock cannot do that", so the sandbox answers it with its own message.

PIN length: a create or modify whose PIN has the wrong length answers 1109 with the message
``param is illegal: password must be exactly {length} digits on this lock``. The wording is
kept stable on purpose: the pipeline reads the length the lock takes from it.

Modify-password: on an online lock the new window (and digits) is on the lock at once (phase
stays 2); on an offline lock the cloud records the change (listing and get show the new window
at phase 1, "to be sent") while the lock keeps the old one until it comes online. ``would_open``
always answers from what the lock holds.

Offline temporary passwords (``POST /v1.1/.../door-lock/offline-temp-password``): the digits
are 10 long (an assumption: Tuya does not document the length; 10 is what such codes commonly
are). ``multiple``: both times floored to whole UTC hours; it must be typed for the first time
within 24 h of its start or it never works. ``once``: from the current whole hour for 6 h, one
use. ``clear_one`` / ``clear_all``: a code that, typed at the lock, clears one / every offline
code issued before it; a clearing code works once, from the current whole hour for 24 h
(sandbox choice: Tuya does not document a clearing code's window). The cloud cannot see what
is typed at an offline lock, so the 1038 / 1067 rules count every ``multiple`` / ``once`` code
whose end time has not passed, used or cleared or not. ``enter_code`` plays a guest at the
keypad (first use, single use, clearing); ``would_open`` only looks.

Status: ``GET /v1.0/devices/{id}/status`` and the ``status`` list of each device in the device
list and detail carry data points ``[{code, value}]``. A lock reports its battery as one data
point, ``residual_electricity`` (percent) or ``battery_state`` (``high``/``medium``/``low``:
low < 20 %, medium < 60 %), plus ``alarm_lock: "low_battery"`` while the battery is low. The
battery drains at ``battery_drain_per_day`` percent a day of the injected clock; an offline
lock reports nothing new, so the cloud keeps its reading from when it went offline.

Persistence: with ``state_file`` the locks' state (online flags, storage limits, capability
switches, battery, every PIN and offline code with its digits, as the lock itself holds them)
survives a restart of the embedded default, so the pipeline's database and the "lock" do not
drift apart. The file is written atomically with mode 0600; tokens and tickets are not kept
(clients simply authenticate again). Files written before a key existed still load.

Time: protocol checks (``t`` skew, token and ticket expiry, rate limit) use real time;
the lock's truth (is a PIN inside its window, which PINs are live, offline code windows,
battery) uses the injected clock, so the season simulator can move days while the HTTPS
protocol stays honest.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import secrets
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
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
NOT_SUPPORTED = 2004                 # Tuya's "not support ..." code; see the table above for who chose which use
OFFLINE_NAME_TOO_LONG = 1031
OFFLINE_NAME_DUPLICATE = 1038
OFFLINE_CODES_TOO_MANY = 1067
OFFLINE_CODE_DIGITS = 10             # an assumption: Tuya does not document the length
OFFLINE_CODE_KINDS = ("multiple", "once", "clear_one", "clear_all")
OFFLINE_ACCESS_KINDS = ("multiple", "once")   # the kinds that open the door (the others clear)
OFFLINE_FIRST_USE_WITHIN = timedelta(hours=24)  # a multiple code unused this long after its start never works
OFFLINE_ONCE_LASTS = timedelta(hours=6)
OFFLINE_CLEAR_LASTS = timedelta(hours=24)      # sandbox choice: Tuya does not document it
BATTERY_KINDS = ("percent", "level")
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
    # What the lock itself still holds while a modify waits for an offline lock (phase 1 after a
    # modify-password): the old digits and window. None when the lock holds the cloud's record.
    held_digits: str | None = field(default=None, repr=False)
    held_effective: datetime | None = None
    held_invalid: datetime | None = None
    used_at: datetime | None = None  # a single-use PIN typed at the keypad (enter_code)

    def is_live(self, now: datetime) -> bool:
        return self.phase in LIVE_PHASES and now < self.invalid

    def on_lock(self) -> tuple[str, datetime, datetime] | None:
        """The digits and window the lock itself holds for this password, or None."""
        if self.held_digits is not None and self.held_effective is not None and self.held_invalid is not None:
            return self.held_digits, self.held_effective, self.held_invalid
        if self.phase in ON_LOCK_PHASES:
            return self.digits, self.effective, self.invalid
        return None

    def opens_at(self, at: datetime) -> bool:
        held = self.on_lock()
        if held is None or (self.single_use and self.used_at is not None and self.used_at <= at):
            return False
        return held[1] <= at < held[2]


@dataclass(frozen=True)
class SandboxOfflineCode:
    """One offline temporary password (or clearing code) as the lock computes it (tests and simulations only).

    ``kind`` is ``multiple``, ``once``, ``clear_one`` or ``clear_all``; ``clears`` is the id a
    ``clear_one`` code clears. ``first_used_at`` is when it was first typed at the lock,
    ``cleared_at`` when a clearing code typed at the lock made it stop working.
    """

    password_id: str
    name: str
    digits: str = field(repr=False)
    effective: datetime
    invalid: datetime
    kind: str
    first_used_at: datetime | None = None
    cleared_at: datetime | None = None
    clears: str | None = None

    def opens_at(self, at: datetime) -> bool:
        """Would typing this code at ``at`` open the door (looking only, nothing recorded)."""
        if self.kind not in OFFLINE_ACCESS_KINDS or not self.effective <= at < self.invalid:
            return False
        if self.cleared_at is not None and self.cleared_at <= at:
            return False
        if self.kind == "once":  # one use: typed once at u, it opens nothing from u on
            return self.first_used_at is None or at < self.first_used_at
        used_by_then = self.first_used_at is not None and self.first_used_at <= at
        return used_by_then or at < self.effective + OFFLINE_FIRST_USE_WITHIN

    def is_counted(self, now: datetime) -> bool:
        """The cloud's view (it cannot see the keypad): an access code whose end has not passed."""
        return self.kind in OFFLINE_ACCESS_KINDS and now < self.invalid


@dataclass
class _LockState:
    seed: SeedLock
    online: bool
    battery_percent: float          # the battery at battery_at (injected clock); it drains from there
    battery_at: datetime
    offline_since: datetime | None = None  # the lock's last report (status) while it is offline
    modify_supported: bool = True
    offline_codes_supported: bool = True
    storage_limit: int | None = None
    pins: dict[int, SandboxPin] = field(default_factory=dict)
    offline_codes: dict[int, SandboxOfflineCode] = field(default_factory=dict)
    created_at: int = field(default_factory=lambda: int(time.time()))


@dataclass(frozen=True)
class _PinFields:
    """A create's or modify's validated fields (everything but the digits)."""

    name: str
    effective: datetime
    invalid: datetime
    use_type: int
    time_zone: str | None
    now: datetime


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
    ("PUT", re.compile(r"/v1\.0/devices/(?P<device_id>[^/]+)/door-lock/temp-passwords/(?P<password_id>[^/]+)"
                       r"/modify-password"), "_modify_temp_password"),
    ("POST", re.compile(r"/v1\.1/devices/(?P<device_id>[^/]+)/door-lock/offline-temp-password"),
     "_offline_temp_password"),
    ("GET", re.compile(r"/v1\.0/devices/(?P<device_id>[^/]+)/status"), "_device_status"),
]


class TuyaSandbox:
    """The sandbox cloud: start it, point a ``TuyaClient`` at ``base_url`` with ``verify=ca_cert_path``."""

    def __init__(self, locks: Iterable[SeedLock] = (), *, access_id: str = DEFAULT_ACCESS_ID,
                 access_secret: str = DEFAULT_ACCESS_SECRET, clock: Clock | None = None,
                 token_ttl_seconds: int = 7200, max_pins_per_lock: int = 20, max_skew_seconds: int = 900,
                 host: str = "127.0.0.1", port: int = 0, call_latency: float = 0.0,
                 rate_limit_per_second: float | None = None, state_file: str | Path | None = None,
                 max_offline_codes_per_lock: int = 10, battery_drain_per_day: float = 0.5) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the sandbox cloud serves loopback only, not {host!r}")
        if len(access_secret.encode("utf-8")) != 32:
            raise ValueError("access_secret must be 32 bytes, like a real Tuya Access Secret (it is an AES-256 key)")
        self.access_id = access_id
        self.access_secret = access_secret
        self._clock: Clock = clock or SystemClock()
        self._token_ttl = token_ttl_seconds
        self._max_pins = max_pins_per_lock
        if max_offline_codes_per_lock < 0 or battery_drain_per_day < 0:
            raise ValueError("max_offline_codes_per_lock and battery_drain_per_day must be >= 0")
        self._max_offline_codes = max_offline_codes_per_lock
        self._battery_drain_per_day = float(battery_drain_per_day)
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
            self._locks[lock.device_id] = self._new_lock_state(lock)
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
            self._locks[lock.device_id] = self._new_lock_state(lock)
            self._persist()

    def remove_lock(self, device_id: str) -> None:
        with self._state:
            self._lock_state(device_id)
            del self._locks[device_id]
            self._persist()

    def set_online(self, device_id: str, online: bool) -> None:
        """Coming online delivers what waited: phase 1 -> 2 (on the lock, a modified window replacing
        the old one), phase 3 -> 0 (deleted). Going offline freezes what the lock reports (status)."""
        with self._state:
            state = self._lock_state(device_id)
            if online:
                for pid, pin in list(state.pins.items()):
                    if pin.phase == 1:
                        state.pins[pid] = _drop_held(replace(pin, phase=2))
                    elif pin.phase == 3:
                        state.pins[pid] = _drop_held(replace(pin, phase=0))
                state.offline_since = None
            elif state.online:
                state.offline_since = self._clock.now()
            state.online = online
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

    def set_modify_supported(self, device_id: str, supported: bool) -> None:
        """A lock model that refuses modify-password answers 2004 "not support this function"."""
        with self._state:
            self._lock_state(device_id).modify_supported = bool(supported)
            self._persist()

    def set_offline_codes_supported(self, device_id: str, supported: bool) -> None:
        """A lock model without offline passwords answers 2004 "not support offline password"."""
        with self._state:
            self._lock_state(device_id).offline_codes_supported = bool(supported)
            self._persist()

    def set_battery(self, device_id: str, percent: float) -> None:
        """The battery is at ``percent`` now (injected clock) and drains from there; an offline lock
        reports it too (a test switch: as if it had just reported before going quiet)."""
        if not 0 <= percent <= 100:
            raise ValueError("a battery percent is 0..100")
        with self._state:
            state = self._lock_state(device_id)
            state.battery_percent, state.battery_at = float(percent), self._clock.now()
            if state.offline_since is not None:
                state.offline_since = state.battery_at
            self._persist()

    def battery_percent(self, device_id: str) -> int:
        """The battery the lock reports now (whole percent; an offline lock's last report)."""
        with self._state:
            return self._reported_battery(self._lock_state(device_id))

    # -- the lock's own truth --------------------------------------------------------------

    def would_open(self, device_id: str, pin: str, at: datetime) -> bool:
        """Would typing ``pin`` at ``at`` open the door, looking only (nothing is recorded).

        A temp password the lock holds (phase 2 or 3, or the old window a modify has not yet
        replaced on an offline lock) inside that window; or an offline code inside its window,
        not cleared by then, and either already used by then or still inside its 24 h first-use
        period (a ``once`` code: not used yet).
        """
        _require_aware(at)
        with self._state:
            state = self._lock_state(device_id)
            return self._opening_pin(state, pin, at) is not None or self._opening_code(state, pin, at) is not None

    def enter_code(self, device_id: str, digits: str, at: datetime) -> bool:
        """A person types ``digits`` at the keypad at ``at``: True if the door opens.

        Records what the lock records: the first use of an offline code (lifting its 24 h
        rule), the one use of a ``once`` code or single-use PIN, and a clearing code's effect
        (the codes it clears stop working from ``at`` on; the door itself stays shut).
        """
        _require_aware(at)
        at = at.astimezone(timezone.utc)
        with self._state:
            state = self._lock_state(device_id)
            clearing = next((c for c in state.offline_codes.values()
                             if c.kind in ("clear_one", "clear_all") and c.first_used_at is None
                             and c.effective <= at < c.invalid and _same_digits(c.digits, digits)), None)
            if clearing is not None:
                self._apply_clearing(state, clearing, at)
                self._persist()
                return False
            code = self._opening_code(state, digits, at)
            if code is not None:
                if code.first_used_at is None:
                    state.offline_codes[int(code.password_id)] = replace(code, first_used_at=at)
                    self._persist()
                return True
            pin = self._opening_pin(state, digits, at)
            if pin is not None:
                if pin.single_use and pin.used_at is None:
                    state.pins[int(pin.password_id)] = replace(pin, used_at=at)
                    self._persist()
                return True
            return False

    def pins(self, device_id: str) -> list[SandboxPin]:
        """Every temp password the cloud knows for the lock, deleted ones (phase 0) included."""
        with self._state:
            return [pin for _, pin in sorted(self._lock_state(device_id).pins.items())]

    def offline_codes(self, device_id: str) -> list[SandboxOfflineCode]:
        """Every offline code (and clearing code) issued for the lock, in issue order."""
        with self._state:
            return [code for _, code in sorted(self._lock_state(device_id).offline_codes.items())]

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
        digits = self._ticket_digits(state, device_id, body)
        fields = self._pin_fields(body, default_type=0)
        live = [pin for pin in state.pins.values() if pin.is_live(fields.now)]
        if any(secrets.compare_digest(pin.digits, digits) for pin in live):
            raise _CloudError(DUPLICATE_PASSWORD, "duplicate password: the lock already holds this PIN")
        limit = self._max_pins if state.storage_limit is None else state.storage_limit
        if len(live) >= limit:
            raise _CloudError(PASSWORD_STORAGE_FULL, f"password storage full: the lock holds {limit} PINs")
        password_id = self._new_password_id()
        state.pins[password_id] = SandboxPin(
            password_id=str(password_id), name=fields.name, digits=digits, effective=fields.effective,
            invalid=fields.invalid, phase=2 if state.online else 1, time_zone=fields.time_zone,
            single_use=fields.use_type == 1,
        )
        return {"id": password_id}

    def _modify_temp_password(self, params: dict, query: dict, payload: Any) -> bool:
        """New window (and digits, as sent) for an existing PIN: on the lock at once if it is online;
        on an offline lock the cloud's record changes (phase 1) while the lock keeps the old copy."""
        device_id = params["device_id"]
        state = self._door_lock(device_id)
        if not state.modify_supported:
            raise _CloudError(NOT_SUPPORTED, "not support this function")
        body = _require_object(payload)
        digits = self._ticket_digits(state, device_id, body)  # the ticket is spent whatever follows
        pin = self._pin(state, params["password_id"])
        if pin.phase not in (1, 2):  # deleted, or waiting to be deleted from the lock
            raise _CloudError(1000, "data not exist")
        fields = self._pin_fields(body, default_type=1 if pin.single_use else 0)
        others = [other for other in state.pins.values()
                  if other.password_id != pin.password_id and other.is_live(fields.now)]
        if any(secrets.compare_digest(other.digits, digits) for other in others):
            raise _CloudError(DUPLICATE_PASSWORD, "duplicate password: the lock already holds this PIN")
        limit = self._max_pins if state.storage_limit is None else state.storage_limit
        if not pin.is_live(fields.now) and len(others) >= limit:  # an expired PIN brought back takes a slot
            raise _CloudError(PASSWORD_STORAGE_FULL, f"password storage full: the lock holds {limit} PINs")
        changed = replace(pin, name=fields.name, digits=digits, effective=fields.effective, invalid=fields.invalid,
                          time_zone=fields.time_zone if "time_zone" in body else pin.time_zone,
                          single_use=fields.use_type == 1, used_at=None)
        if state.online:
            changed = _drop_held(replace(changed, phase=2))
        elif pin.phase == 2:  # the lock keeps what it has until it wakes
            changed = replace(changed, phase=1, held_digits=pin.digits, held_effective=pin.effective,
                              held_invalid=pin.invalid)
        state.pins[int(pin.password_id)] = changed
        return True

    def _ticket_digits(self, state: _LockState, device_id: str, body: dict) -> str:
        """The PIN a create or modify carries, decrypted with its one-time ticket (spent here)."""
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
            # Stable wording: the pipeline reads the length the lock takes from this message.
            raise _CloudError(1109, f"param is illegal: password must be exactly {length} digits on this lock")
        return digits

    def _pin_fields(self, body: dict, *, default_type: int) -> "_PinFields":
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
        use_type = body.get("type", default_type)
        if use_type not in (0, 1) or isinstance(use_type, bool):
            raise _CloudError(1109, "param is illegal: type must be 0 or 1")
        time_zone = body.get("time_zone")
        if time_zone is not None and not isinstance(time_zone, str):
            raise _CloudError(1109, "param is illegal: time_zone must be a string")
        return _PinFields(name=name, effective=effective, invalid=invalid, use_type=use_type,
                          time_zone=time_zone or None, now=now)

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
        never_on_lock = pin.phase == 1 and pin.held_digits is None
        if never_on_lock or (pin.phase in (1, 2) and state.online):
            state.pins[int(pin.password_id)] = _drop_held(replace(pin, phase=0))
        else:  # the lock holds it (or a modify's old copy of it) until it wakes
            state.pins[int(pin.password_id)] = replace(pin, phase=3)
        return True

    def _offline_temp_password(self, params: dict, query: dict, payload: Any) -> dict:
        """An offline code: computed for the lock (which checks it itself), so the lock may be offline."""
        device_id = params["device_id"]
        state = self._door_lock(device_id)
        if not state.offline_codes_supported:
            raise _CloudError(NOT_SUPPORTED, "not support offline password")
        body = _require_object(payload)
        nested = body.get("offline_pwd_add_request")
        if isinstance(nested, dict):  # the body as Tuya's doc names it; most callers send it flat
            body = nested
        kind = body.get("type")
        if kind not in OFFLINE_CODE_KINDS:
            raise _CloudError(1109, f"param is illegal: type must be one of {', '.join(OFFLINE_CODE_KINDS)}")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _CloudError(1109, "param is illegal: name is required")
        if len(name) > MAX_PIN_NAME_LENGTH:
            raise _CloudError(OFFLINE_NAME_TOO_LONG, f"name is longer than {MAX_PIN_NAME_LENGTH} characters")
        now = self._clock.now()
        this_hour = _floor_hour(now)
        clears: str | None = None
        if kind == "multiple":
            effective = _floor_hour(_epoch_param(body.get("effective_time"), "effective_time"))
            invalid = _floor_hour(_epoch_param(body.get("invalid_time"), "invalid_time"))
            if invalid <= effective:
                raise _CloudError(1109, "param is illegal: invalid_time must be after effective_time "
                                        "once both are rounded down to the hour")
            if invalid <= now:
                raise _CloudError(1109, "param is illegal: invalid_time is in the past")
        elif kind == "once":
            effective, invalid = this_hour, this_hour + OFFLINE_ONCE_LASTS
        else:
            effective, invalid = this_hour, this_hour + OFFLINE_CLEAR_LASTS
            if kind == "clear_one":
                target = str(body.get("password_id", ""))
                code = state.offline_codes.get(int(target)) if target.isdigit() else None
                if code is None or code.kind not in OFFLINE_ACCESS_KINDS:
                    raise _CloudError(1000, "data not exist")
                clears = code.password_id
        if kind in OFFLINE_ACCESS_KINDS:
            counted = [code for code in state.offline_codes.values() if code.is_counted(now)]
            if any(code.name == name for code in counted):
                raise _CloudError(OFFLINE_NAME_DUPLICATE, "an offline password with this name already exists")
            if len(counted) >= self._max_offline_codes:
                raise _CloudError(OFFLINE_CODES_TOO_MANY,
                                  f"too many offline passwords: the lock has {self._max_offline_codes}")
        taken = {code.digits for code in state.offline_codes.values()}
        digits = _random_digits(OFFLINE_CODE_DIGITS)
        while digits in taken:
            digits = _random_digits(OFFLINE_CODE_DIGITS)
        password_id = self._new_password_id()
        state.offline_codes[password_id] = SandboxOfflineCode(
            password_id=str(password_id), name=name, digits=digits, effective=effective, invalid=invalid,
            kind=kind, clears=clears,
        )
        return {
            "offline_temp_password_id": password_id, "offline_temp_password": digits,
            "offline_temp_password_name": name, "effective_time": int(effective.timestamp()),
            "invalid_time": int(invalid.timestamp()),
        }

    def _device_status(self, params: dict, query: dict, payload: Any) -> list[dict]:
        return self._status_points(self._known_device(params["device_id"]))

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
                    "pins": [_record(pin) for _, pin in sorted(state.pins.items())],
                    "modify_supported": state.modify_supported,
                    "offline_codes_supported": state.offline_codes_supported,
                    "battery": {"percent": state.battery_percent, "at": state.battery_at.isoformat()},
                    "offline_since": None if state.offline_since is None else state.offline_since.isoformat(),
                    "offline_codes": [_record(code) for _, code in sorted(state.offline_codes.items())],
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
                state = self._locks.get(seed.device_id) or self._locks.setdefault(seed.device_id,
                                                                                   self._new_lock_state(seed))
                state.online = bool(saved["online"])
                state.storage_limit = saved.get("storage_limit")
                state.created_at = int(saved.get("created_at", state.created_at))
                state.pins = {int(record["password_id"]): _from_record(SandboxPin, record) for record in saved["pins"]}
                # Keys added later: a file written before them keeps the seed's (or a fresh) value.
                state.modify_supported = bool(saved.get("modify_supported", state.modify_supported))
                state.offline_codes_supported = bool(saved.get("offline_codes_supported",
                                                               state.offline_codes_supported))
                if isinstance(saved.get("battery"), dict):
                    state.battery_percent = float(saved["battery"]["percent"])
                    state.battery_at = _aware(datetime.fromisoformat(saved["battery"]["at"]))
                if "offline_since" in saved:
                    since = saved["offline_since"]
                    state.offline_since = None if since is None else _aware(datetime.fromisoformat(since))
                else:
                    state.offline_since = None if state.online else self._clock.now()
                state.offline_codes = {int(record["password_id"]): _from_record(SandboxOfflineCode, record)
                                       for record in saved.get("offline_codes", [])}
            self._next_password_id = int(document["next_password_id"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"Tuya sandbox state file {path} is unreadable ({type(exc).__name__}): "
                             "delete it to start the sandbox locks afresh") from None

    # -- helpers ---------------------------------------------------------------------------

    def _new_lock_state(self, seed: SeedLock) -> _LockState:
        if seed.battery_kind not in BATTERY_KINDS:
            raise ValueError(f"lock {seed.device_id}: battery_kind must be one of {BATTERY_KINDS}")
        if not 0 <= seed.battery_start <= 100:
            raise ValueError(f"lock {seed.device_id}: battery_start is a percent, 0..100")
        now = self._clock.now()
        return _LockState(seed=seed, online=seed.online, battery_percent=float(seed.battery_start), battery_at=now,
                          offline_since=None if seed.online else now, modify_supported=seed.modify_supported,
                          offline_codes_supported=seed.offline_codes_supported)

    def _reported_battery(self, state: _LockState) -> int:
        """Whole percent, drained since the anchor; an offline lock's last report (when it went offline)."""
        at = state.offline_since or self._clock.now()
        days = max(0.0, (at - state.battery_at).total_seconds() / 86400)
        return max(0, min(100, math.floor(state.battery_percent - self._battery_drain_per_day * days)))

    def _status_points(self, state: _LockState) -> list[dict]:
        if state.seed.category not in LOCK_CATEGORIES:
            return [{"code": "switch_1", "value": False}]
        percent = self._reported_battery(state)
        if state.seed.battery_kind == "level":
            points = [{"code": "battery_state", "value": _battery_level(percent)}]
        else:
            points = [{"code": "residual_electricity", "value": percent}]
        if percent < 20:
            points.append({"code": "alarm_lock", "value": "low_battery"})
        return points

    @staticmethod
    def _opening_pin(state: _LockState, digits: str, at: datetime) -> SandboxPin | None:
        for _, pin in sorted(state.pins.items()):
            held = pin.on_lock()
            if held is not None and _same_digits(held[0], digits) and pin.opens_at(at):
                return pin
        return None

    @staticmethod
    def _opening_code(state: _LockState, digits: str, at: datetime) -> SandboxOfflineCode | None:
        for _, code in sorted(state.offline_codes.items()):
            if _same_digits(code.digits, digits) and code.opens_at(at):
                return code
        return None

    @staticmethod
    def _apply_clearing(state: _LockState, clearing: SandboxOfflineCode, at: datetime) -> None:
        state.offline_codes[int(clearing.password_id)] = replace(clearing, first_used_at=at)
        for code_id, code in list(state.offline_codes.items()):
            if code.kind not in OFFLINE_ACCESS_KINDS or code.cleared_at is not None:
                continue
            if (clearing.kind == "clear_one" and code.password_id == clearing.clears) or \
                    (clearing.kind == "clear_all" and code_id < int(clearing.password_id)):
                state.offline_codes[code_id] = replace(code, cleared_at=at)

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
            "update_time": state.created_at, "status": self._status_points(state),
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


def _floor_hour(instant: datetime) -> datetime:
    seconds = int(instant.timestamp())
    return datetime.fromtimestamp(seconds - seconds % 3600, tz=timezone.utc)


def _random_digits(length: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(length))


def _same_digits(held: str, typed: str) -> bool:
    """Constant-time comparison that also takes whatever a test types (non-ASCII included)."""
    return isinstance(typed, str) and secrets.compare_digest(held.encode("utf-8"), typed.encode("utf-8"))


def _battery_level(percent: int) -> str:
    return "low" if percent < 20 else "medium" if percent < 60 else "high"


def _drop_held(pin: SandboxPin) -> SandboxPin:
    return replace(pin, held_digits=None, held_effective=None, held_invalid=None)


def _pin_json(pin: SandboxPin) -> dict:
    return {
        "id": int(pin.password_id), "name": pin.name, "phase": pin.phase,
        "effective_time": int(pin.effective.timestamp()), "invalid_time": int(pin.invalid.timestamp()),
        "time_zone": pin.time_zone or "", "phone": "",
    }


def _record(item: SandboxPin | SandboxOfflineCode) -> dict:
    """A PIN or offline code as JSON: its fields, instants as ISO strings."""
    return {name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in dataclasses.asdict(item).items()}


_INSTANT_FIELDS = frozenset({"effective", "invalid", "held_effective", "held_invalid", "used_at",
                             "first_used_at", "cleared_at"})


def _from_record(kind: type, record: dict) -> Any:
    """The inverse of :func:`_record`; keys the dataclass does not know are refused (a corrupt file)."""
    return kind(**{name: _aware(datetime.fromisoformat(value)) if name in _INSTANT_FIELDS and value is not None
                   else value for name, value in record.items()})


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("naive instant in the state file")
    return instant.astimezone(timezone.utc)


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
