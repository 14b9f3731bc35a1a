"""What an admin reads in the Dagster UI: the day board (a Markdown table in the day_board asset's
materializations) and one stay's whole history (the stay_history asset's partition), on a controlled clock."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from dagster import AssetKey, AssetRecordsFilter

from lock_pipeline.sandbox.seed import hex_id, reservation_record
from lock_pipeline_tests.harness import Harness, World, local
from lock_pipeline_tests.helpers import make_settings

D0 = date(2026, 11, 24)  # Tuesday


@pytest.fixture
def made(database_url, tmp_path):
    harnesses = []

    def make(world: World, start, *, webhooks: bool = False, **env: str) -> Harness:
        h = Harness(database_url, world, tmp_path / f"h{len(harnesses)}", start, webhooks=webhooks,
                    settings=make_settings(**env))
        harnesses.append(h)
        return h

    yield make
    for h in harnesses:
        h.close()


def latest_board(h: Harness) -> tuple[str, str]:
    """The day board's newest materialization: its Markdown and the job of the run that logged it."""
    [record] = h.instance.fetch_materializations(AssetKey("day_board"), limit=1).records
    run = h.instance.get_run_by_id(record.run_id)
    return record.asset_materialization.metadata["day"].value, run.job_name


def board_jobs(h: Harness) -> set[str]:
    records = h.instance.fetch_materializations(AssetKey("day_board"), limit=1000).records
    return {h.instance.get_run_by_id(r.run_id).job_name for r in records}


def history(h: Harness, code: str) -> list[tuple[str, str, str]]:
    """The stay's partition of stay_history, oldest first: (what, outcome, run id)."""
    records = h.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("stay_history"), asset_partitions=[code]), limit=1000,
        ascending=True).records
    return [(r.asset_materialization.metadata["what"].value, r.asset_materialization.metadata["outcome"].value,
             r.run_id) for r in records]


def latest_history_table(h: Harness, code: str) -> str:
    """The stay's whole history as its latest entry carries it (what the partition's page shows)."""
    [record] = h.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("stay_history"), asset_partitions=[code]), limit=1).records
    return record.asset_materialization.metadata["history"].value


def test_the_day_board_shows_today_and_tomorrow_on_the_pipelines_clock(made):
    world = World()
    augusta, _ = world.listing(1, "Augusta 10")
    bixiga, _ = world.listing(2, "Bixiga 20")
    cambuci, _ = world.listing(3, "Cambuci 30", lock=False)  # no lock: a person must map one
    distant, _ = world.listing(4, "Tatuapé 40")
    world.stay("ARRV1", augusta, D0, D0 + timedelta(days=2), guest="Ana Lima")
    world.stay("DEPT1", augusta, D0 - timedelta(days=2), D0, guest="Bruno Costa")
    world.stay("TMRW1", bixiga, D0 + timedelta(days=1), D0 + timedelta(days=3), guest="Carla Dias")
    world.stay("NOLCK", cambuci, D0, D0 + timedelta(days=1), guest="Davi Rocha")
    world.stay("FAR01", distant, D0 + timedelta(days=5), D0 + timedelta(days=7))
    h = made(world, local(D0, 9), LOCK_PIPELINE_STAYS_WRITE_BACK="pin")
    h.step(local(D0, 9))
    h.deliver()
    board, job = latest_board(h)
    assert job == "deliver_codes_job"  # the delivery run refreshed it: it shows "delivered" at once
    pin = {code: h.pins_of(code)[0][1] for code in ("ARRV1", "DEPT1", "TMRW1")}
    masked = {code: "•••••" + p[-2:] for code, p in pin.items()}
    lines = board.splitlines()
    assert lines[0] == ("**As of Tue 24 Nov 2026 09:00** (America/Sao_Paulo): today 2 arrivals, 1 departure; "
                        "tomorrow 1 arrival, 1 departure; 1 stay needs a person")
    today = lines[lines.index("### Today, Tuesday 24 November"):lines.index("### Tomorrow, Wednesday 25 November")]
    assert today[2] == ("| Listing | Stay | Guest | Movement | Check-in | Check-out | Code | PIN | Delivered | "
                        "Needs a person |")
    rows = [line for line in today[4:] if line.startswith("| ")]
    assert rows == [
        f"| Augusta 10 | DEPT1 | Bruno | leaves 11:00 | 22/11 15:00 | 24/11 11:00 | active | {masked['DEPT1']} "
        "| delivered | — |",
        f"| Augusta 10 | ARRV1 | Ana | arrives 15:00 | 24/11 15:00 | 26/11 11:00 | active | {masked['ARRV1']} "
        "| delivered | — |",
        "| Cambuci 30 | NOLCK | Davi | arrives 15:00 | 24/11 15:00 | 25/11 11:00 | no_lock |  | pending "
        "| unmapped_listing_with_arrival |",
    ]
    tomorrow = lines[lines.index("### Tomorrow, Wednesday 25 November"):]
    assert [line for line in tomorrow if line.startswith("| Bixiga")] == [
        f"| Bixiga 20 | TMRW1 | Carla | arrives 15:00 | 25/11 15:00 | 27/11 11:00 | active | {masked['TMRW1']} "
        "| delivered | — |"]
    assert "FAR01" not in board and not any(p in board for p in pin.values())
    assert {"full_sync_job", "pin_actions_job", "deliver_codes_job"} <= board_jobs(h)

    # The next morning, on the same clock: Wednesday is today, ARRV1 leaves tomorrow.
    h.step(local(D0 + timedelta(days=1), 8))
    h.scheduled_syncs(h.now)  # the 30-minute sync refreshes it too
    board, job = latest_board(h)
    assert job == "sync_job" and board.startswith("**As of Wed 25 Nov 2026 08:00**")
    today = board[board.index("### Today, Wednesday 25 November"):board.index("### Tomorrow")]
    tomorrow = board[board.index("### Tomorrow, Thursday 26 November"):]
    assert "TMRW1" in today and "NOLCK" in today and "leaves 11:00" in today and "ARRV1" not in today
    assert "| ARRV1 | Ana | leaves 11:00 |" in tomorrow


