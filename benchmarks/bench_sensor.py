"""Benchmark: one evaluation of the real pin_actions_sensor over 100,000 future stays, 1,000 due now.

Not a test; it prints figures and the query plans and never fails a build. From the repo root:

    .venv/bin/python benchmarks/bench_sensor.py [--scale 1.0] [--runs 5] [--history 1.0]

Data (inserted with COPY straight into the pipeline.* tables of a fresh embedded Postgres with the
real schema, then ANALYZEd as autovacuum would):
- 5,000 listings, each mapped 1:1 to an online lock (pipeline.locks, confirmed pipeline.lock_mappings);
- 100,000 future stays (arriving from 6 days ahead over the next months, outside the sensor's
  horizon; ~5 % cancelled, ~3 % owner blocks), 20 per listing;
- 1,000 stays due now: arriving within the 48 h programming horizon on 1,000 listings, no code yet;
- 2,000 guests in house, each with an active code (live codes the sensor reads every tick, no work);
- a year of history (``--history 1.0``): 100,000 past stays with their revoked codes, as a
  pipeline that never deletes reservations holds after a year;
- 10 stays cancelled after their PIN was programmed (live code, stay no longer in the window), so
  the third query of load_for_planning (codes whose stay left the window) runs too; they add 10
  revoke actions to the 1,000 generates.

Then ``pin_actions_sensor`` is evaluated as season/driver.py does for the tests and the season
(``dagster.build_sensor_context`` with the postgres, clock and settings resources, an
ephemeral instance, an empty cursor so every evaluation plans all the due work): one cold
evaluation, then the median of ``--runs``; target under 1 s. A breakdown times the sensor's
parts (load_for_planning, plan_actions, batching into RunRequests). Finally each SQL statement
load_for_planning executes (captured from the engine, same text and parameters) is shown with
EXPLAIN (ANALYZE, BUFFERS).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import benchlib  # noqa: E402
from benchlib import BENCH_NOW, mib, median, spread, verdict  # noqa: E402

ZONE = ZoneInfo("America/Sao_Paulo")
TARGET_SECONDS = 1.0


_copy = benchlib.copy_rows
_h = benchlib.stable_hash


def load_data(url: str, *, listings: int, future: int, due: int, in_house: int, past: int, orphans: int,
              seed: int = 5) -> dict[str, int]:
    rng = random.Random(seed)
    now = BENCH_NOW
    conn = benchlib.raw_connection(url)
    cur = conn.cursor()
    listing_ids = [_h("listing", i)[:24] for i in range(listings)]
    device_ids = ["eb" + _h("lock", i)[:20] for i in range(listings)]
    old = now - timedelta(days=400)
    counts: dict[str, int] = {}
    counts["listings"] = _copy(cur, "pipeline.listings", [
        "listing_id", "short_code", "internal_name", "title", "address", "city", "status", "time_zone",
        "default_check_in_time", "default_check_out_time", "content_hash", "first_seen_at", "last_seen_at", "updated_at",
    ], ((lid, f"L{i:05d}", f"Ed. Bench - Apto {i}", f"Apto {i}", f"Rua Bench, {i}", "Rio de Janeiro", "active",
         "America/Sao_Paulo", "15:00", "11:00", _h("lh", i), old, now, old) for i, lid in enumerate(listing_ids)))
    counts["locks"] = _copy(cur, "pipeline.locks", [
        "device_id", "name", "category", "product_name", "online", "pin_length", "first_seen_at", "last_seen_at",
        "last_online_at", "content_hash",
    ], ((did, f"Fechadura Apto {i}", "ms", "Wi-Fi Smart Lock", "true", 7, old, now, now, _h("kh", i))
        for i, did in enumerate(device_ids)))
    counts["lock_mappings"] = _copy(cur, "pipeline.lock_mappings", [
        "listing_id", "device_id", "status", "score", "source", "decided_at", "updated_at",
    ], ((lid, did, "confirmed", 100.0, "matcher", old, old) for lid, did in zip(listing_ids, device_ids)))

    reservations: list[tuple] = []
    codes: list[tuple] = []

    def stay(listing: int, check_in_at: datetime, nights: int, *, status: str = "confirmed", kind: str = "guest",
             tag: str) -> tuple:
        check_out_at = (check_in_at.astimezone(ZONE) + timedelta(days=nights)).replace(hour=11, minute=0)
        rid = _h("stay", tag)[:24]
        ci, co = check_in_at.astimezone(ZONE), check_out_at.astimezone(ZONE)
        row = (rid, _h("code", tag)[:5].upper(), listing_ids[listing], "blocked" if kind == "block" else "booked",
               kind, status, ci.date(), ci.time().replace(microsecond=0), co.date(), co.time().replace(microsecond=0),
               "America/Sao_Paulo", check_in_at, check_out_at, "Maria", _h("ch", tag), old, now, old,
               now if status == "cancelled" else None, None)
        reservations.append(row)
        return row

    def kind_status() -> tuple[str, str]:
        roll = rng.random()
        if roll < 0.05:
            return "cancelled", "guest"
        if roll < 0.08:
            return "blocked", "block"
        return "confirmed", "guest"

    def local(day_offset: float, hour: int = 15) -> datetime:
        day = (now.astimezone(ZONE) + timedelta(days=day_offset)).date()
        return datetime(day.year, day.month, day.day, hour, tzinfo=ZONE)

    # future stays: 20 per listing from 6 days ahead (outside the 48 h + 24 h horizon)
    per_listing = max(1, future // listings)
    made = 0
    for i in range(listings):
        cursor = 6 + rng.randrange(0, 5)
        for n in range(per_listing):
            if made >= future:
                break
            nights = rng.choice([2, 3, 3, 4, 5, 7])
            status, kind = kind_status()
            stay(i, local(cursor), nights, status=status, kind=kind, tag=f"future-{i}-{n}")
            cursor += nights + rng.choice([0, 0, 1, 2, 4, 7, 10])
            made += 1
    counts["future_stays"] = made
    # due now: arriving within the programming horizon (window opens 2 h before, programmed 48 h ahead)
    for i in range(due):
        arrival = now + timedelta(hours=1 + rng.random() * 47)
        stay(i % listings, arrival, 3, tag=f"due-{i}")
    counts["due_stays"] = due
    # in house: active codes that need no work this tick
    for j in range(in_house):
        listing = (due + j) % listings
        row = stay(listing, local(-2), 4, tag=f"inhouse-{j}")
        codes.append((row[0], device_ids[listing], row[11] - timedelta(hours=2), row[12], "active", "•••••42",
                      f"LP {row[1]} Maria", str(20_000_000 + j), 2, 1, None, None, "bench", old, now - timedelta(days=2),
                      now - timedelta(days=2), now - timedelta(days=2), None))
    counts["in_house"] = in_house
    # cancelled after programming: the live code's stay is outside the sensor's stays query
    for k in range(orphans):
        listing = (due + in_house + k) % listings
        row = stay(listing, local(1, 16), 3, status="cancelled", tag=f"orphan-{k}")
        codes.append((row[0], device_ids[listing], row[11] - timedelta(hours=2), row[12], "active", "•••••42",
                      f"LP {row[1]} Maria", str(30_000_000 + k), 2, 1, None, None, "bench", old, now - timedelta(hours=3),
                      now - timedelta(hours=3), now - timedelta(hours=3), None))
    counts["cancelled_with_live_code"] = orphans
    # history: past stays, each with its revoked code
    per_listing = max(1, past // listings) if past else 0
    made = 0
    for i in range(listings if past else 0):
        cursor = -3
        for n in range(per_listing):
            if made >= past:
                break
            nights = rng.choice([2, 3, 3, 4, 5, 7])
            cursor -= nights + rng.choice([0, 0, 1, 2, 4, 7, 10])
            status, kind = kind_status()
            row = stay(i, local(cursor), nights, status=status, kind=kind, tag=f"past-{i}-{n}")
            if status == "confirmed" and kind == "guest":
                codes.append((row[0], device_ids[i], row[11] - timedelta(hours=2), row[12], "revoked", "•••••42",
                              f"LP {row[1]} Maria", str(40_000_000 + made), 0, 1, None, None, "bench", row[11] - timedelta(days=2),
                              row[12], row[11] - timedelta(days=2), row[11] - timedelta(hours=2), row[12]))
            made += 1
    counts["past_stays"] = made
    counts["reservations"] = _copy(cur, "pipeline.reservations", [
        "reservation_id", "code", "listing_id", "stays_type", "kind", "status", "check_in_date", "check_in_time",
        "check_out_date", "check_out_time", "time_zone", "check_in_at", "check_out_at", "guest_first_name",
        "content_hash", "first_seen_at", "last_seen_at", "updated_at", "cancelled_at", "missing_since",
    ], reservations)
    counts["access_codes"] = _copy(cur, "pipeline.access_codes", [
        "reservation_id", "device_id", "valid_from", "valid_until", "state", "pin_masked", "lock_label",
        "tuya_password_id", "tuya_phase", "attempts", "next_attempt_at", "last_error", "last_run_id", "created_at",
        "updated_at", "programmed_at", "active_at", "revoked_at",
    ], codes)
    conn.commit()
    conn.autocommit = True
    cur.execute("VACUUM ANALYZE")
    conn.close()
    return counts


def evaluate(instance, resources):
    from dagster import RunRequest, build_sensor_context

    from lock_pipeline.orchestration.access import pin_actions_sensor

    context = build_sensor_context(instance=instance, cursor=None, resources=resources)
    started = time.perf_counter()
    result = pin_actions_sensor(context)
    elapsed = time.perf_counter() - started
    requests = [r for r in (result if isinstance(result, list) else []) if isinstance(r, RunRequest)]
    actions = sum(len(r.run_config["ops"]["planned_pin_actions"]["config"]["actions"]) for r in requests)
    return elapsed, requests, actions, result, context.cursor


def breakdown(url: str, runs: int) -> dict[str, list[float]]:
    from lock_pipeline.access.planning import AccessPolicy, plan_actions
    from lock_pipeline.access.store import load_for_planning
    from lock_pipeline.orchestration.access import batch_actions, run_request_for
    from lock_pipeline.settings import Settings
    from lock_pipeline.storage.database import engine_for

    policy = AccessPolicy.from_settings(Settings())
    engine = engine_for(url)
    parts: dict[str, list[float]] = {"load_for_planning": [], "plan_actions": [], "batch+RunRequests": [],
                                     "cursor json": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        with engine.connect() as conn:
            stays, codes = load_for_planning(conn, BENCH_NOW, policy)
        t1 = time.perf_counter()
        plan = plan_actions(stays, codes, BENCH_NOW, policy)
        t2 = time.perf_counter()
        requests = [run_request_for(b) for b in batch_actions(plan.actions, Settings().max_actions_per_run)]
        t3 = time.perf_counter()
        json.dumps({a.key: BENCH_NOW.isoformat() for a in plan.actions})
        t4 = time.perf_counter()
        parts["load_for_planning"].append(t1 - t0)
        parts["plan_actions"].append(t2 - t1)
        parts["batch+RunRequests"].append(t3 - t2)
        parts["cursor json"].append(t4 - t3)
    parts["_rows"] = [len(stays), len(codes), len(plan.actions), len(requests)]
    return parts


def captured_statements(url: str) -> list[tuple[str, object]]:
    from sqlalchemy import event

    from lock_pipeline.access.planning import AccessPolicy
    from lock_pipeline.access.store import load_for_planning
    from lock_pipeline.settings import Settings
    from lock_pipeline.storage.database import engine_for

    engine = engine_for(url)
    seen: list[tuple[str, object]] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    policy: AccessPolicy = AccessPolicy.from_settings(Settings())
    with engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", listen)
        load_for_planning(conn, BENCH_NOW, policy)
        event.remove(conn, "before_cursor_execute", listen)
    return seen


def explain(url: str, statements: list[tuple[str, object]]) -> list[tuple[str, list[str]]]:
    conn = benchlib.raw_connection(url)
    out = []
    try:
        cur = conn.cursor()
        for statement, parameters in statements:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            out.append((" ".join(statement.split()), [row[0] for row in cur.fetchall()]))
            conn.rollback()
    finally:
        conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="1.0 = 5,000 listings, 100,000 future stays, 1,000 due, 2,000 in house")
    parser.add_argument("--history", type=float, default=1.0, help="years of past stays kept (100,000 a year at scale 1)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    s = args.scale
    sizes = dict(listings=max(10, round(5000 * s)), future=round(100_000 * s), due=max(1, round(1000 * s)),
                 in_house=round(2000 * s), past=round(100_000 * s * args.history), orphans=10)
    load = benchlib.ForeignLoad()
    print(f"bench_sensor: {sizes}; {benchlib.machine_line()}", flush=True)

    from dagster import DagsterInstance

    from lock_pipeline.orchestration.resources import ClockResource, PostgresResource, SettingsResource
    from lock_pipeline.settings import Settings

    with benchlib.embedded_server("lp-bench-sensor-") as server:
        url = benchlib.fresh_database(server, "bench_sensor")
        started = time.perf_counter()
        counts = load_data(url, **sizes)
        print(f"loaded in {time.perf_counter() - started:.1f} s: {counts}", flush=True)
        resources = {"postgres": PostgresResource(url=url), "clock": ClockResource(frozen_at=BENCH_NOW.isoformat()),
                     "settings": SettingsResource.of(Settings())}
        with DagsterInstance.ephemeral() as instance:
            cold, requests, actions, _, cursor = evaluate(instance, resources)
            print(f"cold evaluation (first in the process: engine, schema check): {cold:.3f} s -> {len(requests)} "
                  f"RunRequests carrying {actions} actions; cursor {len(cursor or '') / 1024:.0f} KiB", flush=True)
            times = []
            for number in range(args.runs):
                elapsed, requests, actions, _, _ = evaluate(instance, resources)
                times.append(elapsed)
                print(f"evaluation {number + 1}: {elapsed:.3f} s ({len(requests)} runs, {actions} actions)", flush=True)
        parts = breakdown(url, args.runs)
        rows = parts.pop("_rows")
        statements = captured_statements(url)
        plans = explain(url, statements)
        peak = benchlib.self_peak_rss()

    benchlib.banner("bench_sensor summary")
    print(f"one pin_actions_sensor evaluation: {spread(times, 's', 3)}  target < {TARGET_SECONDS:.0f} s: "
          f"{verdict(median(times) < TARGET_SECONDS)}  (cold first evaluation {cold:.3f} s)")
    print(f"  planned {rows[2]} actions from {rows[0]} stays and {rows[1]} live codes -> {rows[3]} RunRequests "
          f"(batches of {Settings().max_actions_per_run}, one run each)")
    print("  parts (median): " + ", ".join(f"{k} {median(v) * 1000:.0f} ms" for k, v in parts.items()))
    print(f"  process peak RSS {mib(peak)}")
    benchlib.banner("EXPLAIN (ANALYZE, BUFFERS) of load_for_planning's queries")
    for number, (statement, plan) in enumerate(plans, 1):
        print(f"\n-- query {number}: {statement[:400]}{'...' if len(statement) > 400 else ''}")
        for line in plan:
            print("   " + line)
    benchlib.banner("index use")
    for number, (_statement, plan) in enumerate(plans, 1):
        used = [line.strip().split("  (")[0].lstrip("-> ") for line in plan
                if "Index" in line and (" using " in line or " on " in line) or "Seq Scan" in line]
        exec_time = next((line for line in plan if line.startswith("Execution Time")), "")
        print(f"query {number}: {'; '.join(used)}  [{exec_time}]")
    print(load.line())


if __name__ == "__main__":
    main()
