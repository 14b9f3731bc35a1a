"""Benchmark: a full Stays -> Postgres sync of 5,000 listings and 100,000 stays, then a rerun.

Not a test; it prints figures and ratios and always exits 0 unless it crashes. From the repo root:

    .venv/bin/python benchmarks/bench_sync.py [--scale 1.0] [--runs 3] [--latency 0.02]

Code path: the real ``StaysSync.sync_listings`` + ``StaysSync.sync_reservations``
(lock_pipeline/stays/sync.py) with a real ``StaysClient`` (httpx, 20 rows a page, 4 pages in
flight, its default timeout and retries), into a fresh embedded Postgres with the real schema
(``apply_migrations``). One ``SyncWindow`` covers every generated arrival, which is what the
``stays_reservations`` asset does for a single-run backfill of all the months of the window.
Dagster itself is not in the timed path (its per-run overhead is a few hundred ms and does not
grow with the feed).

The feed is served by the Stays sandbox (``StaysSandbox``, ``page_latency`` 0.02 s) in a
child process, so the pipeline process's memory and CPU are its own (the real API is remote).
The sandbox filters and sorts a query's rows once and pages from that list until the data
changes; that first computation happens before the timed syncs.

Per run (fresh database each time):
- first sync: wall time, pages/requests, pipeline-process peak RSS, Postgres and sandbox RSS;
- the API floor: pages x latency / concurrency, and fetch time / floor;
- the database floor: the same reservation rows (read back from pipeline.reservations) COPYed
  into an empty table with the same columns (``LIKE pipeline.reservations``), median of 3,
  measured in the same run; write time / floor. "Write time" is the sync's own write step
  (``_write_reservations``: new rows COPYed straight into pipeline.reservations, changed rows
  through a temp table and one INSERT .. ON CONFLICT). The sync's database time is reading the
  stored rows and listings plus its write transaction; parsing happens while pages arrive
  (``SyncResult.plan_seconds``) and is shown inside the fetch;
- second sync, nothing changed at the source: created/updated counts, rows whose
  last_seen_at/updated_at moved (must be 0), and its database time / the first's.
With --tracemalloc, one extra first sync runs under tracemalloc (Python allocation peak; slow).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import random
import sys
import time
import tracemalloc
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import benchlib  # noqa: E402
from benchlib import BENCH_NOW, MiB, mib, median, spread, verdict  # noqa: E402

ZONE = "America/Sao_Paulo"
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
TARGETS = {
    "wall_s": 60.0, "fetch_ratio": 1.5, "write_ratio": 3.0, "peak_bytes": 1 * 2**30, "second_db_share": 0.25,
}


# ---------------------------------------------------------------------------- the feed

def today_local() -> date:
    return BENCH_NOW.astimezone(ZoneInfo(ZONE)).date()


def sync_window():
    from lock_pipeline.stays.sync import SyncWindow

    today = today_local()
    return SyncWindow(today - timedelta(days=30), today + timedelta(days=365), "arrival")


_BUILDINGS = ["Atlântica", "Mirante", "Solar das Palmeiras", "Mar Azul", "Jardim Europa", "Aurora", "Horizonte",
              "Veneza", "Florença", "Ipê Amarelo", "Jacarandá", "Girassol", "Guanabara", "Netuno", "Bossa Nova"]
_HOODS = [("Copacabana", "Rio de Janeiro"), ("Ipanema", "Rio de Janeiro"), ("Leblon", "Rio de Janeiro"),
          ("Pinheiros", "São Paulo"), ("Moema", "São Paulo"), ("Barra", "Salvador"), ("Jurerê", "Florianópolis")]
_GUESTS = ["Maria Silva", "João Souza", "Ana Costa", "Pedro Lima", "Luíza Araújo", "Carlos Almeida",
           "Fernanda Santos", "Rafael Oliveira", "Juliana Pereira", "Lucas Rodrigues", "José Gonçalves"]
_PARTNERS = [("Airbnb", "HM"), ("Booking.com", "BK"), ("Direto", "DR")]


def build_feed(n_listings: int, n_stays: int, seed: int = 11) -> tuple[list[dict], list[dict]]:
    """Listings and stays in Stays' wire shape (lock_pipeline/sandbox/seed.py helpers), arrivals
    spread over the sync window: mostly booked, some cancelled, some owner/maintenance blocks."""
    from lock_pipeline.sandbox.seed import hex_id, listing_record, reservation_record, short_code

    rng = random.Random(seed)
    window = sync_window()
    listings = []
    for index in range(n_listings):
        building = _BUILDINGS[index % len(_BUILDINGS)]
        hood, city = _HOODS[(index // len(_BUILDINGS)) % len(_HOODS)]
        unit = f"{1 + index // 100 % 30}{index % 100:02d}"
        listings.append(listing_record(index, f"Ed. {building} - Apto {unit} #{index}", f"Vista em {hood}",
                                       "Rua Bench", str(10 + index % 3000), f"Apto {unit}", city, seed=seed))
    stays: list[dict] = []
    per_listing, extra = divmod(n_stays, n_listings)
    for index, listing in enumerate(listings):
        count = per_listing + (1 if index < extra else 0)
        cursor = window.from_date + timedelta(days=rng.randrange(0, 10))
        span = (window.to_date - cursor).days
        mean_step = max(1, span // max(1, count))  # spread arrivals over the whole window
        for number in range(count):
            nights = rng.choice([2, 3, 3, 4, 5, 7])
            nights = min(nights, max(1, mean_step - 1))
            roll = rng.random()
            stays_type = "canceled" if roll < 0.05 else "blocked" if roll < 0.08 else "booked"
            stays.append(reservation_record(
                reservation_id=hex_id("bench-stay", seed, index, number),
                code=short_code(rng),
                listing_id=listing["_id"],
                check_in=cursor,
                check_out=cursor + timedelta(days=nights),
                check_in_time=rng.choice(["14:00", "15:00", "15:00", "16:00", None]),
                check_out_time=rng.choice(["10:00", "11:00", "11:00", "12:00"]),
                guest_name=rng.choice(_GUESTS),
                stays_type=stays_type,
                partner=rng.choice(_PARTNERS),
            ))
            cursor = min(window.to_date, cursor + timedelta(days=max(nights, mean_step + rng.randrange(-1, 2))))
    return listings, stays


def serve_stays(conn, n_listings: int, n_stays: int, latency: float) -> None:
    """Child process: build the feed, serve it, answer "count" / "rss" / "stop" on the pipe."""
    import warnings as _warnings

    _warnings.filterwarnings("ignore")
    import psutil

    from lock_pipeline.sandbox.seed import Seed
    from lock_pipeline.sandbox.stays_server import StaysSandbox
    from lock_pipeline.stays.client import ALL_RESERVATION_TYPES

    started = time.perf_counter()
    listings, stays = build_feed(n_listings, n_stays)
    built = time.perf_counter() - started
    window = sync_window()
    query = {"from": [window.from_date.isoformat()], "to": [window.to_date.isoformat()],
             "dateType": [window.date_type], "type": list(ALL_RESERVATION_TYPES)}
    sandbox = StaysSandbox(Seed(listings=listings, reservations=stays), client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                  page_latency=latency)
    # The sandbox filters and sorts a query's rows once, then serves its pages from that list;
    # do that first computation outside the timed syncs (the real API is remote: its cost is not ours).
    probe = time.perf_counter()
    sandbox._find_reservations(query)
    first_query = time.perf_counter() - probe
    sandbox.start()
    conn.send({"base_url": sandbox.base_url, "listings": len(listings), "stays": len(stays),
               "build_seconds": built, "first_query_s": first_query, "pid": os.getpid()})
    while True:
        command = conn.recv()
        if command == "count":
            conn.send(sandbox.request_count)
        elif command == "rss":
            conn.send(psutil.Process().memory_info().rss)
        elif command == "stop":
            sandbox.stop()
            conn.send("stopped")
            return


# ---------------------------------------------------------------------------- instrumented sync

class TimedSource:
    """Forwards to a StaysClient and times each call (the sync only sees a StaysSource)."""

    def __init__(self, client) -> None:
        self.client = client
        self.seconds: dict[str, float] = defaultdict(float)

    def list_listings(self, status=None):
        started = time.perf_counter()
        try:
            return self.client.list_listings(status)
        finally:
            self.seconds["listings"] += time.perf_counter() - started

    def iter_reservation_pages(self, from_date, to_date, *, date_type="arrival"):
        """The client's page stream; the CPU figure includes the sync's planning, which runs between pages."""
        pages = self.client.iter_reservation_pages(from_date, to_date, date_type=date_type)
        started, cpu = time.perf_counter(), time.process_time()
        try:
            yield from pages
        finally:
            self.seconds["reservations"] += time.perf_counter() - started
            self.seconds["reservations_cpu"] += time.process_time() - cpu

    def get_reservation(self, id_or_code):
        started = time.perf_counter()
        try:
            return self.client.get_reservation(id_or_code)
        finally:
            self.seconds["lookups"] += time.perf_counter() - started


def profiled_sync_class():
    from lock_pipeline.stays.sync import StaysSync

    class ProfiledSync(StaysSync):
        """The real StaysSync; only adds timers around its database steps."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.phase: dict[str, float] = defaultdict(float)

        def _timed(self, name, fn, *args):
            started = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.phase[name] += time.perf_counter() - started

        def _upsert_listings(self, conn, listings, now):
            return self._timed("listing_upsert", super()._upsert_listings, conn, listings, now)

        def _listing_defaults(self, conn):
            return self._timed("listing_defaults", StaysSync._listing_defaults, conn)

        def _existing_in_window(self, conn, window):
            return self._timed("read_existing", StaysSync._existing_in_window, conn, window)

        def _write_reservations(self, conn, plan):
            return self._timed("write", StaysSync._write_reservations, conn, plan)

        def _store_quarantine(self, conn, quarantine, sync_id, now):
            return self._timed("quarantine", StaysSync._store_quarantine, conn, quarantine, sync_id, now)

    return ProfiledSync


