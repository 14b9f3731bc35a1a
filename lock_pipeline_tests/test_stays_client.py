"""The production Stays client against the sandbox Stays server on loopback (no mocks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lock_pipeline.sandbox.seed import Seed, build_seed, hex_id, listing_record, reservation_record
from lock_pipeline.sandbox.stays_server import StaysSandbox
from lock_pipeline.stays import client as client_module
from lock_pipeline.stays.client import ALL_RESERVATION_TYPES, StaysClient, StaysError, StaysNotFound
from lock_pipeline.stays.records import InvalidRecord, parse_listing, parse_reservation

pytestmark = pytest.mark.integration  # sandbox servers on loopback

SECRET = "s3cr3t-do-not-print"
START = date(2026, 7, 1)
LISTINGS = [listing_record(i, f"Apto {i}", f"Title {i}", "Rua A", str(i), "", "Rio de Janeiro") for i in range(3)]


def stays(count: int, *, listing: dict = LISTINGS[0], start: date = START, first: int = 0) -> list[dict]:
    """``count`` back-to-back two-night stays; every 10th canceled, every 7th a block."""
    result = []
    for n in range(first, first + count):
        stays_type = "canceled" if n % 10 == 3 else "blocked" if n % 7 == 5 else "booked"
        check_in = start + timedelta(days=n)  # overlapping across listings is fine for the feed
        result.append(reservation_record(
            reservation_id=hex_id("r", listing["_id"], n), code=f"C{n:04d}", listing_id=listing["_id"],
            check_in=check_in, check_out=check_in + timedelta(days=2), stays_type=stays_type,
            created=START - timedelta(days=30) + timedelta(days=n % 5),
        ))
    return result


def sandbox_with(reservations: list[dict], **kwargs: object) -> StaysSandbox:
    return StaysSandbox(Seed(listings=list(LISTINGS), reservations=reservations), client_secret=SECRET,
                        **kwargs).start()  # type: ignore[arg-type]


def client_for(sandbox: StaysSandbox, **kwargs: object) -> StaysClient:
    options: dict = {"timeout": 2.0, "max_attempts": 3, "backoff_seconds": 0.01, **kwargs}
    return StaysClient(sandbox.base_url, "sandbox-client", SECRET, **options)


@pytest.fixture
def sandbox() -> Iterator[StaysSandbox]:
    server = sandbox_with(stays(95))
    yield server
    server.stop()


@pytest.fixture
def client(sandbox: StaysSandbox) -> Iterator[StaysClient]:
    with client_for(sandbox) as stays_client:
        yield stays_client


def queries(sandbox: StaysSandbox, path_end: str) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(target).query) for _, target in sandbox.request_log
            if urlsplit(target).path.endswith(path_end)]


# --- paging -----------------------------------------------------------------------------------

def test_pages_past_twenty_without_losing_or_doubling(sandbox: StaysSandbox, client: StaysClient) -> None:
    items = client.list_reservations(START, START + timedelta(days=200))

    ids = [item["_id"] for item in items]  # type: ignore[index]
    assert len(ids) == 95 and len(set(ids)) == 95
    assert set(ids) == {r["_id"] for r in sandbox.reservations()}
    check_ins = [item["checkInDate"] for item in items]  # type: ignore[index]
    assert check_ins == sorted(check_ins)
    skips = sorted(int(q["skip"][0]) for q in queries(sandbox, "/booking/reservations"))
    assert skips[:5] == [0, 20, 40, 60, 80]
    assert all(q["limit"] == ["20"] for q in queries(sandbox, "/booking/reservations"))
    assert client.stats.pages == 5


def test_exact_multiple_of_the_page_size_ends_on_an_empty_page() -> None:
    with sandbox_with(stays(40)) as server, client_for(server, concurrency=1) as stays_client:
        items = stays_client.list_reservations(START, START + timedelta(days=200))
        assert len(items) == 40
        assert stays_client.stats.pages == 3
        assert server.request_count == 3


def test_asks_for_cancellations_and_blocks(sandbox: StaysSandbox, client: StaysClient) -> None:
    items = client.list_reservations(START, START + timedelta(days=200))

    assert {item["type"] for item in items} == {"booked", "canceled", "blocked"}  # type: ignore[index]
    for query in queries(sandbox, "/booking/reservations"):
        assert sorted(query["type"]) == sorted(ALL_RESERVATION_TYPES)
        assert query["dateType"] == ["arrival"]


def test_without_type_the_feed_hides_cancellations(sandbox: StaysSandbox, client: StaysClient) -> None:
    booked_only = client.list_reservations(START, START + timedelta(days=200), types=())
    assert {item["type"] for item in booked_only} == {"booked"}  # type: ignore[index]
    assert "type=" not in sandbox.request_log[-1][1]


def test_page_size_is_clamped_to_twenty(sandbox: StaysSandbox) -> None:
    with client_for(sandbox, page_size=100) as stays_client:
        assert stays_client.page_size == 20
        assert len(stays_client.list_reservations(START, START + timedelta(days=200))) == 95
    assert {q["limit"][0] for q in queries(sandbox, "/booking/reservations")} == {"20"}


def test_smaller_page_size_still_reads_everything(sandbox: StaysSandbox) -> None:
    with client_for(sandbox, page_size=7, concurrency=3) as stays_client:
        assert len(stays_client.list_reservations(START, START + timedelta(days=200))) == 95
        assert stays_client.stats.pages == 14  # 13 full pages of 7, then 4 rows


def test_listings_every_page_and_status_filter() -> None:
    many = [listing_record(i, f"Apto {i}", "T", "Rua B", str(i), "", "Salvador") for i in range(45)]
    many[3]["status"] = "inactive"
    with StaysSandbox(Seed(listings=many), client_secret=SECRET).start() as server, \
            client_for(server) as stays_client:
        listings = stays_client.list_listings()
        assert [item["_id"] for item in listings] == [raw["_id"] for raw in many]  # type: ignore[index]
        inactive = stays_client.list_listings("inactive")
        assert [item["_id"] for item in inactive] == [many[3]["_id"]]  # type: ignore[index]
        # (not just the last logged request: a stray page of the first call may still arrive after it)
        assert any("status=inactive" in target for _method, target in server.request_log)


def test_concurrent_pages_overlap() -> None:
    """Pages are asked for in waves: the server sees several requests in flight at once (counted by the
    server, not timed, so a busy machine cannot make this fail)."""
    with sandbox_with(stays(150), page_latency=0.2) as server, client_for(server, concurrency=4) as stays_client:
        in_flight, most = 0, 0
        lock = threading.Lock()
        serve = server._serve

        def counting(*args):
            nonlocal in_flight, most
            with lock:
                in_flight += 1
                most = max(most, in_flight)
            try:
                return serve(*args)
            finally:
                with lock:
                    in_flight -= 1

        server._serve = counting
        items = stays_client.list_reservations(START, START + timedelta(days=400))

    assert len(items) == 150
    assert stays_client.stats.pages == 8
    # Sequential paging would never have two requests in flight; waves of four do.
    assert 2 <= most <= 4


def test_listing_and_date_filters(sandbox: StaysSandbox, client: StaysClient) -> None:
    window = (START + timedelta(days=10), START + timedelta(days=19))

    arrivals = client.list_reservations(*window)
    assert {item["checkInDate"] for item in arrivals} == {  # type: ignore[index]
        (window[0] + timedelta(days=n)).isoformat() for n in range(10)}
    assert len(arrivals) == 10

    departures = client.list_reservations(*window, date_type="departure")
    assert {item["id"] for item in departures} == {f"C{n:04d}" for n in range(8, 18)}  # type: ignore[index]

    included = client.list_reservations(*window, date_type="included")
    assert {item["id"] for item in included} == {f"C{n:04d}" for n in range(8, 20)}  # type: ignore[index]

    created = client.list_reservations(START - timedelta(days=30), START - timedelta(days=30),
                                       date_type="creation")
    assert {item["id"] for item in created} == {f"C{n:04d}" for n in range(0, 95, 5)}  # type: ignore[index]

    other = stays(5, listing=LISTINGS[1], start=START - timedelta(days=100), first=100)
    for raw in other:
        sandbox.put_reservation(raw)

    only_second = client.list_reservations(START, START + timedelta(days=200), listing_ids=[LISTINGS[1]["_id"]])
    assert [item["_id"] for item in only_second] == [raw["_id"] for raw in other]  # type: ignore[index]
    # (not just the last logged request: a stray page of an earlier call may still arrive after it)
    assert any(f"listingId={LISTINGS[1]['_id']}" in target for _method, target in sandbox.request_log)

    both = client.list_reservations(START, START + timedelta(days=4),
                                    listing_ids=[LISTINGS[0]["_id"], LISTINGS[1]["_id"]])
    assert len(both) == 10


def test_bad_arguments_fail_before_any_request(sandbox: StaysSandbox, client: StaysClient) -> None:
    with pytest.raises(ValueError, match="date_type"):
        client.list_reservations(START, START, date_type="checkin")
    with pytest.raises(ValueError, match="before"):
        client.list_reservations(START, START - timedelta(days=1))
    with pytest.raises(ValueError, match="cancelled"):
        client.list_reservations(START, START, types=["cancelled"])
    assert sandbox.request_count == 0


# --- one reservation --------------------------------------------------------------------------

def test_get_reservation_by_id_or_short_code(sandbox: StaysSandbox, client: StaysClient) -> None:
    raw = sandbox.reservations()[12]
    assert client.get_reservation(raw["_id"]) == raw
    assert client.get_reservation(raw["id"]) == raw


def test_missing_reservation_is_not_found_without_retry(sandbox: StaysSandbox, client: StaysClient) -> None:
    with pytest.raises(StaysNotFound, match="404") as caught:
        client.get_reservation("NOPE1")
    assert "/booking/reservations/NOPE1" in str(caught.value)
    assert sandbox.request_count == 1


def test_changes_in_the_sandbox_show_in_the_feed(sandbox: StaysSandbox, client: StaysClient) -> None:
    first, second, third = (r["_id"] for r in sandbox.reservations()[:3])
    sandbox.modify_reservation(first, checkInDate="2026-12-01", checkOutDate="2026-12-05")
    sandbox.cancel_reservation(second)
    sandbox.delete_reservation(third)

    assert client.get_reservation(first)["checkInDate"] == "2026-12-01"  # type: ignore[index]
    assert client.get_reservation(second)["type"] == "canceled"  # type: ignore[index]
    with pytest.raises(StaysNotFound):
        client.get_reservation(third)
    with pytest.raises(KeyError, match="no reservation"):
        sandbox.cancel_reservation(third)


# --- auth and secrets -------------------------------------------------------------------------

def test_refused_credentials_say_what_to_check_and_never_retry(sandbox: StaysSandbox) -> None:
    wrong = "wrong-" + SECRET
    with StaysClient(sandbox.base_url, "sandbox-client", wrong, backoff_seconds=0.01) as stays_client:
        with pytest.raises(StaysError) as caught:
            stays_client.list_listings()
    message = str(caught.value)
    assert "401" in message and "STAYS_CLIENT_ID" in message and "STAYS_CLIENT_SECRET" in message
    assert "/content/listings" in message
    assert wrong not in message and "Basic" not in message
    assert caught.value.status == 401
    assert stays_client.stats.retries == 0
    assert 1 <= sandbox.request_count <= stays_client.concurrency  # no retry; pages not yet sent are cancelled


def test_missing_auth_header_is_refused(sandbox: StaysSandbox) -> None:
    response = httpx.get(f"{sandbox.base_url}/content/listings", timeout=2)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert "message" in response.json()


def test_secret_never_in_repr_or_errors(sandbox: StaysSandbox) -> None:
    sandbox.set_outage(True)
    with client_for(sandbox, max_attempts=2) as stays_client:
        assert SECRET not in repr(stays_client)
        with pytest.raises(StaysError) as caught:
            stays_client.list_listings()
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    assert SECRET not in repr(sandbox)


# --- retries ----------------------------------------------------------------------------------

def test_retries_503_then_succeeds(sandbox: StaysSandbox) -> None:
    sandbox.fail_next(2, 503)
    with client_for(sandbox, concurrency=1) as stays_client:
        assert len(stays_client.list_listings()) == 3
        assert stays_client.stats.retries == 2
        assert stays_client.stats.requests == 3
    assert sandbox.request_count == 3


@pytest.mark.parametrize("status", [500, 502, 504, 429])
def test_retries_other_transient_statuses(sandbox: StaysSandbox, status: int) -> None:
    sandbox.fail_next(1, status)
    with client_for(sandbox, concurrency=1) as stays_client:
        assert stays_client.get_reservation(sandbox.reservations()[0]["id"])
        assert stays_client.stats.retries == 1


def test_gives_up_after_max_attempts(sandbox: StaysSandbox) -> None:
    sandbox.fail_next(10, 503)
    with client_for(sandbox, concurrency=1, max_attempts=3) as stays_client:
        with pytest.raises(StaysError) as caught:
            stays_client.list_reservations(START, START + timedelta(days=10))
    message = str(caught.value)
    assert "/booking/reservations" in message and "skip=0" in message
    assert "503" in message and "3 attempt" in message
    assert caught.value.attempts == 3
    assert sandbox.request_count == 3


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the client asks for between attempts (what the tests below are about, without timing them)."""
    asked: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", asked.append)
    return asked


