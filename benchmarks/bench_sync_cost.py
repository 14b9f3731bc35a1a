"""Benchmark: what the syncs cost in Stays API calls a day at 100,000 stays, and how stale a near stay can get.

Not a test; it prints figures and never fails a build. From the repo root:

    .venv/bin/python benchmarks/bench_sync_cost.py [--scale 1.0] [--latency 0.02] [--real-latency 0.3]

The feed is bench_sync.py's (5,000 listings and 100,000 stays over the 395-day window, served by
the Stays sandbox in a child process). Code path: the real ``StaysSync`` and ``StaysClient``
with the windows the assets use: the full sync (``full_sync_job``: listings, then the whole window
by arrival) and the near-term sync (``sync_job`` every 30 minutes: ``near_term_windows``, Stays'
``included`` and ``creation`` date types). Every request is counted by the client and the sandbox.

Before this change, the 30-minute sync was the full one: 48 a day. Now: 48 near-term syncs, plus
the full sweep every LOCK_PIPELINE_FULL_SYNC_HOURS (default 12), plus one GET per webhook.

Staleness: after the full sync, the script changes stays in the sandbox the way guests and hosts
do (dates of stays arriving within 48 h moved, some cancelled, new bookings for tomorrow made
today) without any webhook, runs one near-term sync and checks every change is in Postgres. The
worst staleness of a stay arriving within 48 h without webhooks is then one sync interval plus the
near-term sync's duration (with webhooks: the webhook benchmark's seconds).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import benchlib  # noqa: E402
from bench_sync import CLIENT_ID, CLIENT_SECRET, ZONE, build_feed, sync_window, today_local  # noqa: E402
from benchlib import BENCH_NOW, verdict  # noqa: E402

WEBHOOKS_PER_BOOKING = 1.5  # created, and about one change or cancellation for every second booking


def serve(conn, n_listings: int, n_stays: int, latency: float) -> None:
    """Child process: serve the feed; answer "count", ("change", n, seed), "stop" on the pipe."""
    import warnings as _warnings

    _warnings.filterwarnings("ignore")
    from lock_pipeline.sandbox.seed import Seed, hex_id, reservation_record, short_code
    from lock_pipeline.sandbox.stays_server import StaysSandbox

    listings, stays = build_feed(n_listings, n_stays)
    sandbox = StaysSandbox(Seed(listings=listings, reservations=stays), client_id=CLIENT_ID,
                           client_secret=CLIENT_SECRET, page_latency=latency).start()
    conn.send({"base_url": sandbox.base_url})
    while True:
        command = conn.recv()
        if command == "count":
            conn.send(sandbox.request_count)
        elif command[0] == "change":
            _, n, seed = command
            conn.send(_change(sandbox, listings, n, seed, hex_id, reservation_record, short_code))
        elif command == "stop":
            sandbox.stop()
            conn.send("stopped")
            return


def _change(sandbox, listings, n, seed, hex_id, reservation_record, short_code) -> dict[str, tuple]:
    """Move, cancel and book stays near today without webhooks; returns code -> (status, check-in) expected."""
    rng = random.Random(seed)
    today = today_local()
    near = [r for r in sandbox.reservations() if r["type"] == "booked"
            and today <= datetime.fromisoformat(r["checkInDate"]).date() <= today + timedelta(days=2)]
    rng.shuffle(near)
    expected: dict[str, tuple] = {}
    for r in near[:n]:  # moved one day later (the night after is free often enough; Stays would refuse otherwise)
        check_in = datetime.fromisoformat(r["checkInDate"]).date() + timedelta(days=1)
        check_out = datetime.fromisoformat(r["checkOutDate"]).date() + timedelta(days=1)
        sandbox.modify_reservation(r["_id"], checkInDate=check_in.isoformat(), checkOutDate=check_out.isoformat())
        expected[r["id"]] = ("confirmed", check_in)
    for r in near[n:2 * n]:
        sandbox.cancel_reservation(r["_id"])
        expected[r["id"]] = ("cancelled", datetime.fromisoformat(r["checkInDate"]).date())
    for k in range(n):  # booked today for tomorrow (dates may overlap a stay; the sync does not judge that)
        listing = rng.choice(listings)
        code = short_code(rng)
        record = reservation_record(reservation_id=hex_id("cost-bench-new", seed, k), code=code,
                                    listing_id=listing["_id"], check_in=today + timedelta(days=1),
                                    check_out=today + timedelta(days=3), created=today)
        sandbox.put_reservation(record)
        expected[code] = ("confirmed", today + timedelta(days=1))
    return expected


def _ask(pipe, command):
    pipe.send(command)
    return pipe.recv()


def one_sync(url: str, base_url: str, now: datetime, windows, *, listings: bool) -> dict:
    from lock_pipeline.stays.client import StaysClient
    from lock_pipeline.stays.sync import StaysSync
    from lock_pipeline.storage.database import engine_for

    started = time.perf_counter()
    with StaysClient(base_url, CLIENT_ID, CLIENT_SECRET) as client:
        sync = StaysSync(engine_for(url), client, now=lambda: now, default_time_zone=ZONE,
                         default_check_in=datetime.strptime("15:00", "%H:%M").time(),
                         default_check_out=datetime.strptime("11:00", "%H:%M").time(), run_id="bench",
                         progress=lambda _message: None)
        if listings:
            sync.sync_listings()
        result = sync.sync_reservations(windows)
        return {"seconds": time.perf_counter() - started, "requests": client.stats.requests,
                "pages": client.stats.pages, "concurrency": client.concurrency, "result": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 5,000 listings, 100,000 stays")
    parser.add_argument("--latency", type=float, default=0.02, help="sandbox page latency, seconds")
    parser.add_argument("--real-latency", type=float, default=0.3,
                        help="a real API's seconds per call, for the projected durations")
    parser.add_argument("--changes", type=int, default=30, help="stays moved, cancelled and booked (each)")
    args = parser.parse_args()

    from sqlalchemy import text

    from lock_pipeline.settings import DEFAULTS
    from lock_pipeline.stays.client import MAX_PAGES
    from lock_pipeline.stays.sync import near_term_windows
    from lock_pipeline.storage.database import engine_for

    import lock_pipeline.stays.client as client_module

    n_listings, n_stays = max(1, round(5000 * args.scale)), max(1, round(100_000 * args.scale))
    client_module.MAX_PAGES = max(MAX_PAGES, n_stays // 20 + 100)  # as bench_sync: one query may exceed the guard
    benchlib.banner(f"Stays API calls a day: {n_listings:,} listings, {n_stays:,} stays")
    print(benchlib.machine_line())
    load = benchlib.ForeignLoad()
    context = multiprocessing.get_context("spawn")
    parent, child_end = context.Pipe()
    child = context.Process(target=serve, args=(child_end, n_listings, n_stays, args.latency), daemon=True)
    child.start()
    base_url = parent.recv()["base_url"]
    try:
        with benchlib.embedded_server("lp-bench-cost-") as server:
            url = benchlib.fresh_database(server, "bench_cost")
            before = _ask(parent, "count")
            full = one_sync(url, base_url, BENCH_NOW, sync_window(), listings=True)
            full_sandbox = _ask(parent, "count") - before
            later = BENCH_NOW + timedelta(minutes=30)
            windows = near_term_windows(later, ZONE, DEFAULTS.program_ahead, BENCH_NOW.astimezone().date())
            expected = _ask(parent, ("change", args.changes, 7))
            before = _ask(parent, "count")
            near = one_sync(url, base_url, later, windows, listings=False)
            near_sandbox = _ask(parent, "count") - before
            with engine_for(url).connect() as conn:
                stored = {row.code: (row.status, row.check_in_date) for row in conn.execute(text(
                    "SELECT code, status, check_in_date FROM pipeline.reservations WHERE code = ANY(:codes)"),
                    {"codes": list(expected)})}
                flagged = conn.execute(text("SELECT count(*) FROM pipeline.reservations "
                                            "WHERE missing_since IS NOT NULL")).scalar()
    finally:
        try:
            _ask(parent, "stop")
        except Exception:  # noqa: BLE001
            pass
        child.join(timeout=10)

    per_day = 24 * 60 // 30
    full_per_day = 24 / DEFAULTS.full_sync_hours
    bookings_per_day = n_stays / 365
    webhook_calls = bookings_per_day * WEBHOOKS_PER_BOOKING
    calls_before = per_day * full["requests"]
    calls_after = per_day * near["requests"] + full_per_day * full["requests"] + webhook_calls
    print(f"full sync (listings + {sync_window().from_date}..{sync_window().to_date} by arrival): "
          f"{full['requests']:,} requests ({full_sandbox:,} seen by the sandbox), {full['seconds']:.1f} s here")
    print(f"near-term sync ({', '.join(f'{w.date_type} {w.from_date}..{w.to_date}' for w in windows)}): "
          f"{near['requests']:,} requests ({near_sandbox:,} seen by the sandbox), {near['seconds']:.1f} s here; "
          f"{near['result'].fetched:,} stays read")
    print("\nStays API calls a day:")
    print(f"  before: the full sync every 30 min      {per_day} x {full['requests']:,} = {calls_before:,.0f}")
    print(f"  now:    near-term every 30 min           {per_day} x {near['requests']:,} = {per_day * near['requests']:,.0f}")
    print(f"          full sweep every {DEFAULTS.full_sync_hours} h           {full_per_day:.0f} x {full['requests']:,} "
          f"= {full_per_day * full['requests']:,.0f}")
    print(f"          one GET per webhook              about {webhook_calls:,.0f} ({bookings_per_day:,.0f} bookings a day "
          f"x {WEBHOOKS_PER_BOOKING} webhooks)")
    ratio = calls_before / calls_after
    print(f"          total                            {calls_after:,.0f}   -> {ratio:.1f}x fewer; target >= 10x: "
          f"{verdict(ratio >= 10)}")
    concurrency = near["concurrency"]
    print(f"\nagainst a real API at {args.real_latency} s a call ({concurrency} in flight): full sync about "
          f"{math.ceil(full['requests'] * args.real_latency / concurrency / 60)} min, near-term sync about "
          f"{math.ceil(near['requests'] * args.real_latency / concurrency)} s")
    wrong = {code: (stored.get(code), want) for code, want in expected.items() if stored.get(code) != want}
    print(f"\nchanges made in Stays without a webhook: {len(expected)} (moved, cancelled, booked today for tomorrow); "
          f"after one near-term sync {len(expected) - len(wrong)} are in Postgres"
          + (f"; NOT: {list(wrong.items())[:5]}" if wrong else "") + f"; stays flagged missing: {flagged}")
    worst = 30 * 60 + near["seconds"]
    worst_real = 30 * 60 + near["requests"] * args.real_latency / concurrency
    print(f"worst staleness of a stay arriving within 48 h, without webhooks: 30 min + the near-term sync = "
          f"{worst / 60:.1f} min here, {worst_real / 60:.1f} min at {args.real_latency} s a call "
          f"(before: 30 min + the full sync, {(30 * 60 + full['requests'] * args.real_latency / concurrency) / 60:.0f} min "
          f"at {args.real_latency} s a call); target no worse than before: {verdict(not wrong and worst_real <= 30 * 60 + full['requests'] * args.real_latency / concurrency)}")
    print("with webhooks: seconds (benchmarks/bench_webhook_latency.py)")
    print(load.line())


if __name__ == "__main__":
    main()