def one_sync(url: str, base_url: str, now: datetime, latency: float, pids) -> dict:
    from lock_pipeline.stays.client import StaysClient
    from lock_pipeline.storage.database import engine_for

    engine = engine_for(url)
    sync_cls = profiled_sync_class()
    figures: dict = {}
    with benchlib.RssSampler(lambda: [os.getpid()]) as own, benchlib.RssSampler(pids, interval=0.25) as others:
        started = time.perf_counter()
        with StaysClient(base_url, CLIENT_ID, CLIENT_SECRET) as client:
            source = TimedSource(client)
            sync = sync_cls(engine, source, now=lambda: now, default_time_zone=ZONE,
                            default_check_in=datetime.strptime("15:00", "%H:%M").time(),
                            default_check_out=datetime.strptime("11:00", "%H:%M").time(), run_id="bench")
            listing_result = sync.sync_listings()
            n_listing_pages = client.stats.pages
            result = sync.sync_reservations(sync_window())
            figures["wall"] = time.perf_counter() - started
            figures["pages"] = client.stats.pages
            figures["requests"] = client.stats.requests
            figures["retries"] = client.stats.retries
            figures["concurrency"] = client.concurrency
    figures["peak_own"] = own.peak
    figures["peak_others"] = others.peak
    figures["listings"] = listing_result
    figures["result"] = result
    figures["fetch"] = source.seconds["listings"] + source.seconds["reservations"] + source.seconds["lookups"]
    figures["fetch_parts"] = dict(source.seconds)
    figures["fetch_cpu_per_page_ms"] = 1000 * source.seconds["reservations_cpu"] / max(1, figures["pages"] - n_listing_pages)
    figures["phase"] = dict(sync.phase)
    figures["floor"] = figures["pages"] * latency / figures["concurrency"]
    return figures