def test_backoff_grows_exponentially(sandbox: StaysSandbox, sleeps: list[float]) -> None:
    sandbox.fail_next(3, 503)
    with client_for(sandbox, concurrency=1, max_attempts=4, backoff_seconds=0.1) as stays_client:
        stays_client.list_listings()
    assert [round(s, 3) for s in sleeps] == [0.1, 0.2, 0.4]


def test_honours_retry_after(sandbox: StaysSandbox, sleeps: list[float]) -> None:
    sandbox.fail_next(1, 429, retry_after=0.5)
    with client_for(sandbox, concurrency=1) as stays_client:
        stays_client.list_listings()
    assert sleeps and sleeps[0] >= 0.5


def test_caps_an_absurd_retry_after(sandbox: StaysSandbox, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    monkeypatch.setattr(client_module, "RETRY_AFTER_CAP_SECONDS", 0.2)
    sandbox.fail_next(1, 503, retry_after=3600)
    with client_for(sandbox, concurrency=1) as stays_client:
        stays_client.list_listings()
    assert sleeps and max(sleeps) <= 0.2


@pytest.mark.parametrize("status", [400, 404, 422])
def test_no_retry_on_other_client_errors(sandbox: StaysSandbox, status: int) -> None:
    sandbox.fail_next(1, status)
    with client_for(sandbox, concurrency=1) as stays_client:
        with pytest.raises(StaysError, match=str(status)) as caught:
            stays_client.list_listings()
    assert not isinstance(caught.value, StaysNotFound)
    assert sandbox.request_count == 1


def test_timeout_is_retried_then_reported() -> None:
    with sandbox_with(stays(3)) as server:
        server.set_latency(30)  # a server that would keep each call waiting 30 s
        with client_for(server, concurrency=1, timeout=0.15, max_attempts=2) as stays_client:
            started = time.perf_counter()
            with pytest.raises(StaysError, match="timed out") as caught:
                stays_client.list_listings()
            elapsed = time.perf_counter() - started
        assert "2 attempt" in str(caught.value) and "/content/listings" in str(caught.value)
        assert elapsed < 20  # the client's timeout ended both attempts, not the server's 60 s
        assert server.request_count == 2


def test_connection_refused_is_an_error_not_a_hang() -> None:
    server = sandbox_with([])
    url = server.base_url
    server.stop()
    with StaysClient(url, "sandbox-client", SECRET, timeout=1, max_attempts=2, backoff_seconds=0.01,
                     concurrency=1) as stays_client:
        with pytest.raises(StaysError, match="connection failed"):
            stays_client.list_listings()
        assert stays_client.stats.requests == 2


# --- answers that are not a feed --------------------------------------------------------------

def test_html_answer_is_an_error(sandbox: StaysSandbox, client: StaysClient) -> None:
    sandbox.set_html_errors(True)
    with pytest.raises(StaysError, match="not JSON") as caught:
        client.list_reservations(START, START + timedelta(days=10))
    assert "/booking/reservations" in str(caught.value) and "skip=0" in str(caught.value)
    assert "text/html" in str(caught.value)


def test_object_instead_of_array_is_an_error(sandbox: StaysSandbox, client: StaysClient) -> None:
    sandbox.set_page_fault("object")
    with pytest.raises(StaysError, match="not an array"):
        client.list_reservations(START, START + timedelta(days=10))


def test_more_rows_than_the_limit_is_an_error(sandbox: StaysSandbox, client: StaysClient) -> None:
    sandbox.set_page_fault("oversized")
    with pytest.raises(StaysError, match="21 rows for limit=20"):
        client.list_reservations(START, START + timedelta(days=200))


def test_server_ignoring_skip_is_caught(sandbox: StaysSandbox, client: StaysClient) -> None:
    sandbox.set_page_fault("ignore_skip")
    with pytest.raises(StaysError, match="ignoring skip"):
        client.list_reservations(START, START + timedelta(days=200))


def test_outage_and_empty_feed(sandbox: StaysSandbox, client: StaysClient) -> None:
    sandbox.set_empty_feed(True)
    assert client.list_reservations(START, START + timedelta(days=200)) == []
    assert client.list_listings() == []
    sandbox.set_empty_feed(False)
    sandbox.set_outage(True)
    with pytest.raises(StaysError, match="503"):
        client.list_listings()
    sandbox.set_outage(False)
    assert len(client.list_listings()) == 3


def test_malformed_records_reach_the_client_for_quarantine(sandbox: StaysSandbox, client: StaysClient) -> None:
    good = sandbox.reservations()[0]
    sandbox.put_reservation({**good, "_id": "bad-date", "checkInDate": "31/07/2026"})
    sandbox.put_reservation({**good, "_id": "bad-type", "type": "weird"})
    no_id = dict(good)
    del no_id["_id"]
    no_id["id"] = "NOID1"
    sandbox.put_reservation(no_id)

    items = client.list_reservations(START, START + timedelta(days=5))
    rejected = {}
    for item in items:
        try:
            parse_reservation(item)
        except InvalidRecord as error:
            rejected[error.record_id] = error.reason
    assert set(rejected) == {"bad-date", "bad-type", "NOID1"}


# --- the default sandbox ------------------------------------------------------------------------

def test_default_sandbox_serves_the_seed_around_now() -> None:
    with StaysSandbox().start() as server, \
            StaysClient(server.base_url, "sandbox-client", "sandbox-secret", backoff_seconds=0.01) as stays_client:
        listings = [parse_listing(raw) for raw in stays_client.list_listings()]
        assert len(listings) == len(build_seed(datetime.now(timezone.utc)).listings)
        assert {l.listing_id for l in listings} == {raw["_id"] for raw in server.listings()}
        today = datetime.now(timezone.utc).date()
        items = stays_client.list_reservations(today - timedelta(days=60), today + timedelta(days=120),
                                               date_type="included")
        records = [parse_reservation(raw) for raw in items]
        assert {r.reservation_id for r in records} == {raw["_id"] for raw in server.reservations()}
        assert any(r.cancelled for r in records) and any(r.kind == "block" for r in records)
        assert stays_client.stats.pages > 5
