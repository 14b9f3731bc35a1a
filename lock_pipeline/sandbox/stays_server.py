"""A Stays External API on loopback: the embedded default, and what the tests talk to.

It speaks the wire shape the production client expects from the real API (Basic auth, bare
JSON arrays, skip/limit paging with a maximum of 20, no cancellations unless asked for) and
stores raw dicts as given, so a test can inject a malformed record and see it reach the
client. Faults (outage, 5xx bursts with Retry-After, slow pages, HTML answers, empty feeds,
broken paging) are switched on at run time by tests and by the demo.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import itertools
import json
import threading
from collections import deque
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from lock_pipeline.clock import clock_from_environment
from lock_pipeline.sandbox.seed import Seed, build_seed

PREFIX = "/external/v1"
MAX_LIMIT = 20
DEFAULT_TYPES = ("reserved", "booked", "contract", "new")
KNOWN_TYPES = DEFAULT_TYPES + ("blocked", "maintenance", "canceled")
DATE_TYPES = ("arrival", "departure", "creation", "creationorig", "included")

PageFault = Literal["object", "oversized", "ignore_skip"]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_QUERY_CACHE_SIZE = 64


class StaysSandbox:
    def __init__(self, seed: Seed | None = None, *, client_id: str = "sandbox-client",
                 client_secret: str = "sandbox-secret", host: str = "127.0.0.1", port: int = 0,
                 page_latency: float = 0.0) -> None:
        if seed is None:
            seed = build_seed(clock_from_environment().now())
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
        self._generated_keys = itertools.count(1)
        self._latency = page_latency
        self._outage = False
        self._empty_feed = False
        self._html_errors = False
        self._page_fault: PageFault | None = None
        self._failures: deque[tuple[int, float | None]] = deque()
        self._request_count = 0
        self._request_log: list[tuple[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for listing in seed.listings:
            self.put_listing(listing)
        for reservation in seed.reservations:
            self.put_reservation(reservation)

    def __repr__(self) -> str:
        where = self.base_url if self._server else "stopped"
        return f"StaysSandbox({where}, client_id={self.client_id!r})"

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> StaysSandbox:
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

    # --- data ---------------------------------------------------------------------------------

    def put_listing(self, raw: dict) -> None:
        with self._lock:
            self._listings[self._key(raw)] = copy.deepcopy(raw)
            self._query_cache.clear()

    def put_reservation(self, raw: dict) -> None:
        with self._lock:
            self._reservations[self._key(raw)] = copy.deepcopy(raw)
            self._query_cache.clear()

    def modify_reservation(self, reservation_id: str, **fields: Any) -> dict:
        with self._lock:
            record = self._existing(reservation_id)
            record.update(copy.deepcopy(fields))
            self._query_cache.clear()
            return copy.deepcopy(record)

    def cancel_reservation(self, reservation_id: str) -> None:
        self.modify_reservation(reservation_id, type="canceled")

    def delete_reservation(self, reservation_id: str) -> None:
        with self._lock:
            self._existing(reservation_id)
            del self._reservations[reservation_id]
            self._query_cache.clear()

    def reservations(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(list(self._reservations.values()))

    def listings(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(list(self._listings.values()))

    def _key(self, raw: dict) -> str:
        key = raw.get("_id")
        return key if isinstance(key, str) and key else f"missing-id-{next(self._generated_keys)}"

    def _existing(self, reservation_id: str) -> dict:
        try:
            return self._reservations[reservation_id]
        except KeyError:
            raise KeyError(f"no reservation with _id {reservation_id!r} in the Stays sandbox") from None

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

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._request_count

    @property
    def request_log(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._request_log)

    # --- serving ------------------------------------------------------------------------------

    def _serve(self, method: str, target: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        """One request -> (status, headers, body); runs on the server's handler threads."""
        with self._lock:
            self._request_count += 1
            self._request_log.append((method, target))
            latency = self._latency
        if latency:
            self._stopping.wait(latency)
        with self._lock:
            outage, html = self._outage, self._html_errors
            failure = self._failures.popleft() if self._failures and not outage else None
        if outage:
            return _json(503, {"message": "Service temporarily unavailable (sandbox outage)"})
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return _json(status, {"message": f"injected failure {status}"}, headers)
        if not self._authorized(authorization):
            return _json(401, {"message": "Unauthorized: invalid client id or secret"},
                         {"WWW-Authenticate": 'Basic realm="Stays External API"'})
        if html:
            page = b"<!DOCTYPE html><html><body><h1>Estamos em manuten\xc3\xa7\xc3\xa3o</h1></body></html>"
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page
        if method != "GET":
            return _json(405, {"message": f"{method} is not supported by the sandbox"})
        try:
            return _json(200, self._route(target))
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

    def _route(self, target: str) -> object:
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        path = parts.path.rstrip("/")
        if not path.startswith(PREFIX + "/"):
            raise _BadRequest(404, f"no such endpoint {parts.path}")
        path = path[len(PREFIX):]
        if path == "/booking/reservations":
            with self._lock:  # only the page is copied (records are modified in place, so under the lock)
                return copy.deepcopy(self._page(self._find_reservations(query), query))
        if path.startswith("/booking/reservations/") and path.count("/") == 3:
            return self._one_reservation(unquote(path.rsplit("/", 1)[1]))
        if path == "/content/listings":
            return self._page(self._find_listings(query), query)
        raise _BadRequest(404, f"no such endpoint {parts.path}")

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
            if length:
                self.rfile.read(length)
            status, headers, body = sandbox._serve(self.command, self.path, self.headers.get("Authorization"))
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