COLUMNS = ("reservation_id, code, listing_id, stays_type, kind, status, check_in_date, check_in_time, check_out_date,"
           " check_out_time, time_zone, check_in_at, check_out_at, guest_first_name, content_hash, first_seen_at,"
           " last_seen_at, updated_at, cancelled_at, missing_since")


def copy_floor(url: str, repeats: int = 3) -> dict:
    """COPY the rows the sync wrote into an empty table with the same columns (plain, then with indexes)."""
    conn = benchlib.raw_connection(url)
    try:
        cur = conn.cursor()
        buffer = io.StringIO()
        cur.copy_expert(f"COPY (SELECT {COLUMNS} FROM pipeline.reservations) TO STDOUT", buffer)
        payload = buffer.getvalue()
        conn.commit()
        figures = {"rows": payload.count("\n"), "bytes": len(payload)}
        for label, like in (("plain", "LIKE pipeline.reservations"),
                            ("indexed", "LIKE pipeline.reservations INCLUDING ALL")):
            times = []
            for _ in range(repeats):
                cur.execute("DROP TABLE IF EXISTS public.bench_copy_floor")
                cur.execute(f"CREATE TABLE public.bench_copy_floor ({like})")
                conn.commit()
                started = time.perf_counter()
                cur.copy_expert(f"COPY public.bench_copy_floor ({COLUMNS}) FROM STDIN", io.StringIO(payload))
                conn.commit()
                times.append(time.perf_counter() - started)
            figures[label] = median(times)
        cur.execute("DROP TABLE IF EXISTS public.bench_copy_floor")
        conn.commit()
        return figures
    finally:
        conn.close()


