"""Benchmark: from a booking (or a cancellation) in Stays to its PIN created on (deleted from) the lock.

Not a test; it prints figures and never fails a build. From the repo root:

    .venv/bin/python benchmarks/bench_webhook_latency.py [--stays 50] [--every 6]

The whole deployment as `lock-pipeline up` runs it (embedded Postgres, Dagster webserver + daemon
+ code server, the webhook receiver on loopback), started as a subprocess with a fresh data
directory. Only Stays and Tuya are this script's: a Stays sandbox with ``--stays`` listings and
no bookings, and a Tuya sandbox with one lock per listing (named like it, confirmed as
the admin would), both in this process so it can watch them. The Stays sandbox POSTs its webhooks to
the receiver, as the real Stays does to the URL registered with it.

Once the first sync has confirmed every mapping: one booking per listing, arriving today with its
access window already open (its PIN is due at once), one every ``--every`` seconds; then each is
cancelled the same way. The lock is watched every 0.1 s. For each event, the parts:

- delivery: the change in Stays to its webhook stored by the receiver (stays_webhooks.received_at);
- sensor: stored to the run created (``stays_webhooks_sensor``, every 5 s, plus the daemon's tick);
- start-up: run created to run started (the queued-run coordinator, then a new process);
- in the run: run started to the PIN on (off) the lock (re-fetch from Stays, upsert, the Tuya calls).

Today's figure (no webhooks): the booking waits for the next 30-minute sync, so 0 to 30 minutes
(median 15, p95 28.5, uniform over the half hour), plus that sync's run and the PIN run after it.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import httpx  # noqa: E402

import benchlib  # noqa: E402
from benchlib import verdict  # noqa: E402

UP = benchlib.REPO / ".venv" / "bin" / "lock-pipeline"
ZONE = ZoneInfo("America/Sao_Paulo")
_DROP_ENV = re.compile(r"^(STAYS_|TUYA_|LOCK_PIPELINE_|DAGSTER_HOME$|REQUESTS_CA_BUNDLE$|SSL_CERT_FILE$)")
CLIENT_ID = "bench-client"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_world(n: int):
    from lock_pipeline.sandbox.seed import Seed, SeedLock, listing_record, tuya_device_id

    seed = Seed()
    for index in range(n):
        name = f"Bench Apto {index + 101}"
        seed.listings.append(listing_record(index, name, name, "Rua Bench", str(100 + index), "", "São Paulo", seed=5))
        seed.locks.append(SeedLock(device_id=tuya_device_id("bench", index), name=f"Fechadura {name}"))
    return seed


class LockWatcher(threading.Thread):
    """When each stay's PIN first appeared on its lock, and when it was deleted (polled every 0.1 s)."""

    def __init__(self, tuya, devices: list[str]) -> None:
        super().__init__(daemon=True)
        self.tuya, self.devices = tuya, devices
        self.created: dict[str, float] = {}
        self.deleted: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.time()
            for device in self.devices:
                for pin in self.tuya.pins(device):
                    code = pin.name.removeprefix("LP ").split(" ")[0] if pin.name.startswith("LP ") else None
                    if code is None:
                        continue
                    if pin.phase != 0:
                        self.created.setdefault(code, now)
                    elif code in self.created:
                        self.deleted.setdefault(code, now)
            self.stop.wait(0.1)