def test_one_partition_holds_a_stays_history_whether_its_actions_ran_alone_or_in_a_batch(made):
    world = World()
    first = None
    for i in range(1, 12):  # eleven arrivals at once: the sensor batches them into one run
        listing, _ = world.listing(i, f"Moema {i:02d}")
        stay = world.stay(f"BAT{i:02d}", listing, D0, D0 + timedelta(days=2))
        first = first or stay
    h = made(world, local(D0, 9), LOCK_PIPELINE_STAYS_WRITE_BACK="pin")
    h.step(local(D0, 9))
    h.deliver()
    h.stays.cancel_reservation(first["_id"])
    h.step(local(D0, 9, 30))  # one action due: a run of its own
    entries = history(h, "BAT01")
    assert [(what, outcome) for what, outcome, _ in entries] == [
        ("generate", "pending_on_lock"), ("confirm", "active"), ("code.active to stays_field", "delivered"),
        ("revoke", "revoked")]
    runs = {what: h.instance.get_run_by_id(run_id) for what, _, run_id in entries}
    assert runs["generate"].tags["lock_pipeline/action"] == "batch"
    assert runs["generate"].tags["lock_pipeline/stay.BAT01"] == "generate"
    assert "lock_pipeline/stay" not in runs["generate"].tags  # the tag filter alone would miss this run
    assert runs["confirm"].tags["lock_pipeline/action"] == "batch"
    assert runs["revoke"].tags["lock_pipeline/stay"] == "BAT01"  # a single-action run
    assert runs["code.active to stays_field"].job_name == "deliver_codes_job"
    assert "BAT01" in h.instance.get_dynamic_partitions("stays")
    table = latest_history_table(h, "BAT01").splitlines()
    assert table[0] == "| When | What | Outcome | Detail | Run |"
    assert [line.split(" | ")[1:3] for line in table[2:]] == [
        ["generate", "pending\\_on\\_lock"], ["confirm", "active"], ["delivery", "delivered"], ["revoke", "revoked"]]
    assert all(f"(/runs/{run_id})" in line for line, (_, _, run_id) in zip(table[2:], entries))
    assert [what for what, _, _ in history(h, "BAT02")] == ["generate", "confirm", "code.active to stays_field"]


def test_a_booking_from_a_webhook_starts_its_stays_history(made):
    world = World()
    listing, _ = world.listing(1, "Vila Madalena 81")
    h = made(world, local(D0, 14), webhooks=True)
    h.step(local(D0, 14))
    record = reservation_record(reservation_id=hex_id("history", "HOOK1"), code="HOOK1",
                                listing_id=h.stays.listings()[0]["_id"], check_in=D0, check_out=D0 + timedelta(days=2))
    h.stays.put_reservation(record)
    [run] = h.deliver_webhooks()
    assert run.success
    entries = history(h, "HOOK1")
    assert [(what, outcome) for what, outcome, _ in entries] == [
        ("stays_webhook", "created"), ("generate", "pending_on_lock"), ("confirm", "active")]
    assert {run_id for _, _, run_id in entries} == {run.run_id}