def rows_touched_since(url: str, since: datetime) -> tuple[int, int]:
    conn = benchlib.raw_connection(url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM pipeline.reservations WHERE last_seen_at >= %s OR updated_at >= %s",
                    (since, since))
        reservations = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM pipeline.listings WHERE last_seen_at >= %s OR updated_at >= %s",
                    (since, since))
        return reservations, cur.fetchone()[0]
    finally:
        conn.close()


def python_parse_cost(raw: list[object]) -> dict[str, float]:
    """Pure-Python cost over the same feed (no database): full parse + prepare, and the fingerprint alone."""
    from datetime import time as dtime

    from lock_pipeline.stays.records import InvalidRecord, parse_reservation, reservation_fingerprint
    from lock_pipeline.stays.sync import ListingDefaults, prepare_reservation

    defaults = ListingDefaults(ZONE, dtime(15), dtime(11))
    started = time.perf_counter()
    for item in raw:
        try:
            prepare_reservation(parse_reservation(item), defaults)
        except InvalidRecord:
            pass
    parse = time.perf_counter() - started
    started = time.perf_counter()
    for item in raw:
        reservation_fingerprint(item, defaults.fingerprint_salt)
    return {"parse": parse, "fingerprint": time.perf_counter() - started}


def database_seconds(figures: dict) -> float:
    """The sync's own time in Postgres: reading the stored rows and listings, then the write transaction."""
    phase = figures["phase"]
    return phase.get("read_existing", 0.0) + phase.get("listing_defaults", 0.0) + figures["result"].write_seconds


