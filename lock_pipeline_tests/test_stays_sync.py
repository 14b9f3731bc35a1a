"""Stays -> Postgres through the real assets, real Postgres and the sandbox Stays server."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from lock_pipeline.sandbox.seed import build_seed, hex_id, listing_record, reservation_record
from lock_pipeline.sandbox.stays_server import StaysSandbox
from lock_pipeline.sandbox.tuya_cloud import TuyaSandbox
from lock_pipeline_tests.helpers import NOW, build_test_definitions, run_sync


@pytest.fixture
def sandbox():
    with StaysSandbox(build_seed(NOW)) as server:
        yield server


@pytest.fixture
def tuya():
    with TuyaSandbox(build_seed(NOW).locks) as server:
        yield server


@pytest.fixture
def defs(database_url, sandbox, tuya):
    return build_test_definitions(database_url, stays=sandbox, tuya=tuya)


def _table_snapshot(engine) -> dict[str, list]:
    with engine.connect() as conn:
        return {
            "reservations": conn.execute(text("SELECT reservation_id, ctid::text, content_hash, status, missing_since "
                                              "FROM pipeline.reservations ORDER BY 1")).all(),
            "listings": conn.execute(text("SELECT listing_id, ctid::text FROM pipeline.listings ORDER BY 1")).all(),
        }


def _last_log(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT * FROM pipeline.reconciliation_logs ORDER BY sync_id DESC LIMIT 1")).mappings().one()


def _in_sync_window(raw: dict) -> bool:
    arrival = date.fromisoformat(raw["checkInDate"])
    return date(2026, 10, 1) <= arrival <= date(2027, 11, 30)


def test_sync_fills_tables_and_admin_views(defs, engine, sandbox):
    result = run_sync(defs)
    assert result.success
    expected = [r for r in sandbox.reservations() if _in_sync_window(r)]
    assert len(expected) > 20 * 5, "the seed must need many pages"
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM pipeline.reservations")).scalar()
        guests = conn.execute(text("SELECT count(*) FROM admin.reservations")).scalar()
        blocks = conn.execute(text("SELECT count(*) FROM admin.blocks")).scalar()
        cancelled = conn.execute(text("SELECT count(*) FROM admin.reservations WHERE status = 'cancelled'")).scalar()
        listings = conn.execute(text("SELECT count(*) FROM pipeline.listings")).scalar()
        status = conn.execute(text("SELECT status, created, fetched FROM admin.reconciliation_status")).one()
    assert stored == len(expected)  # every page read, nothing lost or doubled
    assert blocks == sum(1 for r in expected if r["type"] == "blocked")
    assert guests == stored - blocks
    assert cancelled == sum(1 for r in expected if r["type"] == "canceled") > 0
    assert listings == len(sandbox.listings())
    assert status.status == "success" and status.created == stored == status.fetched

    materialization = result.asset_materializations_for_node("stays_reservations")[0]
    assert materialization.metadata["created"].value == stored


def test_local_times_come_from_the_listing_zone_and_missing_times_use_defaults(defs, engine, sandbox):
    listing = sandbox.listings()[0]
    sandbox.put_reservation(reservation_record(
        reservation_id=hex_id("t", 1), code="TZ001", listing_id=listing["_id"],
        check_in=date(2026, 12, 10), check_out=date(2026, 12, 12),
        check_in_time=None, check_out_time="10:30", guest_name="Ana Souza",
    ))
    assert run_sync(defs).success
    with engine.connect() as conn:
        row = conn.execute(text("SELECT check_in_at, check_out_at, check_in_time FROM pipeline.reservations WHERE code = 'TZ001'")).one()
        local = conn.execute(text("SELECT check_in_local, check_out_local, guest_first_name FROM admin.reservations WHERE reservation_code = 'TZ001'")).one()
    # São Paulo is UTC-3 all year: the default 15:00 check-in is 18:00 UTC.
    assert row.check_in_at == datetime(2026, 12, 10, 18, 0, tzinfo=timezone.utc)
    assert row.check_out_at == datetime(2026, 12, 12, 13, 30, tzinfo=timezone.utc)
    assert row.check_in_time is None
    assert local.check_in_local == datetime(2026, 12, 10, 15, 0)
    assert local.guest_first_name == "Ana"


def test_a_listing_in_a_dst_zone_gets_dst_correct_instants(defs, engine, sandbox):
    assert run_sync(defs).success
    listing = sandbox.listings()[1]
    with engine.begin() as conn:
        conn.execute(text("UPDATE pipeline.listings SET time_zone = 'America/New_York' WHERE listing_id = :l"), {"l": listing["_id"]})
    # New York springs forward on 2027-03-14 at 02:00; 02:30 does not exist that day.
    sandbox.put_reservation(reservation_record(
        reservation_id=hex_id("t", 2), code="DST01", listing_id=listing["_id"],
        check_in=date(2027, 3, 13), check_out=date(2027, 3, 14), check_in_time="16:00", check_out_time="02:30",
    ))
    assert run_sync(defs).success
    with engine.connect() as conn:
        row = conn.execute(text("SELECT check_in_at, check_out_at FROM pipeline.reservations WHERE code = 'DST01'")).one()
    assert row.check_in_at == datetime(2027, 3, 13, 21, 0, tzinfo=timezone.utc)  # EST, UTC-5
    assert row.check_out_at == datetime(2027, 3, 14, 7, 0, tzinfo=timezone.utc)  # moved to the end of the gap: 03:00 EDT


def test_update_and_cancel_are_applied_and_nothing_is_deleted(defs, engine, sandbox):
    assert run_sync(defs).success
    target = next(r for r in sandbox.reservations() if r["type"] == "booked" and r["checkInDate"] > "2026-12-01")
    other = next(r for r in sandbox.reservations() if r["type"] == "booked" and r["_id"] != target["_id"] and r["checkInDate"] > "2026-12-01")
    new_check_out = (date.fromisoformat(target["checkOutDate"]) + timedelta(days=1)).isoformat()
    sandbox.modify_reservation(target["_id"], checkOutDate=new_check_out)
    sandbox.cancel_reservation(other["_id"])
    result = run_sync(defs)
    assert result.success
    log = _last_log(engine)
    assert (log["updated"], log["cancelled"], log["created"]) == (2, 1, 0)
    with engine.connect() as conn:
        changed = conn.execute(text("SELECT check_out_date, status FROM pipeline.reservations WHERE reservation_id = :r"), {"r": target["_id"]}).one()
        gone = conn.execute(text("SELECT status, cancelled_at FROM pipeline.reservations WHERE reservation_id = :r"), {"r": other["_id"]}).one()
    assert changed.check_out_date.isoformat() == new_check_out and changed.status == "confirmed"
    assert gone.status == "cancelled" and gone.cancelled_at is not None


def test_a_rerun_that_changes_nothing_writes_nothing(defs, engine):
    assert run_sync(defs).success
    before = _table_snapshot(engine)
    assert run_sync(defs).success
    assert _table_snapshot(engine) == before  # same ctids: no row was rewritten
    log = _last_log(engine)
    assert (log["created"], log["updated"], log["cancelled"], log["missing"]) == (0, 0, 0, 0)
    assert log["unchanged"] == len(before["reservations"])


def test_stays_down_records_a_failed_sync_and_changes_nothing(defs, engine, sandbox):
    assert run_sync(defs).success
    before = _table_snapshot(engine)
    sandbox.set_outage(True)
    result = run_sync(defs, raise_on_error=False)
    assert not result.success
    assert _table_snapshot(engine) == before
    log = _last_log(engine)
    assert log["status"] == "failed" and "Stays" in log["message"] and "503" in log["message"]


def test_malformed_records_are_quarantined_and_the_rest_stored(defs, engine, sandbox):
    listing_id = sandbox.listings()[0]["_id"]
    good = reservation_record(reservation_id=hex_id("t", 3), code="GOOD1", listing_id=listing_id,
                              check_in=date(2026, 12, 20), check_out=date(2026, 12, 23))
    no_dates = {**reservation_record(reservation_id=hex_id("t", 4), code="BAD01", listing_id=listing_id,
                                     check_in=date(2026, 12, 20), check_out=date(2026, 12, 22)), "checkOutDate": "soon"}
    backwards = reservation_record(reservation_id=hex_id("t", 5), code="BAD02", listing_id=listing_id,
                                   check_in=date(2026, 12, 20), check_out=date(2026, 12, 18))
    unknown_listing = reservation_record(reservation_id=hex_id("t", 6), code="BAD03", listing_id=hex_id("nowhere"),
                                         check_in=date(2026, 12, 20), check_out=date(2026, 12, 22))
    for raw in (good, no_dates, backwards, unknown_listing):
        sandbox.put_reservation(raw)
    result = run_sync(defs)
    assert result.success
    with engine.connect() as conn:
        codes = set(conn.execute(text("SELECT code FROM pipeline.reservations")).scalars())
        quarantined = conn.execute(text("SELECT record_id, reason, payload FROM pipeline.quarantined_records ORDER BY record_id")).all()
    assert "GOOD1" in codes and not {"BAD01", "BAD02", "BAD03"} & codes
    reasons = {row.record_id: row.reason for row in quarantined}
    assert "checkOutDate" in reasons[hex_id("t", 4)]
    assert "before" in reasons[hex_id("t", 5)]
    assert "not a known listing" in reasons[hex_id("t", 6)]
    assert all("phones" not in str(row.payload) for row in quarantined)  # guest contact data not kept
    assert _last_log(engine)["status"] == "partial"


def test_an_empty_feed_cancels_and_flags_nothing(defs, engine, sandbox):
    assert run_sync(defs).success
    before = _table_snapshot(engine)
    sandbox.set_empty_feed(True)
    assert run_sync(defs).success
    assert _table_snapshot(engine) == before
    log = _last_log(engine)
    assert log["status"] == "partial" and "empty feed" in log["message"]
    # A person must see it: bookings made meanwhile are invisible until the feed is back.
    with engine.connect() as conn:
        conn.execute(text("SET lock_pipeline.now = :now"), {"now": NOW.isoformat()})
        shown = conn.execute(text("SELECT issue, what_to_do FROM admin.attention WHERE issue = 'sync_failing'")).all()
    assert len(shown) == 1 and "feed looks broken (empty feed while" in shown[0].what_to_do
    sandbox.set_empty_feed(False)
    assert run_sync(defs).success
    with engine.connect() as conn:
        conn.execute(text("SET lock_pipeline.now = :now"), {"now": NOW.isoformat()})
        assert conn.execute(text("SELECT count(*) FROM admin.attention WHERE issue LIKE 'sync_%'")).scalar() == 0


def test_a_stay_gone_from_stays_is_flagged_missing_not_cancelled(defs, engine, sandbox):
    assert run_sync(defs).success
    gone = next(r for r in sandbox.reservations() if r["type"] == "booked" and r["checkInDate"] > "2026-12-01")
    sandbox.delete_reservation(gone["_id"])
    assert run_sync(defs).success
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, missing_since FROM pipeline.reservations WHERE reservation_id = :r"), {"r": gone["_id"]}).one()
    assert row.status == "confirmed" and row.missing_since == NOW
    sandbox.put_reservation(gone)  # it comes back: the flag clears
    assert run_sync(defs).success
    with engine.connect() as conn:
        assert conn.execute(text("SELECT missing_since FROM pipeline.reservations WHERE reservation_id = :r"), {"r": gone["_id"]}).scalar() is None


def test_a_stay_moved_out_of_the_window_is_updated_not_flagged(defs, engine, sandbox):
    assert run_sync(defs).success
    moved = next(r for r in sandbox.reservations() if r["type"] == "booked" and r["checkInDate"] > "2026-12-01")
    sandbox.modify_reservation(moved["_id"], checkInDate="2028-06-01", checkOutDate="2028-06-05")
    assert run_sync(defs).success
    with engine.connect() as conn:
        row = conn.execute(text("SELECT check_in_date, missing_since FROM pipeline.reservations WHERE reservation_id = :r"), {"r": moved["_id"]}).one()
    assert row.check_in_date == date(2028, 6, 1) and row.missing_since is None


def test_a_new_listing_and_its_stays_arrive_in_one_sync(defs, engine, sandbox):
    new_listing = listing_record(99, "Cobertura Leblon 801", "Leblon", "Rua Dias Ferreira", "100", "801", "Rio de Janeiro")
    sandbox.put_listing(new_listing)
    sandbox.put_reservation(reservation_record(reservation_id=hex_id("t", 7), code="NEW01", listing_id=new_listing["_id"],
                                               check_in=date(2026, 11, 28), check_out=date(2026, 12, 4)))
    result = run_sync(defs, raise_on_error=False)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT listing_name FROM admin.reservations WHERE reservation_code = 'NEW01'")).scalar() == "Cobertura Leblon 801"
    # It has a guest in five days and no lock: the blocking check is red and names it.
    evaluation = next(e for e in result.get_asset_check_evaluations()
                      if e.check_name == "listings_with_arrivals_have_a_confirmed_lock")
    assert not evaluation.passed
    assert [row["listing_code"] for row in evaluation.metadata["offending_rows"].value] == [new_listing["id"]]


def _count_parses(monkeypatch) -> list[str]:
    """Record every reservation the sync parses (unchanged ones must skip parsing)."""
    import lock_pipeline.stays.sync as sync_module

    parsed: list[str] = []
    real = sync_module.parse_reservation

    def counting(raw):
        parsed.append(raw.get("_id") if isinstance(raw, dict) else None)
        return real(raw)

    monkeypatch.setattr(sync_module, "parse_reservation", counting)
    return parsed


def test_unchanged_records_skip_parsing_and_a_new_raw_form_is_parsed_once(defs, engine, sandbox, monkeypatch):
    assert run_sync(defs).success
    parsed = _count_parses(monkeypatch)
    assert run_sync(defs).success
    assert parsed == []
    # Same stay, different raw spelling (Stays is case-lax on type): parsed, not rewritten.
    target = next(r for r in sandbox.reservations() if r["type"] == "booked" and _in_sync_window(r))
    sandbox.modify_reservation(target["_id"], type="Booked", price={"_f_total": 1.0})
    earlier = NOW - timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(text("UPDATE pipeline.reservations SET updated_at = :t WHERE reservation_id = :r"),
                     {"t": earlier, "r": target["_id"]})
    before = _table_snapshot(engine)
    assert run_sync(defs).success
    assert parsed == [target["_id"]]
    log = _last_log(engine)
    assert (log["created"], log["updated"], log["unchanged"]) == (0, 0, len(before["reservations"]))
    with engine.connect() as conn:
        updated_at = conn.execute(text("SELECT updated_at FROM pipeline.reservations WHERE reservation_id = :r"),
                                  {"r": target["_id"]}).scalar_one()
    assert updated_at == earlier  # only the fingerprint was refreshed, the stay itself did not change
    parsed.clear()
    assert run_sync(defs).success
    assert parsed == []


def test_rows_stored_before_fingerprints_get_one_without_being_rewritten(defs, engine, monkeypatch):
    assert run_sync(defs).success
    with engine.begin() as conn:
        conn.execute(text("UPDATE pipeline.reservations SET source_fingerprint = NULL"))
        updated = dict(conn.execute(text("SELECT reservation_id, updated_at FROM pipeline.reservations")).all())
    assert run_sync(defs).success
    log = _last_log(engine)
    assert (log["created"], log["updated"], log["unchanged"]) == (0, 0, len(updated))
    with engine.connect() as conn:
        after = conn.execute(text("SELECT reservation_id, updated_at, source_fingerprint FROM pipeline.reservations")).all()
    assert {r.reservation_id: r.updated_at for r in after} == updated
    assert all(r.source_fingerprint for r in after)
    parsed = _count_parses(monkeypatch)
    assert run_sync(defs).success
    assert parsed == []


def test_a_listing_zone_change_rewrites_its_stays_instants(defs, engine, sandbox):
    assert run_sync(defs).success
    listing = sandbox.listings()[2]
    with engine.begin() as conn:
        conn.execute(text("UPDATE pipeline.listings SET time_zone = 'America/Manaus' WHERE listing_id = :l"),
                     {"l": listing["_id"]})
        ids = set(conn.execute(text("SELECT reservation_id FROM pipeline.reservations WHERE listing_id = :l"),
                               {"l": listing["_id"]}).scalars())
        before = dict(conn.execute(text("SELECT reservation_id, check_in_at FROM pipeline.reservations")).all())
    assert ids, "the listing needs stays for this test"
    assert run_sync(defs).success
    assert _last_log(engine)["updated"] == len(ids)
    with engine.connect() as conn:
        after = dict(conn.execute(text("SELECT reservation_id, check_in_at FROM pipeline.reservations")).all())
    for rid, check_in_at in after.items():
        if rid in ids:
            assert check_in_at - before[rid] == timedelta(hours=1)  # Manaus is UTC-4, Sao Paulo UTC-3
        else:
            assert check_in_at == before[rid]


class _BreaksAfterPages(StaysSandbox):
    """The sandbox, failing every page request past the first few: a feed that dies half-way."""

    def __init__(self, *args, good_pages: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.good_pages = good_pages

    def _serve(self, method, target, authorization):
        if "/booking/reservations?" in target and "skip=" in target:
            skip = int(target.split("skip=")[1].split("&")[0])
            if skip >= self.good_pages * 20:
                return 500, {"Content-Type": "application/json"}, b'{"message": "sandbox: broken mid-feed"}'
        return super()._serve(method, target, authorization)


def test_a_feed_that_breaks_half_way_changes_nothing(database_url, engine, tuya):
    seed = build_seed(NOW)
    with StaysSandbox(seed) as healthy:
        assert run_sync(build_test_definitions(database_url, stays=healthy, tuya=tuya)).success
    for raw in seed.reservations[:30]:
        raw["type"] = "canceled"
    with _BreaksAfterPages(seed, good_pages=3) as broken:
        before = _table_snapshot(engine)
        result = run_sync(build_test_definitions(database_url, stays=broken, tuya=tuya), raise_on_error=False)
        assert broken.request_count > 3
    assert not result.success
    assert _table_snapshot(engine) == before
    log = _last_log(engine)
    assert log["status"] == "failed" and "HTTP 500" in log["message"] and "skip=60" in log["message"]
