"""The production client for the Stays External API (Basic auth, skip/limit paging of 20).

It returns raw items and leaves parsing to :mod:`lock_pipeline.stays.records`, one record at
a time, so one bad record is quarantined instead of failing a whole page. Anything wrong with
the answer as a whole (an outage, a page that is not a JSON array, refused credentials) raises
:class:`StaysError`, and the caller treats that as "Stays said nothing": nothing changes.

Writes (a reservation's ``internalNote`` and app custom fields, creating a custom field) follow
the reference's "Writing to a reservation". An account whose API client may not write answers
403 or 404: that raises :class:`StaysWriteRefused`, one clear error a person can act on.
"""

from __future__ import annotations

import base64
import email.utils
import re
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Iterator, Mapping, Sequence
from urllib.parse import quote

import httpx

from lock_pipeline.stays.records import RESERVATION_TYPES

ALL_RESERVATION_TYPES = ("reserved", "booked", "contract", "blocked", "maintenance", "canceled")
DATE_TYPES = ("arrival", "departure", "creation", "creationorig", "included")

MAX_PAGE_SIZE = 20
RETRY_AFTER_CAP_SECONDS = 60.0
# A server that ignores `skip` answers full pages forever; stop long before that hurts.
MAX_PAGES = 100_000  # 2 million rows: far above any account, still stops a server that never ends
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CUSTOM_FIELD_TYPES = ("text", "integer", "number", "link")
CUSTOM_FIELD_VISIBILITIES = ("public", "hidden")
INTERNAL_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]+$")
_BODY_EXCERPT_CHARS = 200