# ---------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 5,000 listings, 100,000 stays")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.02, help="sandbox page latency, seconds")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="add one traced first sync (tracemalloc peak; about 130 s more at full scale)")
    parser.add_argument("--keep-page-guard", action="store_true",
                        help="keep StaysClient's MAX_PAGES guard even when the feed is larger (the sync then fails)")
    args = parser.parse_args()
    n_listings, n_stays = max(1, round(5000 * args.scale)), max(1, round(100_000 * args.scale))
    _page_guard(n_stays, args.keep_page_guard)

    load = benchlib.ForeignLoad()
    print(f"bench_sync: {n_listings} listings, {n_stays} stays, page latency {args.latency} s, "
          f"{args.runs} run(s); {benchlib.machine_line()}", flush=True)
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=serve_stays, args=(child_end, n_listings, n_stays, args.latency), daemon=True)
    child.start()
    info = parent_end.recv()
    expected_pages = (n_listings // 20 + 1) + (n_stays // 20 + 1)
    print(f"feed built in {info['build_seconds']:.1f} s; sandbox at {info['base_url']} (its first filter-and-sort "
          f"of the window: {info['first_query_s']:.2f} s, then cached)", flush=True)

    parse_cost = python_parse_cost(build_feed(n_listings, n_stays)[1])
    print(f"Python cost over the whole feed, no database: parse + prepare {parse_cost['parse']:.2f} s "
          f"(what a new or changed stay costs); fingerprint only {parse_cost['fingerprint']:.2f} s "
          f"(what an unchanged stay costs)", flush=True)
    runs = []
    try:
        with benchlib.embedded_server("lp-bench-sync-") as server:
            pids = lambda: [p for p in (server.postmaster_pid,) if p]  # noqa: E731
            for number in range(1, args.runs + 1):
                url = benchlib.fresh_database(server, f"bench_sync_{number}")
                requests_before = _ask(parent_end, "count")
                first = one_sync(url, info["base_url"], BENCH_NOW, args.latency, pids)
                first["sandbox_requests"] = _ask(parent_end, "count") - requests_before
                floor = copy_floor(url)
                later = BENCH_NOW + timedelta(minutes=30)
                second = one_sync(url, info["base_url"], later, args.latency, pids)
                touched = rows_touched_since(url, later)
                run = {"first": first, "second": second, "copy": floor, "touched": touched, "parse": parse_cost}
                runs.append(run)
                _print_run(number, run)
            if args.tracemalloc:
                url = benchlib.fresh_database(server, "bench_sync_traced")
                tracemalloc.start()
                traced = one_sync(url, info["base_url"], BENCH_NOW, args.latency, pids)
                _, traced_peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                print(f"traced run: tracemalloc peak {mib(traced_peak)} of Python allocations during one first sync "
                      f"(wall {traced['wall']:.1f} s under tracing, not comparable)", flush=True)
            else:
                traced_peak = None
            sandbox_rss = _ask(parent_end, "rss")
    finally:
        try:
            _ask(parent_end, "stop")
        except Exception:  # noqa: BLE001
            pass
        child.join(timeout=10)
        if child.is_alive():
            child.terminate()

    _summary(runs, args, info, expected_pages, traced_peak, sandbox_rss)
    print(load.line())


def _page_guard(n_stays: int, keep: bool) -> None:
    """StaysClient refuses to read past MAX_PAGES full pages (its guard against a server that ignores
    skip). At 20 rows a page that caps one query at 100,000 rows: a feed of exactly 100,000 stays in one
    window fails ("more than 5000 full pages; refusing to read on"). Say so, then lift the guard in this
    process only (unless --keep-page-guard), so the rest of the sync can be measured."""
    from lock_pipeline.stays import client as stays_client

    cap = stays_client.MAX_PAGES * stays_client.MAX_PAGE_SIZE
    if n_stays < cap:
        return
    print(f"FINDING: {n_stays} stays in one window >= StaysClient's cap of MAX_PAGES {stays_client.MAX_PAGES} x "
          f"{stays_client.MAX_PAGE_SIZE} = {cap} rows: the real sync fails with StaysFetchFailed "
          f"('more than {stays_client.MAX_PAGES} full pages; refusing to read on') and writes nothing. "
          + ("Guard kept (--keep-page-guard): expect the failure." if keep else
             f"Lifted to {stays_client.MAX_PAGES * 10} pages in this benchmark process only, to measure the rest."),
          flush=True)
    if not keep:
        stays_client.MAX_PAGES *= 10


def _ask(pipe, command: str):
    pipe.send(command)
    return pipe.recv()


def _print_run(number: int, run: dict) -> None:
    first, second, floor = run["first"], run["second"], run["copy"]
    r1, r2 = first["result"], second["result"]
    write = first["phase"].get("write", 0.0)
    print(f"run {number}: first sync {first['wall']:.1f} s: fetch {first['fetch']:.1f} s "
          f"({first['pages']} pages, {first['requests']} requests, floor {first['floor']:.1f} s, "
          f"x{first['fetch'] / first['floor']:.2f}; planning the pages as they came {r1.plan_seconds:.2f} s of it); "
          f"database {database_seconds(first):.2f} s (write step {write:.2f} s = x{write / floor['plain']:.2f} "
          f"of COPY {floor['plain']:.2f} s, x{write / floor['indexed']:.2f} of an indexed COPY {floor['indexed']:.2f} s); "
          f"created {r1.created}, cancelled {r1.cancelled}, quarantined {r1.quarantined}; "
          f"peak RSS {mib(first['peak_own'])}", flush=True)
    print(f"       second sync {second['wall']:.1f} s: fetch {second['fetch']:.1f} s (planning {r2.plan_seconds:.2f} s); "
          f"database {database_seconds(second):.2f} s = x{database_seconds(second) / database_seconds(first):.2f} "
          f"of the first's (read existing {second['phase'].get('read_existing', 0):.2f} s, write transaction "
          f"{r2.write_seconds:.2f} s); created {r2.created}, updated {r2.updated}, unchanged {r2.unchanged}; "
          f"listings written {second['listings'].written}; rows touched {run['touched'][0]} reservations, "
          f"{run['touched'][1]} listings", flush=True)


def _summary(runs: list[dict], args, info: dict, expected_pages: int, traced_peak: int | None,
             sandbox_rss: int) -> None:
    if not runs:
        return
    first = [r["first"] for r in runs]
    second = [r["second"] for r in runs]
    wall = [f["wall"] for f in first]
    fetch_ratio = [f["fetch"] / f["floor"] for f in first]
    write = [f["phase"].get("write", 0.0) for f in first]
    copy_plain = [r["copy"]["plain"] for r in runs]
    copy_indexed = [r["copy"]["indexed"] for r in runs]
    write_ratio = [w / c for w, c in zip(write, copy_plain)]
    write_ratio_indexed = [w / c for w, c in zip(write, copy_indexed)]
    db_phase = [database_seconds(f) for f in first]
    db_ratio = [d / c for d, c in zip(db_phase, copy_plain)]
    second_db = [database_seconds(s) for s in second]
    second_share = [s / f for s, f in zip(second_db, db_phase)]
    plan_first = [f["result"].plan_seconds for f in first]
    plan_second = [s["result"].plan_seconds for s in second]
    peaks = [f["peak_own"] for f in first]
    pg_peaks = [f["peak_others"] for f in first]
    written_second = [s["result"].created + s["result"].updated for s in second]
    touched = [r["touched"][0] + r["touched"][1] for r in runs]

    benchlib.banner("bench_sync summary")
    print(f"data: {first[0]['result'].fetched} stays fetched, {first[0]['listings'].fetched} listings; "
          f"pages per sync: {first[0]['pages']} (expected {expected_pages}), requests {first[0]['requests']}, "
          f"retries {first[0]['retries']}")
    print(f"whole first sync (listings + reservations): {spread(wall)}  target < {TARGETS['wall_s']:.0f} s: "
          f"{verdict(median(wall) < TARGETS['wall_s'])}")
    print(f"  fetch: {spread([f['fetch'] for f in first])}; API floor pages x latency / concurrency = "
          f"{median([f['floor'] for f in first]):.1f} s")
    print(f"  fetch / floor: {spread(fetch_ratio, 'x')}  target <= 1.5x: {verdict(median(fetch_ratio) <= 1.5)}")
    print(f"  of the fetch, planning pages in the sync's thread as they arrive (parse, validate, instants, COPY "
          f"text; overlaps the requests in flight): {spread(plan_first)}")
    print(f"  pipeline-process CPU per reservations page while fetching (httpx, JSON, threads, planning): "
          f"{spread([f['fetch_cpu_per_page_ms'] for f in first], 'ms', 2)} against a per-page floor of "
          f"{1000 * args.latency / first[0]['concurrency']:.1f} ms (latency / concurrency)")
    print(f"  write step (new rows COPYed into pipeline.reservations; changed rows COPY -> temp + upsert): "
          f"{spread(write)}; plain COPY of the same "
          f"{runs[0]['copy']['rows']} rows into an empty table: {spread(copy_plain)} "
          f"(into a copy with the same indexes and checks: {spread(copy_indexed)})")
    print(f"  write / plain COPY: {spread(write_ratio, 'x')}  target <= 3x: {verdict(median(write_ratio) <= 3)}; "
          f"write / indexed COPY: {spread(write_ratio_indexed, 'x')}")
    print(f"  database time (read stored rows and listings, write transaction incl. commit): {spread(db_phase)} "
          f"= {spread(db_ratio, 'x')} of plain COPY")
    parts = defaultdict(list)
    for f in first:
        for key, value in f["phase"].items():
            parts[key].append(value)
    print("  DB phase steps (median): " + ", ".join(f"{k} {median(v):.2f} s" for k, v in sorted(parts.items())))
    print(f"  peak RSS of the pipeline process during the sync: {spread([p / MiB for p in peaks], 'MiB', 0)}  "
          f"target < 1 GiB: {verdict(median(peaks) < TARGETS['peak_bytes'])}")
    if traced_peak is not None:
        print(f"  tracemalloc peak (Python allocations, one traced first sync): {mib(traced_peak)}")
    print(f"  Postgres server processes, RSS sum (shared buffers counted once per process): "
          f"{spread([p / MiB for p in pg_peaks], 'MiB', 0)}; sandbox process RSS {mib(sandbox_rss)}")
    print(f"second sync, nothing changed: {spread([s['wall'] for s in second])} wall; created+updated "
          f"{written_second}; rows touched {touched}  target 0: {verdict(max(written_second) == 0 and max(touched) == 0)}")
    print(f"  database time {spread(second_db)} = {spread(second_share, 'x')} of the first's  target < 0.25: "
          f"{verdict(median(second_share) < 0.25)}")
    print(f"  planning CPU (fingerprints; nothing parsed unless changed): {spread(plan_second)} against "
          f"{spread(plan_first)} in the first sync")


if __name__ == "__main__":
    main()