def graphql_runs(port: int, run_ids: list[str]) -> dict[str, dict]:
    query = """query Runs($ids: [String!]) { runsOrError(filter: {runIds: $ids}) {
        ... on Runs { results { runId status creationTime startTime endTime } } } }"""
    answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": {"ids": run_ids}},
                        timeout=30)
    return {r["runId"]: r for r in answer.json()["data"]["runsOrError"]["results"]}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def describe(values: list[float]) -> str:
    if not values:
        return "no data"
    return (f"median {statistics.median(values):6.1f} s   p95 {percentile(values, 0.95):6.1f} s   "
            f"min {min(values):5.1f} s   max {max(values):6.1f} s   (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, default=50, help="bookings (and then cancellations), one listing each")
    parser.add_argument("--every", type=float, default=6.0, help="seconds between two events")
    parser.add_argument("--keep", action="store_true", help="keep the data directory (printed)")
    args = parser.parse_args()


    from lock_pipeline.sandbox.stays_server import StaysSandbox
    from lock_pipeline.sandbox.tuya_cloud import TuyaSandbox
    from lock_pipeline.storage.database import engine_for
    from lock_pipeline.stays.receiver import webhook_url

    benchlib.banner(f"Stays webhook -> PIN on the lock: {args.stays} bookings and {args.stays} cancellations")
    print(benchlib.machine_line())
    home = Path(tempfile.mkdtemp(prefix="lp-bench-webhooks-"))
    os.chmod(home, 0o755)
    ui_port, receiver_port = free_port(), free_port()
    token = secrets.token_urlsafe(24)
    seed = build_world(args.stays)
    stays = StaysSandbox(seed, client_id=CLIENT_ID, client_secret="bench-secret",
                         webhook_url=webhook_url(f"http://127.0.0.1:{receiver_port}", token)).start()
    tuya = TuyaSandbox(seed.locks).start()
    env = {k: v for k, v in os.environ.items() if not _DROP_ENV.match(k)}
    env.update({
        "LOCK_PIPELINE_HOME": str(home), "LOCK_PIPELINE_WEBHOOK_PORT": str(receiver_port),
        "LOCK_PIPELINE_WEBHOOK_TOKEN": token, "LOCK_PIPELINE_CODE_SERVER_PORT": str(free_port()),
        "STAYS_BASE_URL": stays.base_url, "STAYS_CLIENT_ID": CLIENT_ID, "STAYS_CLIENT_SECRET": "bench-secret",
        "TUYA_BASE_URL": tuya.base_url, "TUYA_ACCESS_ID": tuya.access_id, "TUYA_ACCESS_SECRET": tuya.access_secret,
        "REQUESTS_CA_BUNDLE": tuya.ca_cert_path,
    })
    log = open(home / "up.log", "w")  # noqa: SIM115 - closed at the end
    up = subprocess.Popen([str(UP), "up", "--port", str(ui_port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                          start_new_session=True, cwd=home)
    watcher = LockWatcher(tuya, [lock.device_id for lock in seed.locks])
    try:
        started = time.time()
        url = _wait_for_database(home, up)
        engine = engine_for(url)
        _wait(lambda: _mappings(engine, "suggested") >= args.stays, 420, up, "a suggested lock for every listing")
        _confirm_every_mapping(engine, seed)
        print(f"deployment up and {args.stays} mappings confirmed after {time.time() - started:.0f} s")
        watcher.start()
        today = datetime.now(ZONE).date()
        check_in_time = (datetime.now(ZONE) + timedelta(hours=1)).strftime("%H:%M")
        booked: dict[str, float] = {}
        cancelled: dict[str, float] = {}
        codes: list[str] = []
        for index, listing in enumerate(seed.listings):
            record = _admin(stays, "POST", "/reservations", {
                "listing": listing["id"], "checkInDate": today.isoformat(),
                "checkOutDate": (today + timedelta(days=2)).isoformat(), "checkInTime": check_in_time,
                "guestName": f"Hóspede {index}"})
            booked[record["id"]] = time.time()
            codes.append(record["id"])
            time.sleep(args.every)
        _wait(lambda: len(watcher.created) >= len(codes), 300, up, "every PIN on its lock")
        for code in codes:
            _admin(stays, "POST", f"/reservations/{code}/cancel")
            cancelled[code] = time.time()
            time.sleep(args.every)
        _wait(lambda: len(watcher.deleted) >= len(codes), 300, up, "every PIN deleted", fatal=False)
        watcher.stop.set()
        report(engine, ui_port, watcher, booked, cancelled)
    finally:
        watcher.stop.set()
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
        log.close()
        stays.stop()
        tuya.stop()
        if args.keep:
            print(f"data directory kept: {home}")


def _admin(stays, method: str, path: str, body: dict | None = None) -> dict:
    answer = httpx.request(method, stays.admin_url + path, json=body, auth=(CLIENT_ID, "bench-secret"), timeout=10)
    answer.raise_for_status()
    return answer.json()


def _wait(condition, seconds: float, up: subprocess.Popen, what: str, fatal: bool = True) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if up.poll() is not None:
            raise SystemExit(f"lock-pipeline up exited ({up.returncode}) while waiting for {what}")
        try:
            if condition():
                return True
        except Exception:  # noqa: BLE001 - the database may not be up yet
            pass
        time.sleep(0.5)
    if fatal:
        raise SystemExit(f"gave up after {seconds:.0f} s waiting for {what}")
    print(f"(gave up after {seconds:.0f} s waiting for {what})")
    return False


def _wait_for_database(home: Path, up: subprocess.Popen) -> str:
    """The embedded server's URL, once `up` has started it and installed the schema."""
    _wait(lambda: "Dagster UI:" in (home / "up.log").read_text(), 180, up, "the embedded Postgres and schema")
    out = subprocess.run([str(UP), "db-url"], env={**os.environ, "LOCK_PIPELINE_HOME": str(home)},
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip().splitlines()[-1]


def _mappings(engine, status: str) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pipeline.lock_mappings WHERE status = :s"), {"s": status}).scalar()


def _confirm_every_mapping(engine, seed) -> None:
    """What the admin does in the UI: the names differ by one digit, so the matcher suggests but never
    auto-confirms (by design)."""
    from lock_pipeline.mapping.store import decide

    with engine.begin() as conn:
        for listing in seed.listings:
            decide(conn, "confirm", listing["id"], None, "benchmark", datetime.now(timezone.utc))


def report(engine, ui_port: int, watcher: LockWatcher, booked: dict[str, float],
           cancelled: dict[str, float]) -> None:
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text("""
            SELECT w.action, r.code, w.received_at, w.run_id FROM pipeline.stays_webhooks w
            LEFT JOIN pipeline.reservations r ON r.reservation_id = w.reservation_id
            WHERE w.run_id IS NOT NULL ORDER BY w.received_at""")).all()
    received = {(row.action, row.code): (row.received_at.timestamp(), row.run_id) for row in rows}
    runs = graphql_runs(ui_port, sorted({run_id for _t, run_id in received.values()}))
    for label, action, events, done in (("booking -> PIN on the lock", "reservation.created", booked, watcher.created),
                                        ("cancellation -> PIN deleted", "reservation.canceled", cancelled,
                                         watcher.deleted)):
        totals, delivery, sensor, start_up, in_run = [], [], [], [], []
        for code, at in events.items():
            if code not in done:
                continue
            totals.append(done[code] - at)
            got = received.get((action, code))
            run = runs.get(got[1]) if got else None
            if got is None or run is None or run["startTime"] is None:
                continue
            delivery.append(got[0] - at)
            sensor.append(run["creationTime"] - got[0])
            start_up.append(run["startTime"] - run["creationTime"])
            in_run.append(done[code] - run["startTime"])
        print(f"\n{label}: {len(totals)} of {len(events)} reached the lock")
        print(f"  end to end      {describe(totals)}")
        print(f"  - delivery      {describe(delivery)}   (the change in Stays to the webhook stored)")
        print(f"  - sensor        {describe(sensor)}   (stored to run created: 5 s sensor + daemon tick)")
        print(f"  - start-up      {describe(start_up)}   (run created to started: queue + new process)")
        print(f"  - in the run    {describe(in_run)}   (re-fetch, upsert, Tuya calls)")
        if totals:
            median, p95 = statistics.median(totals), percentile(totals, 0.95)
            print(f"  target: median < 30 s, p95 < 60 s -> {verdict(median < 30 and p95 < 60 and len(totals) == len(events))}")
    print("\ntoday, without webhooks: the next 30-minute sync -> 0 to 30 min of waiting (median 15 min, p95 28.5 min),"
          " plus the sync's run and the PIN run after it")
    runs_per_event = len({run_id for _t, run_id in received.values()}) / max(1, len(received))
    print(f"webhook runs: {len(runs)} for {len(received)} webhooks ({runs_per_event:.2f} runs a webhook: "
          "webhooks arriving within one sensor interval share a run)")


def _exit_on_sigterm(signum, _frame) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # so the finally block stops `lock-pipeline up` (a timeout, a kill)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started_at = datetime.now(timezone.utc)
    main()
    print(f"\n(wall clock {(datetime.now(timezone.utc) - started_at).total_seconds() / 60:.1f} min)")
