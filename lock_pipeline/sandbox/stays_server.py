"""A Stays External API on loopback: the embedded default, and what the tests talk to.

It speaks the wire shape the production client expects from the real API (Basic auth, bare
JSON arrays, skip/limit paging with a maximum of 20, no cancellations unless asked for) and
stores raw dicts as given, so a test can inject a malformed record and see it reach the
client. Faults (outage, 5xx bursts with Retry-After, slow pages, HTML answers, empty feeds,
broken paging) are switched on at run time by tests and by the demo.

Beyond reading, it implements what the reference (``stays-api.md``) documents and nothing our
code merely wishes for:

- Writing to a reservation: ``PATCH /booking/reservations/{reserveId}`` with a ``type`` (which
  the reservation then takes, as the reference warns), ``internalNote`` and ``appCustomFields``;
  the app's custom fields under ``/settings/app/custom-fields``; ``refuse_writes`` for accounts
  whose API client may not write.
- Webhooks: every data operation posts the event Stays would send to the configured URL, from
  a background thread, with switches to drop, duplicate, delay, hold and reorder deliveries.
- ``/_sandbox/...``: admin endpoints that book, move and cancel stays in a running sandbox, the
  way an operator would in Stays' own UI. They are not part of the Stays API.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import itertools
import json
import re
import secrets
import string
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from lock_pipeline.clock import Clock, clock_from_environment
from lock_pipeline.sandbox.seed import Seed, build_seed, hex_id, reservation_record

PREFIX = "/external/v1"
ADMIN_PREFIX = "/_sandbox"
MAX_LIMIT = 20
DEFAULT_TYPES = ("reserved", "booked", "contract", "new")
KNOWN_TYPES = DEFAULT_TYPES + ("blocked", "maintenance", "canceled")
DATE_TYPES = ("arrival", "departure", "creation", "creationorig", "included")

CUSTOM_FIELD_TYPES = ("text", "integer", "number", "link")
CUSTOM_FIELD_VISIBILITIES = ("public", "hidden")
# The reference shows target=reservation only; listing and client are assumed to exist as well.
CUSTOM_FIELD_TARGETS = ("reservation", "listing", "client")
INTERNAL_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]+$")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

WEBHOOK_ACTIONS = ("reservation.created", "reservation.modified", "reservation.canceled",
                   "reservation.reactivated", "reservation.deleted", "listing.created", "listing.modified",
                   "client.created")
# Integrators logged a base64 signature of about 700 characters: 512 bytes (an RSA-4096
# signature's size) is 684 in base64. No key or algorithm is published, so it is random here.
_SIGNATURE_BYTES = 512
WEBHOOK_NAME = "lock_pipeline sandbox"

PageFault = Literal["object", "oversized", "ignore_skip"]
Deliver = Callable[[str, dict[str, str], bytes], int]
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


@dataclass(frozen=True)
class WebhookDelivery:
    """One line of :attr:`StaysSandbox.webhook_log`: one attempt to deliver one event.

    ``record_id`` and ``code`` are the reservation's (or listing's, or client's) ``_id`` and short
    ``id``. ``event`` numbers the events in the order they happened; both copies of a duplicated
    event share it. ``attempt`` is 0 for an event dropped on purpose (never sent).
    ``status`` is the receiver's HTTP status, None when no answer came (see ``error``).
    """

    event: int
    action: str
    record_id: str | None
    code: str | None
    attempt: int
    status: int | None
    error: str | None
    sent_at: datetime
    url: str

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Outgoing:
    event: int
    action: str
    record_id: str | None
    code: str | None
    url: str
    headers: dict[str, str]
    body: bytes


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_QUERY_CACHE_SIZE = 64


class StaysSandbox:
    """The Stays sandbox: data, faults, webhooks, and the HTTP server that serves them.

    Webhooks are sent only while a URL is set (``webhook_url`` here or :meth:`set_webhook_url`);
    the seed given here never fires any. ``deliver(url, headers, body) -> HTTP status`` replaces
    the default httpx POST, so an in-process simulator can take deliveries without a network
    server. ``clock`` stamps ``_dt`` and the creation date of stays booked through ``/_sandbox``.

    Delivery is asynchronous (a queue and one background thread; a data operation never waits
    on the network) and in order. Each event gets ``webhook_attempts`` tries with a
    ``webhook_timeout`` each, retrying a non-2xx answer or a connection error after
    ``webhook_backoff`` s, then twice that. The real Stays' retry policy is not published: these
    numbers are an assumption, there so receivers get tested against retries at all. Also
    assumed, not documented: a save that changes nothing fires nothing, a write through the API
    (PATCH) fires like any other change, and a new ``_idclient`` fires ``client.created``.
    """

    def __init__(self, seed: Seed | None = None, *, client_id: str = "sandbox-client",
                 client_secret: str = "sandbox-secret", host: str = "127.0.0.1", port: int = 0,
                 page_latency: float = 0.0, webhook_url: str | None = None, deliver: Deliver | None = None,
                 webhook_timeout: float = 2.0, webhook_attempts: int = 3, webhook_backoff: float = 0.2,
                 clock: Clock | None = None) -> None:
        self._clock = clock or clock_from_environment()
        if seed is None:
            seed = build_seed(self._clock.now())
        if webhook_timeout <= 0:
            raise ValueError("webhook_timeout must be positive: every delivery needs a bound")
        self.client_id = client_id
        self._client_secret = client_secret
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._listings: dict[str, dict] = {}
        # Each distinct query's sorted rows, until the data changes: without it every page request
        # filtered and sorted the whole store (about 1 s a page at 100,000 stays).
        self._query_cache: dict[tuple, list[dict]] = {}
        self._reservations: dict[str, dict] = {}
        self._custom_fields: dict[str, dict] = {}
        self._known_clients: set[str] = set()
        self._generated_keys = itertools.count(1)
        self._latency = page_latency
        self._outage = False
        self._empty_feed = False
        self._html_errors = False
        self._refuse_writes: int | None = None
        self._page_fault: PageFault | None = None
        self._failures: deque[tuple[int, float | None]] = deque()
        self._request_count = 0
        self._request_log: list[tuple[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._request_body = threading.local()
        # Webhooks: one queue, one delivery thread, all state under one condition.
        self._webhook_url: str | None = None
        self._deliver = deliver
        self._webhook_timeout = webhook_timeout
        self._webhook_attempts = max(1, webhook_attempts)
        self._webhook_backoff = max(0.0, webhook_backoff)
        self._wh = threading.Condition(threading.RLock())
        self._wh_queue: deque[_Outgoing] = deque()
        self._wh_busy = False
        self._wh_held = False
        self._wh_drop = 0
        self._wh_duplicate = 0
        self._wh_delay = 0.0
        self._wh_closed = False
        self._wh_stop = threading.Event()  # the running worker's own; a new worker gets a new one
        self._wh_thread: threading.Thread | None = None
        self._wh_events = itertools.count(1)
        self._wh_log: list[WebhookDelivery] = []
        for listing in seed.listings:
            self.put_listing(listing)
        for reservation in seed.reservations:
            self.put_reservation(reservation)
        if webhook_url is not None:
            self.set_webhook_url(webhook_url)  # after the seed: loading it is not news to anyone

    def __repr__(self) -> str:
        where = self.base_url if self._server else "stopped"
        return f"StaysSandbox({where}, client_id={self.client_id!r})"

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> StaysSandbox:
        with self._wh:
            self._wh_closed = False
            if self._wh_queue:
                self._ensure_webhook_worker()
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _QuietServer((self._host, self._port), _handler_for(self))
        self._server = server
        # A short poll keeps stop() quick (the default 0.5 s would dominate every test).
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="stays-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and stop delivering webhooks.

        A delivery in flight gets at most ``webhook_timeout`` to finish; events still queued stay
        queued (a later :meth:`start` sends them), and none is sent while stopped.
        """
        self._stop_webhooks()
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping on latency
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StaysSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Stays sandbox is not started: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{PREFIX}"

    @property
    def admin_url(self) -> str:
        """Where the sandbox-only admin endpoints live (``POST {admin_url}/reservations``)."""
        if self._server is None:
            raise RuntimeError("the Stays sandbox is not started: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{ADMIN_PREFIX}"

    # --- data ---------------------------------------------------------------------------------
    # Every change fires the webhook Stays would send (when a URL is set); see _reservation_event.

    def put_listing(self, raw: dict) -> None:
        with self._lock:
            key = self._key(raw)
            before = self._listings.get(key)
            self._listings[key] = copy.deepcopy(raw)
            self._query_cache.clear()
            if before is None:
                self._emit("listing.created", raw, raw)
            elif before != raw:
                self._emit("listing.modified", raw, raw)

    def put_reservation(self, raw: dict) -> None:
        """Store a record as given (malformed ones too); a new ``_id`` is a created stay, a known one
        is modified (or canceled / reactivated when ``type`` changes to or from ``canceled``)."""
        with self._lock:
            key = self._key(raw)
            before = self._reservations.get(key)
            self._reservations[key] = copy.deepcopy(raw)
            self._query_cache.clear()
            self._reservation_event(before, self._reservations[key])

    def modify_reservation(self, reservation_id: str, **fields: Any) -> dict:
        with self._lock:
            record = self._existing(reservation_id)
            before = copy.deepcopy(record)
            record.update(copy.deepcopy(fields))
            self._query_cache.clear()
            self._reservation_event(before, record)
            return copy.deepcopy(record)

    def cancel_reservation(self, reservation_id: str) -> None:
        """Cancel (``type`` -> ``canceled``); cancelling a canceled stay changes nothing and fires nothing."""
        self.modify_reservation(reservation_id, type="canceled")

    def delete_reservation(self, reservation_id: str) -> None:
        with self._lock:
            before = self._existing(reservation_id)
            del self._reservations[reservation_id]
            self._query_cache.clear()
            self._reservation_event(before, None)

    def reservations(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(list(self._reservations.values()))

    def listings(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(list(self._listings.values()))

    def custom_fields(self) -> list[dict]:
        """Every custom field of the app, all targets."""
        with self._lock:
            return copy.deepcopy(list(self._custom_fields.values()))

    def _key(self, raw: dict) -> str:
        key = raw.get("_id")
        return key if isinstance(key, str) and key else f"missing-id-{next(self._generated_keys)}"

    def _existing(self, reservation_id: str) -> dict:
        try:
            return self._reservations[reservation_id]
        except KeyError:
            raise KeyError(f"no reservation with _id {reservation_id!r} in the Stays sandbox") from None

    def _reservation_event(self, before: dict | None, after: dict | None) -> None:
        """The webhook for one change of one reservation (called under the data lock).

        A cancel or a delete carries only ``id``, ``_id`` and ``_idlisting``, as integrators saw
        (receivers must re-fetch); the other actions carry the reservation. A save that changes
        nothing fires nothing (an assumption: Stays' behaviour on a no-op save is unknown). A new
        guest (``_idclient`` not seen before) fires ``client.created`` first.
        """
        if after is None:
            if before is not None:
                self._emit("reservation.deleted", _minimal(before), before)
            return
        if before is None:
            client = after.get("_idclient")
            if isinstance(client, str) and client not in self._known_clients:
                self._known_clients.add(client)
                self._emit("client.created", {"_id": client, "name": _guest_name(after)}, {"_id": client})
            self._emit("reservation.created", after, after)
            return
        if before == after:
            return
        was_canceled, is_canceled = before.get("type") == "canceled", after.get("type") == "canceled"
        if is_canceled and not was_canceled:
            self._emit("reservation.canceled", _minimal(after), after)
        elif was_canceled and not is_canceled:
            self._emit("reservation.reactivated", after, after)
        else:
            self._emit("reservation.modified", after, after)

    # --- faults -------------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503, retry_after: float | None = None) -> None:
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def set_outage(self, on: bool) -> None:
        with self._lock:
            self._outage = on

    def set_empty_feed(self, on: bool) -> None:
        with self._lock:
            self._empty_feed = on

    def set_latency(self, seconds: float) -> None:
        with self._lock:
            self._latency = max(0.0, seconds)

    def set_html_errors(self, on: bool) -> None:
        with self._lock:
            self._html_errors = on

    def set_page_fault(self, fault: PageFault | None) -> None:
        """Break paging itself: a JSON object instead of an array, more rows than the limit,
        or ``skip`` ignored (the first page, over and over)."""
        with self._lock:
            self._page_fault = fault

    def refuse_writes(self, status: int | None) -> None:
        """An account whose API client may not write: every write (POST, PUT, PATCH, DELETE under
        the API prefix) answers ``status`` (403, or 404 as one public client saw); None allows writes.
        Reads and the ``/_sandbox`` admin endpoints are not affected."""
        if status not in (None, 403, 404):
            raise ValueError(f"refuse_writes takes 403, 404 or None, not {status!r}")
        with self._lock:
            self._refuse_writes = status

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._request_count

    @property
    def request_log(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._request_log)

    # --- webhooks -----------------------------------------------------------------------------
    # Delivery: one background thread takes events in order; each gets up to `webhook_attempts`
    # tries (a non-2xx answer or no answer), waiting webhook_backoff, then twice that, between
    # them. The real Stays' retry policy is not published: this one is an assumption, chosen
    # so receivers are tested against retries and duplicates at all.

    def set_webhook_url(self, url: str | None) -> None:
        """Where events are POSTed from now on (None: stop sending; already queued ones still go)."""
        if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            raise ValueError(f"webhook URL must start with http:// or https://, not {url!r}")
        with self._wh:
            self._webhook_url = url

    @property
    def webhook_url(self) -> str | None:
        with self._wh:
            return self._webhook_url

    def drop_next_webhooks(self, count: int) -> None:
        """The next ``count`` events are lost: logged with attempt 0, never sent."""
        with self._wh:
            self._wh_drop += max(0, count)

    def duplicate_next_webhooks(self, count: int) -> None:
        """Each of the next ``count`` events is delivered twice (same body, one after the other)."""
        with self._wh:
            self._wh_duplicate += max(0, count)

    def delay_webhooks(self, seconds: float) -> None:
        """Every delivery waits ``seconds`` before it is sent (0 turns the delay off)."""
        with self._wh:
            self._wh_delay = max(0.0, seconds)

    def hold_webhooks(self) -> None:
        """Queue events without sending them until :meth:`release_webhooks`."""
        with self._wh:
            self._wh_held = True

    def release_webhooks(self, reverse: bool = False) -> None:
        """Send what was held, in order or (``reverse``) newest first: out-of-order delivery."""
        with self._wh:
            if reverse:
                self._wh_queue.reverse()
            self._wh_held = False
            self._wh.notify_all()

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """True once every queued event is sent (or given up); False if ``timeout`` runs out first
        (held events count as not sent)."""
        deadline = time.monotonic() + timeout
        with self._wh:
            while self._wh_queue or self._wh_busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wh.wait(remaining)
            return True

    @property
    def webhook_log(self) -> list[WebhookDelivery]:
        with self._wh:
            return list(self._wh_log)

    def _emit(self, action: str, payload: dict, subject: dict) -> None:
        """Queue one event; never waits on the network (called under the data lock)."""
        with self._wh:
            url = self._webhook_url
            if url is None:
                return
            event = next(self._wh_events)
            record_id, code = subject.get("_id"), subject.get("id")
            body = json.dumps({"_dt": _iso_instant(self._clock.now()), "action": action, "payload": payload},
                              ensure_ascii=False, default=str).encode("utf-8")
            outgoing = _Outgoing(event, action, record_id if isinstance(record_id, str) else None,
                                 code if isinstance(code, str) else None, url, self._webhook_headers(url), body)
            if self._wh_drop:
                self._wh_drop -= 1
                self._log_delivery(outgoing, 0, None, "dropped on purpose (drop_next_webhooks)")
                return
            copies = 1
            if self._wh_duplicate:
                self._wh_duplicate -= 1
                copies = 2
            self._wh_queue.extend([outgoing] * copies)
            self._ensure_webhook_worker()
            self._wh.notify_all()

    def _webhook_headers(self, url: str) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "user-agent": "got",
            "x-stays-client-id": self.client_id,
            "x-stays-signature": base64.b64encode(secrets.token_bytes(_SIGNATURE_BYTES)).decode("ascii"),
            # Seen "sometimes"; their meaning is not published: a stable hook id and a name.
            "x-stays-api-hook": hex_id("webhook", self.client_id, url),
            "x-stays-name": WEBHOOK_NAME,
        }

    def _ensure_webhook_worker(self) -> None:
        """Start the delivery thread if it is not running (under self._wh; not while stopped)."""
        if self._wh_closed or (self._wh_thread is not None and self._wh_thread.is_alive()):
            return
        self._wh_stop = threading.Event()
        self._wh_thread = threading.Thread(target=self._webhook_worker, args=(self._wh_stop,),
                                           name="stays-sandbox-webhooks", daemon=True)
        self._wh_thread.start()

    def _stop_webhooks(self) -> None:
        with self._wh:
            self._wh_closed = True
            self._wh_stop.set()
            self._wh.notify_all()
            thread, self._wh_thread = self._wh_thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._webhook_timeout + 1.0)

    def _webhook_worker(self, stop: threading.Event) -> None:
        http: httpx.Client | None = None
        try:
            while True:
                with self._wh:
                    while not stop.is_set() and (self._wh_held or not self._wh_queue):
                        self._wh.wait()
                    if stop.is_set():
                        return
                    outgoing = self._wh_queue.popleft()
                    self._wh_busy = True
                    delay = self._wh_delay
                try:
                    if self._deliver is None and http is None:
                        http = httpx.Client(timeout=httpx.Timeout(self._webhook_timeout), follow_redirects=False)
                    self._send(outgoing, delay, http, stop)
                finally:
                    with self._wh:
                        self._wh_busy = False
                        self._wh.notify_all()
        finally:
            if http is not None:
                http.close()

    def _send(self, outgoing: _Outgoing, delay: float, http: httpx.Client | None, stop: threading.Event) -> None:
        if delay and stop.wait(delay):
            self._requeue(outgoing)
            return
        for attempt in range(1, self._webhook_attempts + 1):
            if attempt > 1 and stop.wait(self._webhook_backoff * 2 ** (attempt - 2)):
                return  # stopping: the attempts so far are in the log
            status: int | None = None
            error: str | None = None
            try:
                if self._deliver is not None:
                    status = int(self._deliver(outgoing.url, dict(outgoing.headers), outgoing.body))
                else:
                    assert http is not None
                    status = http.post(outgoing.url, content=outgoing.body, headers=outgoing.headers).status_code
            except Exception as failure:  # a receiver's failure is logged, never raised into the sandbox
                error = f"{type(failure).__name__}: {failure}"
            if status is not None and not 200 <= status < 300:
                error = f"HTTP {status}"
            self._log_delivery(outgoing, attempt, status, error)
            if error is None:
                return

    def _requeue(self, outgoing: _Outgoing) -> None:
        """Stopped while waiting out a delay: the event was never sent, so it goes back first in line."""
        with self._wh:
            self._wh_queue.appendleft(outgoing)

    def _log_delivery(self, outgoing: _Outgoing, attempt: int, status: int | None, error: str | None) -> None:
        with self._wh:
            self._wh_log.append(WebhookDelivery(outgoing.event, outgoing.action, outgoing.record_id, outgoing.code,
                                                attempt, status, error, datetime.now(timezone.utc), outgoing.url))

    # --- serving ------------------------------------------------------------------------------

    def _serve(self, method: str, target: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        """One request -> (status, headers, body); runs on the server's handler threads.

        The request's body, if any, is in ``self._request_body.value`` (set by the handler).

        Faults apply to the whole Stays API, writes included; the ``/_sandbox`` admin endpoints
        stand for the operator's own Stays UI, so a fault meant for the pipeline's next call is
        not spent on them.
        """
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        admin = path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
        with self._lock:
            self._request_count += 1
            self._request_log.append((method, target))
            latency = 0.0 if admin else self._latency
        if latency:
            self._stopping.wait(latency)
        with self._lock:
            outage, html, refuse = self._outage, self._html_errors, self._refuse_writes
            failure = self._failures.popleft() if self._failures and not outage and not admin else None
        if outage and not admin:
            return _json(503, {"message": "Service temporarily unavailable (sandbox outage)"})
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return _json(status, {"message": f"injected failure {status}"}, headers)
        if not self._authorized(authorization):
            return _json(401, {"message": "Unauthorized: invalid client id or secret"},
                         {"WWW-Authenticate": 'Basic realm="Stays External API"'})
        if html and not admin:
            page = b"<!DOCTYPE html><html><body><h1>Estamos em manuten\xc3\xa7\xc3\xa3o</h1></body></html>"
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page
        if refuse is not None and not admin and method in WRITE_METHODS:
            if refuse == 403:
                return _json(403, {"message": "Forbidden: this API client has no write permission "
                                              "(sandbox refuse_writes(403))"})
            return _json(404, {"message": f"Not found: {method} {parts.path} "
                                          "(this API client may not write; sandbox refuse_writes(404))"})
        body = getattr(self._request_body, "value", b"")
        try:
            query = parse_qs(parts.query, keep_blank_values=True)
            if admin:
                status, payload = self._admin_route(method, path[len(ADMIN_PREFIX):], body)
            else:
                status, payload = self._route(method, path, query, body)
            return _json(status, payload)
        except _BadRequest as bad:
            return _json(bad.status, {"message": bad.message})

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            pair = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected = f"{self.client_id}:{self._client_secret}"
        return hmac.compare_digest(pair.encode(), expected.encode())

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        if not path.startswith(PREFIX + "/"):
            raise _BadRequest(404, f"no such endpoint {path}")
        segments = [unquote(s) for s in path[len(PREFIX) + 1:].split("/")]
        match segments:
            case ["booking", "reservations"]:
                _allow(method, path, "GET")
                with self._lock:  # only the page is copied (records are modified in place, so under the lock)
                    return 200, copy.deepcopy(self._page(self._find_reservations(query), query))
            case ["booking", "reservations", reserve_id]:
                if _allow(method, path, "GET", "PATCH") == "GET":
                    return 200, self._one_reservation(reserve_id)
                return 200, self._write_reservation(reserve_id, _json_object(body))
            case ["content", "listings"]:
                _allow(method, path, "GET")
                return 200, self._page(self._find_listings(query), query)
            case ["content", "listings", listing_id]:
                _allow(method, path, "GET")
                return 200, self._one_listing(listing_id)
            case ["settings", "app", "custom-fields"]:
                method = _allow(method, path, "GET", "POST")
                target = _field_target(query)
                if method == "GET":
                    with self._lock:
                        return 200, [copy.deepcopy(f) for f in self._custom_fields.values() if f["target"] == target]
                return 201, self._create_custom_field(target, _json_object(body))
            case ["settings", "app", "custom-fields", field_id]:
                if _allow(method, path, "PATCH", "DELETE") == "PATCH":
                    return 200, self._update_custom_field(field_id, _json_object(body))
                return 200, self._delete_custom_field(field_id)
        raise _BadRequest(404, f"no such endpoint {path}")

    def _find_reservations(self, query: dict[str, list[str]]) -> list[dict]:
        first, last = _query_date(query, "from"), _query_date(query, "to")
        date_type = _single(query, "dateType") or "arrival"
        if date_type not in DATE_TYPES:
            raise _BadRequest(400, f"dateType must be one of {', '.join(DATE_TYPES)}")
        types = set(query.get("type") or DEFAULT_TYPES)
        listing_ids = set(query.get("listingId") or ())
        in_window = _window_test(date_type, first, last)
        key = ("reservations", first, last, date_type, frozenset(types), frozenset(listing_ids))
        with self._lock:
            if self._empty_feed:
                return []
            cached = self._query_cache.get(key)
            if cached is not None:
                return cached
            found = [r for r in self._reservations.values()
                     if _passes(r.get("type"), KNOWN_TYPES, types.__contains__)
                     and (not listing_ids or _passes(r.get("_idlisting"), None, listing_ids.__contains__))
                     and in_window(r)]
            # Stable order, as the real API pages it; unreadable dates sort first instead of failing.
            found.sort(key=lambda r: (_text(r.get("checkInDate")), _text(r.get("_id"))))
            if len(self._query_cache) >= _QUERY_CACHE_SIZE:
                self._query_cache.clear()
            self._query_cache[key] = found
            return found

    def _find_listings(self, query: dict[str, list[str]]) -> list[dict]:
        status = _single(query, "status")
        with self._lock:
            if self._empty_feed:
                return []
            return [copy.deepcopy(raw) for raw in self._listings.values()
                    if not status or (raw.get("status") or "active") == status]

    def _one_reservation(self, id_or_code: str) -> dict:
        with self._lock:
            for raw in self._reservations.values():
                if id_or_code in (raw.get("_id"), raw.get("id")):
                    return copy.deepcopy(raw)
        raise _BadRequest(404, f"reservation {id_or_code} not found")

    def _one_listing(self, id_or_code: str) -> dict:
        with self._lock:
            listing = self._listing_by_id_or_code(id_or_code)
            if listing is None:
                raise _BadRequest(404, f"listing {id_or_code} not found")
            return copy.deepcopy(listing)

    def _listing_by_id_or_code(self, id_or_code: str) -> dict | None:
        for raw in self._listings.values():
            if id_or_code in (raw.get("_id"), raw.get("id")):
                return raw
        return None

    def _reservation_key(self, reserve_id: str, *, partner_code: bool = False) -> str:
        """The store key of a reservation named by ``_id``, short code (or, for writes, partner code)."""
        if reserve_id in self._reservations:
            return reserve_id
        for key, raw in self._reservations.items():
            if reserve_id == raw.get("id") or (partner_code and reserve_id == raw.get("partnerCode")):
                return key
        raise _BadRequest(404, f"reservation {reserve_id} not found")

    # --- writing to a reservation ---------------------------------------------------------------

    def _write_reservation(self, reserve_id: str, body: dict) -> dict:
        """``PATCH /booking/reservations/{reserveId}``: the body is chosen by ``type``, and the
        reservation takes that type (sending the wrong one really changes it, as the reference warns).
        Firing ``reservation.modified`` (or canceled / reactivated, by the type rule) is assumed."""
        unknown = sorted(set(body) - {"type", "internalNote", "appCustomFields"})
        if unknown:
            raise _BadRequest(400, f"fields {', '.join(unknown)} are not writable in the sandbox "
                                   "(writable: type, internalNote, appCustomFields)")
        stays_type = body.get("type")
        if stays_type is None:
            raise _BadRequest(400, "type is required: the body is chosen by type; send the reservation's "
                                   f"current type ({', '.join(KNOWN_TYPES)}) or the reservation changes type")
        if stays_type not in KNOWN_TYPES:
            raise _BadRequest(400, f"type {stays_type!r} is not one of {', '.join(KNOWN_TYPES)}")
        note = body.get("internalNote")
        if "internalNote" in body and not isinstance(note, str):
            raise _BadRequest(400, "internalNote must be a string")
        values = body.get("appCustomFields")
        if "appCustomFields" in body and not isinstance(values, list):
            raise _BadRequest(400, 'appCustomFields must be an array of {"_idfield": ..., "val": ...}')
        with self._lock:
            updates = [self._custom_value(item) for item in values or ()]
            record = self._reservations[self._reservation_key(reserve_id, partner_code=True)]
            before = copy.deepcopy(record)
            record["type"] = stays_type
            if "internalNote" in body:
                record["internalNote"] = note
            if updates:
                merged = [dict(v) for v in record.get("appCustomFields") or () if isinstance(v, dict)]
                for update in updates:
                    for existing in merged:
                        if existing.get("_idfield") == update["_idfield"]:
                            existing["val"] = update["val"]
                            break
                    else:
                        merged.append(update)
                record["appCustomFields"] = merged
            self._query_cache.clear()
            self._reservation_event(before, record)
            return copy.deepcopy(record)

    def _custom_value(self, item: object) -> dict:
        if not isinstance(item, dict) or set(item) != {"_idfield", "val"}:
            raise _BadRequest(400, 'each appCustomFields item must be {"_idfield": ..., "val": ...}')
        field_id, value = item["_idfield"], item["val"]
        field = self._custom_fields.get(field_id) if isinstance(field_id, str) else None
        if field is None or field["target"] != "reservation":
            raise _BadRequest(400, f"unknown custom field _idfield {field_id!r}: create it with "
                                   "POST /settings/app/custom-fields?target=reservation")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _BadRequest(400, f'val of custom field {field["internalName"]} must be a string or a number '
                                   '(send "" to clear it)')
        return {"_idfield": field_id, "val": value}

    # --- the app's custom fields ----------------------------------------------------------------

    def _create_custom_field(self, target: str, body: dict) -> dict:
        unknown = sorted(set(body) - {"type", "internalName", "_msname", "visibility"})
        if unknown:
            raise _BadRequest(400, f"fields {', '.join(unknown)} are not supported by the sandbox "
                                   "(type, internalName, _msname, visibility)")
        for required in ("type", "internalName", "_msname"):
            if required not in body:
                raise _BadRequest(400, f"{required} is required")
        field = {"_idfield": secrets.token_hex(12), "type": None, "internalName": None, "_msname": None,
                 "visibility": "hidden", "target": target}  # hidden unless asked: an assumption
        with self._lock:
            self._apply_field(field, body)
            self._custom_fields[field["_idfield"]] = field
            return copy.deepcopy(field)

    def _update_custom_field(self, field_id: str, body: dict) -> dict:
        unknown = sorted(set(body) - {"type", "internalName", "_msname", "visibility"})
        if unknown or not body:
            raise _BadRequest(400, "send any of type, internalName, _msname, visibility"
                                   + (f" (not {', '.join(unknown)})" if unknown else ""))
        with self._lock:
            field = self._custom_fields.get(field_id)
            if field is None:
                raise _BadRequest(404, f"custom field {field_id} not found")
            changed = copy.deepcopy(field)
            self._apply_field(changed, body)
            self._custom_fields[field_id] = changed
            return copy.deepcopy(changed)

    def _delete_custom_field(self, field_id: str) -> dict:
        """Deletes the field and (an assumption) its values on every reservation."""
        with self._lock:
            field = self._custom_fields.pop(field_id, None)
            if field is None:
                raise _BadRequest(404, f"custom field {field_id} not found")
            for record in self._reservations.values():
                values = record.get("appCustomFields")
                if isinstance(values, list) and any(isinstance(v, dict) and v.get("_idfield") == field_id
                                                    for v in values):
                    record["appCustomFields"] = [v for v in values
                                                 if not (isinstance(v, dict) and v.get("_idfield") == field_id)]
            self._query_cache.clear()
            return copy.deepcopy(field)

    def _apply_field(self, field: dict, body: dict) -> None:
        """Validate ``body`` and write it into ``field`` (under the data lock)."""
        if "type" in body and body["type"] not in CUSTOM_FIELD_TYPES:
            raise _BadRequest(400, f"type must be one of {', '.join(CUSTOM_FIELD_TYPES)}")
        if "visibility" in body and body["visibility"] not in CUSTOM_FIELD_VISIBILITIES:
            raise _BadRequest(400, f"visibility must be one of {', '.join(CUSTOM_FIELD_VISIBILITIES)}")
        if "_msname" in body:
            names = body["_msname"]
            if (not isinstance(names, dict) or not names
                    or not all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in names.items())):
                raise _BadRequest(400, '_msname must be a name per language, e.g. {"pt_BR": "Código da porta"}')
        if "internalName" in body:
            name = body["internalName"]
            if not isinstance(name, str) or not INTERNAL_NAME_PATTERN.match(name):
                raise _BadRequest(400, f"internalName {name!r} must match {INTERNAL_NAME_PATTERN.pattern}")
            for other in self._custom_fields.values():
                if (other["internalName"] == name and other["target"] == field["target"]
                        and other["_idfield"] != field["_idfield"]):
                    # 409 for a duplicate is an assumption: the reference does not say what Stays answers.
                    raise _BadRequest(409, f"a {field['target']} custom field named {name} already exists "
                                           f"(_idfield {other['_idfield']})")
        for key in ("type", "internalName", "_msname", "visibility"):
            if key in body:
                field[key] = copy.deepcopy(body[key])

    # --- /_sandbox: the operator's hands ----------------------------------------------------------

    def _admin_route(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
        where = ADMIN_PREFIX + path
        match segments:
            case ["reservations"]:
                _allow(method, where, "POST")
                return 201, self._admin_book(_json_object(body))
            case ["reservations", reserve_id]:
                _allow(method, where, "PATCH")
                return 200, self._admin_move(reserve_id, _json_object(body))
            case ["reservations", reserve_id, "cancel"]:
                _allow(method, where, "POST")
                with self._lock:
                    key = self._reservation_key(reserve_id)
                self.cancel_reservation(key)
                return 200, self._one_reservation(key)
            case ["webhook"]:
                if _allow(method, where, "GET", "PUT") == "PUT":
                    url = _json_object(body).get("url")
                    try:
                        self.set_webhook_url(url)
                    except ValueError as bad:
                        raise _BadRequest(400, str(bad)) from None
                return 200, {"url": self.webhook_url}
        raise _BadRequest(404, f"no such sandbox endpoint {where}")

    def _admin_book(self, body: dict) -> dict:
        allowed = {"listing", "checkInDate", "checkOutDate", "checkInTime", "checkOutTime", "guestName", "type"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise _BadRequest(400, f"unknown fields {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
        listing_ref = body.get("listing")
        if not isinstance(listing_ref, str) or not listing_ref.strip():
            raise _BadRequest(400, "listing is required: the listing's short code or _id")
        check_in, check_out = _body_date(body, "checkInDate"), _body_date(body, "checkOutDate")
        if check_out <= check_in:
            raise _BadRequest(400, f"checkOutDate {check_out} must be after checkInDate {check_in}")
        times = {name: _body_time(body, name) for name in ("checkInTime", "checkOutTime")}
        guest = body.get("guestName", "Sandbox Guest")
        if not isinstance(guest, str) or not guest.strip():
            raise _BadRequest(400, "guestName must be a non-empty string")
        stays_type = body.get("type", "booked")
        if stays_type not in KNOWN_TYPES:
            raise _BadRequest(400, f"type {stays_type!r} is not one of {', '.join(KNOWN_TYPES)}")
        with self._lock:
            listing = self._listing_by_id_or_code(listing_ref.strip())
            if listing is None or not isinstance(listing.get("_id"), str):
                raise _BadRequest(400, f"listing {listing_ref!r} is not a listing of this sandbox "
                                       "(give its short code or _id)")
            taken = {raw.get("id") for raw in self._reservations.values()}
            code = _new_code(taken)
            reservation_id = secrets.token_hex(12)  # random, so a restarted sandbox never reuses one
            record = reservation_record(
                reservation_id=reservation_id, code=code, listing_id=listing["_id"], check_in=check_in,
                check_out=check_out, check_in_time=times["checkInTime"], check_out_time=times["checkOutTime"],
                guest_name=guest.strip(), stays_type=stays_type, created=self._clock.now().date(),
                partner=("Direto", "DR"))
            self.put_reservation(record)
            return copy.deepcopy(record)

    def _admin_move(self, reserve_id: str, body: dict) -> dict:
        allowed = ("checkInDate", "checkOutDate", "checkInTime", "checkOutTime")
        unknown = sorted(set(body) - set(allowed))
        if unknown or not body:
            raise _BadRequest(400, f"send any of {', '.join(allowed)}"
                                   + (f" (not {', '.join(unknown)})" if unknown else ""))
        changes: dict[str, str] = {}
        for name in ("checkInDate", "checkOutDate"):
            if name in body:
                changes[name] = _body_date(body, name).isoformat()
        for name in ("checkInTime", "checkOutTime"):
            if name in body:
                value = _body_time(body, name)
                if value is None:
                    raise _BadRequest(400, f"{name} must be HH:mm")
                changes[name] = value
        with self._lock:
            key = self._reservation_key(reserve_id)
            current = self._reservations[key]
            check_in = changes.get("checkInDate", current.get("checkInDate"))
            check_out = changes.get("checkOutDate", current.get("checkOutDate"))
            if isinstance(check_in, str) and isinstance(check_out, str) and check_out <= check_in:
                raise _BadRequest(400, f"checkOutDate {check_out} must be after checkInDate {check_in}")
            return self.modify_reservation(key, **changes)

    def _page(self, rows: list[dict], query: dict[str, list[str]]) -> object:
        skip = _query_int(query, "skip", 0)
        limit = min(max(_query_int(query, "limit", MAX_LIMIT), 1), MAX_LIMIT)
        with self._lock:
            fault = self._page_fault
        if fault == "object":
            return {"data": rows[skip:skip + limit]}
        if fault == "oversized":
            return rows[skip:skip + limit + 1]
        if fault == "ignore_skip":
            return rows[:limit]
        return rows[skip:skip + limit]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that timed out and hung up is normal here, not worth a traceback."""


def _handler_for(sandbox: StaysSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind its load balancer
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stall

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            # The body goes by a thread-local so _serve keeps its (method, target, authorization)
            # signature, which tests override to break the feed in their own ways.
            sandbox._request_body.value = self.rfile.read(length) if length else b""
            try:
                status, headers, body = sandbox._serve(self.command, self.path, self.headers.get("Authorization"))
            finally:
                sandbox._request_body.value = b""
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def _json(status: int, payload: object, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body


def _allow(method: str, path: str, *methods: str) -> str:
    if method not in methods:
        raise _BadRequest(405, f"{method} {path} is not supported (use {' or '.join(methods)})")
    return method


def _json_object(body: bytes) -> dict:
    try:
        value = json.loads(body.decode("utf-8")) if body.strip() else None
    except (UnicodeDecodeError, ValueError):
        raise _BadRequest(400, "the body is not JSON") from None
    if not isinstance(value, dict):
        raise _BadRequest(400, "the body must be a JSON object")
    return value


def _field_target(query: dict[str, list[str]]) -> str:
    target = _single(query, "target")
    if not target:
        raise _BadRequest(400, "target is required (e.g. ?target=reservation)")
    if target not in CUSTOM_FIELD_TARGETS:
        raise _BadRequest(400, f"target must be one of {', '.join(CUSTOM_FIELD_TARGETS)}")
    return target


def _body_date(body: dict, name: str) -> date:
    value = body.get(name)
    if not isinstance(value, str):
        raise _BadRequest(400, f"{name} is required (YYYY-MM-DD)")
    try:
        if len(value) == 10:  # fromisoformat also takes 20260701, which Stays does not send
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise _BadRequest(400, f"{name}={value!r} is not a date (YYYY-MM-DD)")


def _body_time(body: dict, name: str) -> str | None:
    """An optional ``HH:mm``; absent or null means the listing's default time applies."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _TIME.match(value):
        raise _BadRequest(400, f"{name}={value!r} is not a time (HH:mm)")
    return value


def _new_code(taken: set[object]) -> str:
    while True:
        code = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(5))
        if code not in taken:
            return code


def _minimal(record: dict) -> dict:
    """What a cancel or delete webhook carries: just enough to re-fetch the reservation."""
    return {key: record.get(key) for key in ("id", "_id", "_idlisting")}


def _guest_name(record: dict) -> str | None:
    guests = (record.get("guestsDetails") or {}).get("list") if isinstance(record.get("guestsDetails"), dict) else None
    for guest in guests if isinstance(guests, list) else ():
        if isinstance(guest, dict) and guest.get("primary"):
            return guest.get("name")
    return None


def _iso_instant(instant: datetime) -> str:
    """A UTC instant the way Stays' Node.js service writes it: 2026-07-01T12:00:00.000Z."""
    return instant.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _single(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _query_date(query: dict[str, list[str]], name: str) -> date:
    value = _single(query, name)
    if not value:
        raise _BadRequest(400, f"{name} is required (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _BadRequest(400, f"{name}={value!r} is not a date (YYYY-MM-DD)") from None


def _query_int(query: dict[str, list[str]], name: str, default: int) -> int:
    value = _single(query, name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise _BadRequest(400, f"{name}={value!r} is not a whole number") from None
    if number < 0:
        raise _BadRequest(400, f"{name} must not be negative")
    return number


def _raw_date(value: object) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _passes(value: object, known: tuple[str, ...] | None, wanted: Callable[[str], bool]) -> bool:
    """A filter that cannot judge a record lets it through, so malformed data reaches the client."""
    if not isinstance(value, str) or (known is not None and value not in known):
        return True
    return wanted(value)


def _window_test(date_type: str, first: date, last: date) -> Callable[[dict], bool]:
    def test(raw: dict) -> bool:
        check_in, check_out = _raw_date(raw.get("checkInDate")), _raw_date(raw.get("checkOutDate"))
        if date_type == "included":
            if check_in is None or check_out is None:
                return True
            return check_in <= last and check_out >= first
        field = {"arrival": check_in, "departure": check_out}.get(date_type)
        if date_type in ("creation", "creationorig"):
            field = _raw_date(_text(raw.get("creationDate"))[:10])
        return field is None or first <= field <= last

    return test