class StaysError(Exception):
    """Stays could not be read; the message names the endpoint, never a credential."""

    def __init__(self, message: str, *, path: str | None = None, status: int | None = None,
                 attempts: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.status = status
        self.attempts = attempts


class StaysNotFound(StaysError):
    """The single reservation or listing asked for does not exist (HTTP 404)."""


class StaysWriteRefused(StaysError):
    """Stays refused a write with 403 or 404: this account's API client may not write.

    ``status`` says which. Not retried; it needs a person (grant write in Stays > App Center >
    API, or switch write-back off), so callers raise one alert, not one per reservation.
    """


@dataclass
class StaysStats:
    requests: int = 0
    pages: int = 0
    retries: int = 0


class _Retryable(Exception):
    def __init__(self, detail: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.retry_after = retry_after


class StaysClient:
    def __init__(self, base_url: str, client_id: str, client_secret: str, *, timeout: float = 15.0,
                 max_attempts: int = 3, backoff_seconds: float = 0.5, concurrency: int = 4,
                 page_size: int = 20) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive: every call needs a bound")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = max(0.0, backoff_seconds)
        self.concurrency = max(1, concurrency)
        self.page_size = min(max(1, page_size), MAX_PAGE_SIZE)
        self.stats = StaysStats()
        self._stats_lock = threading.Lock()
        token = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        self._never_show = tuple(s for s in (client_secret, token) if s)
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            auth=httpx.BasicAuth(client_id, client_secret),
            timeout=httpx.Timeout(timeout),
            headers={"Accept": "application/json"},
            limits=httpx.Limits(max_connections=self.concurrency + 1, max_keepalive_connections=self.concurrency),
            follow_redirects=False,
        )
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="stays-page")

    def __repr__(self) -> str:
        return f"StaysClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    def __enter__(self) -> StaysClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    def list_listings(self, status: str | None = None) -> list[object]:
        params: list[tuple[str, str]] = [("status", status)] if status else []
        return self._all_pages("content/listings", params)

    def list_reservations(self, from_date: date, to_date: date, *, date_type: str = "arrival",
                          types: Sequence[str] = ALL_RESERVATION_TYPES,
                          listing_ids: Sequence[str] = ()) -> list[object]:
        """Every record of the window at once (small windows; the sync streams pages instead)."""
        return [item for page in self.iter_reservation_pages(from_date, to_date, date_type=date_type, types=types,
                                                             listing_ids=listing_ids) for item in page]

    def iter_reservation_pages(self, from_date: date, to_date: date, *, date_type: str = "arrival",
                               types: Sequence[str] = ALL_RESERVATION_TYPES,
                               listing_ids: Sequence[str] = ()) -> Iterator[list[object]]:
        """Every page of the window, in order; ask for ``canceled`` explicitly or cancellations are invisible.

        Arguments are checked before the first request (a generator would defer the error).
        """
        if date_type not in DATE_TYPES:
            raise ValueError(f"date_type {date_type!r} is not one of {', '.join(DATE_TYPES)}")
        if to_date < from_date:
            raise ValueError(f"to_date {to_date} is before from_date {from_date}")
        unknown = [t for t in types if t not in RESERVATION_TYPES]
        if unknown:
            raise ValueError(f"unknown reservation types {unknown}: use {', '.join(RESERVATION_TYPES)}")
        params = [("from", from_date.isoformat()), ("to", to_date.isoformat()), ("dateType", date_type)]
        params += [("type", t) for t in types]
        params += [("listingId", listing_id) for listing_id in listing_ids]
        return self._pages("booking/reservations", params)

    def get_reservation(self, id_or_code: str) -> object:
        if not id_or_code or not id_or_code.strip():
            raise ValueError("a reservation _id or short code is required")
        return self._get_json(f"booking/reservations/{quote(id_or_code.strip(), safe='')}", [])

    def get_listing(self, id_or_code: str) -> object:
        """One listing by its ``_id`` or short id; :class:`StaysNotFound` when there is none."""
        if not id_or_code or not id_or_code.strip():
            raise ValueError("a listing _id or short id is required")
        return self._get_json(f"content/listings/{quote(id_or_code.strip(), safe='')}", [])

    # --- writing ------------------------------------------------------------------------------

    def list_custom_fields(self, target: str = "reservation") -> list[dict]:
        """The app's custom fields for ``target`` (each with ``_idfield``, ``type``, ``internalName``,
        ``_msname``, ``visibility``)."""
        if not target or not target.strip():
            raise ValueError("a custom field target (e.g. 'reservation') is required")
        path = "settings/app/custom-fields"
        body = self._get_json(path, [("target", target.strip())])
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise StaysError(f"GET /{path}: answer is not a JSON array of objects", path=f"/{path}")
        return body

    def create_custom_field(self, *, internal_name: str, name: str, field_type: str = "text",
                            visibility: str = "hidden", target: str = "reservation") -> dict:
        """Create an app custom field; ``name`` is what people see (sent as ``_msname.pt_BR``).

        Not idempotent, so retried only when the request provably never reached Stays (the
        connection could not be made). After a timeout or a 5xx it may have been created: the
        error says so, and the caller should list the fields before trying again. A field of that
        name that already exists is a :class:`StaysError` with ``status`` 409 (the sandbox's answer;
        what the real Stays answers is not documented).
        """
        if not isinstance(internal_name, str) or not INTERNAL_NAME_PATTERN.match(internal_name):
            raise ValueError(f"internal_name {internal_name!r} must match {INTERNAL_NAME_PATTERN.pattern}")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("name (what people see) must be a non-empty string")
        if field_type not in CUSTOM_FIELD_TYPES:
            raise ValueError(f"field_type {field_type!r} is not one of {', '.join(CUSTOM_FIELD_TYPES)}")
        if visibility not in CUSTOM_FIELD_VISIBILITIES:
            raise ValueError(f"visibility {visibility!r} is not one of {', '.join(CUSTOM_FIELD_VISIBILITIES)}")
        if not target or not target.strip():
            raise ValueError("a custom field target (e.g. 'reservation') is required")
        path = "settings/app/custom-fields"
        body = {"type": field_type, "internalName": internal_name, "_msname": {"pt_BR": name.strip()},
                "visibility": visibility}
        field = self._call("POST", path, [("target", target.strip())], where=f"POST /{path}", json_body=body,
                           idempotent=False)
        if not isinstance(field, dict):
            raise StaysError(f"POST /{path}: answer is not the created field (a JSON object)", path=f"/{path}")
        return field

    def update_reservation(self, reservation_id: str, *, stays_type: str,
                           custom_fields: Mapping[str, str] | None = None,
                           internal_note: str | None = None) -> object:
        """PATCH a reservation's app custom fields (``_idfield`` -> value; "" clears one) and/or its
        internal note. Returns the updated reservation as Stays answers it.

        ``stays_type`` is always sent: Stays chooses the body by it, and a reservation sent with
        another type than its own CHANGES type, so pass the type just read from Stays. The same
        body gives the same result, so it is retried like a GET. A reservation that does not exist
        is :class:`StaysNotFound`; a refused write is :class:`StaysWriteRefused`.

        ``reservation_id`` is best the ``_id`` (the short code and partner code also work): a 404
        is checked with a GET, and GET is documented for ``_id`` and short code only.
        """
        if not isinstance(reservation_id, str) or not reservation_id.strip():
            raise ValueError("a reservation _id, short code or partner code is required")
        if stays_type not in RESERVATION_TYPES:
            raise ValueError(f"stays_type {stays_type!r} is not one of {', '.join(RESERVATION_TYPES)}; send the "
                             "reservation's current type or Stays changes it")
        body: dict[str, object] = {"type": stays_type}
        if custom_fields:
            for field_id, value in custom_fields.items():
                if not isinstance(field_id, str) or not field_id.strip():
                    raise ValueError("custom field ids (_idfield) must be non-empty strings")
                if not isinstance(value, str):
                    raise ValueError(f"the value of custom field {field_id} must be a string ('' clears it)")
            body["appCustomFields"] = [{"_idfield": field_id, "val": value} for field_id, value in custom_fields.items()]
        if internal_note is not None:
            if not isinstance(internal_note, str):
                raise ValueError("internal_note must be a string")
            body["internalNote"] = internal_note
        if len(body) == 1:
            raise ValueError("nothing to write: give custom_fields and/or internal_note")
        path = f"booking/reservations/{quote(reservation_id.strip(), safe='')}"
        try:
            return self._call("PATCH", path, [], where=f"PATCH /{path}", json_body=body)
        except StaysWriteRefused as refused:
            if refused.status != 404:
                raise
            # 404 is both "no such reservation" and (one public client saw it) "may not write":
            # a GET tells them apart. Any other error of that GET propagates (nothing is known then).
            try:
                self.get_reservation(reservation_id)
            except StaysNotFound:
                raise StaysNotFound(f"PATCH /{path}: HTTP 404, no such reservation (a GET agrees)", path=f"/{path}",
                                    status=404, attempts=refused.attempts) from None
            raise

    def _all_pages(self, path: str, params: list[tuple[str, str]]) -> list[object]:
        return [item for page in self._pages(path, params) for item in page]

    def _pages(self, path: str, params: list[tuple[str, str]]) -> Iterator[list[object]]:
        """Pages in order, ``concurrency`` requests in flight, up to the first short page.

        A window slides: as soon as the oldest page is in, the next one is asked for, so the
        caller's work on a page overlaps the network wait for the following ones.
        """
        in_flight: deque[tuple[int, Future[object]]] = deque()
        next_skip = 0
        limit = MAX_PAGES * self.page_size

        def ask_next() -> None:
            nonlocal next_skip
            if next_skip < limit:
                in_flight.append((next_skip, self._pool.submit(self._get_json, path, params, next_skip)))
                next_skip += self.page_size

        for _ in range(self.concurrency):
            ask_next()
        previous: list[object] | None = None
        try:
            while in_flight:
                page_skip, future = in_flight.popleft()
                page = self._checked_page(path, page_skip, future.result())
                self._count(pages=1)
                if page and len(page) == self.page_size and page == previous:
                    raise StaysError(f"GET /{path} skip={page_skip}: the same page came back twice; "
                                     "the server is ignoring skip", path=f"/{path}")
                if len(page) < self.page_size:
                    yield page
                    return
                previous = page
                ask_next()
                yield page
            raise StaysError(f"GET /{path}: more than {MAX_PAGES} full pages; refusing to read on", path=f"/{path}")
        finally:
            for _, pending in in_flight:
                pending.cancel()

    def _checked_page(self, path: str, skip: int, body: object) -> list[object]:
        if not isinstance(body, list):
            raise StaysError(f"GET /{path} skip={skip}: answer is a JSON {type(body).__name__}, not an array",
                             path=f"/{path}")
        if len(body) > self.page_size:
            raise StaysError(f"GET /{path} skip={skip}: {len(body)} rows for limit={self.page_size}",
                             path=f"/{path}")
        return body

    def _get_json(self, path: str, params: list[tuple[str, str]], skip: int | None = None) -> object:
        """One GET with a timeout, retried on timeouts, connection errors, 5xx and 429."""
        if skip is not None:
            params = [*params, ("skip", str(skip)), ("limit", str(self.page_size))]
        where = f"GET /{path}" + (f" skip={skip}" if skip is not None else "")
        return self._call("GET", path, params, where=where)

    def _call(self, method: str, path: str, params: list[tuple[str, str]], *, where: str,
              json_body: object = None, idempotent: bool = True) -> object:
        """One request with a timeout and bounded retries.

        An idempotent request (GET, and a PATCH that sets values) is retried on timeouts,
        connection errors, 5xx and 429. A request that is not (a POST that creates) is retried
        only when it provably never reached Stays: the connection could not be made.
        """
        last: _Retryable | None = None
        for attempt in range(1, self.max_attempts + 1):
            if last is not None:
                self._count(retries=1)
                time.sleep(self._delay(attempt - 1, last.retry_after))
            self._count(requests=1)
            try:
                response = self._http.request(method, path, params=params, json=json_body)
                return self._answer(where, path, response, attempt, method=method)
            except _Retryable as retryable:
                last = retryable
                if not idempotent:
                    raise self._maybe_done(where, path, retryable.detail, retryable.status, attempt) from None
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
                # Never sent: safe to retry whatever the method.
                last = _Retryable(f"connection failed ({type(error).__name__}: {self._redact(str(error))})")
            except httpx.TimeoutException:
                last = _Retryable(f"timed out after {self.timeout:g} s")
                if not idempotent:
                    raise self._maybe_done(where, path, last.detail, None, attempt) from None
            except httpx.TransportError as error:
                last = _Retryable(f"connection failed ({type(error).__name__}: {self._redact(str(error))})")
                if not idempotent:
                    raise self._maybe_done(where, path, last.detail, None, attempt) from None
        assert last is not None
        raise StaysError(f"{where}: gave up after {self.max_attempts} attempt(s): {last.detail}",
                         path=f"/{path}", status=last.status, attempts=self.max_attempts)

    @staticmethod
    def _maybe_done(where: str, path: str, detail: str, status: int | None, attempt: int) -> StaysError:
        return StaysError(f"{where}: {detail}; not retried, because the request may have reached Stays and "
                          "taken effect: check (list) before trying again", path=f"/{path}", status=status,
                          attempts=attempt)

    def _answer(self, where: str, path: str, response: httpx.Response, attempt: int, *,
                method: str = "GET") -> object:
        status = response.status_code
        if status in _RETRY_STATUSES:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After")) if status in (429, 503) else None
            raise _Retryable(f"HTTP {status}", status, retry_after)
        if status == 401:
            raise StaysError(f"{where}: HTTP 401, Stays refused the API credentials; check STAYS_CLIENT_ID "
                             "and STAYS_CLIENT_SECRET", path=f"/{path}", status=status, attempts=attempt)
        if method != "GET" and status in (403, 404):
            raise StaysWriteRefused(
                f"{where}: HTTP {status}, Stays refused the write: this account's API client may not write. "
                "Grant it write access in Stays > App Center > API, or switch write-back off",
                path=f"/{path}", status=status, attempts=attempt)
        if status == 403:
            raise StaysError(f"{where}: HTTP 403, the API client may not read this endpoint; grant it in "
                             "Stays > App Center > API", path=f"/{path}", status=status, attempts=attempt)
        if status == 404 and path.startswith(("booking/reservations/", "content/listings/")):
            what = "reservation" if path.startswith("booking/") else "listing"
            raise StaysNotFound(f"{where}: HTTP 404, no such {what}", path=f"/{path}", status=status,
                                attempts=attempt)
        if not 200 <= status < 300:
            raise StaysError(f"{where}: HTTP {status}: {self._excerpt(response.text)}", path=f"/{path}",
                             status=status, attempts=attempt)
        if method != "GET" and not response.content.strip():
            return None  # a write that answers without a body (e.g. 204) still succeeded
        try:
            return response.json()
        except ValueError:
            content_type = response.headers.get("Content-Type", "no content type")
            raise StaysError(f"{where}: answer is not JSON ({content_type}): {self._excerpt(response.text)}",
                             path=f"/{path}", status=status, attempts=attempt) from None

    def _delay(self, retry_number: int, retry_after: float | None) -> float:
        backoff = self.backoff_seconds * 2 ** (retry_number - 1)
        if retry_after is None:
            return backoff
        return max(backoff, min(retry_after, RETRY_AFTER_CAP_SECONDS))

    def _count(self, *, requests: int = 0, pages: int = 0, retries: int = 0) -> None:
        with self._stats_lock:
            self.stats.requests += requests
            self.stats.pages += pages
            self.stats.retries += retries

    def _excerpt(self, text: str) -> str:
        flat = " ".join(self._redact(text).split())
        return flat if len(flat) <= _BODY_EXCERPT_CHARS else flat[:_BODY_EXCERPT_CHARS] + "..."

    def _redact(self, text: str) -> str:
        for secret in self._never_show:
            text = text.replace(secret, "***")
        return text


def _retry_after_seconds(value: str | None) -> float | None:
    """Seconds or an HTTP date; anything unreadable falls back to our own backoff."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())
