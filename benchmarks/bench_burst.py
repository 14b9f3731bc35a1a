"""Benchmark: a burst of 1,000 PINs due at once on 1,000 locks, against a throttled Tuya cloud.

Not a test; it prints figures and ratios and never fails a build. From the repo root:

    .venv/bin/python benchmarks/bench_burst.py [--locks 1000] [--runs 1] [--latency 0.1] [--rps 20]

Set-up: a fresh embedded Postgres with the real schema; 1,000 listings, each mapped (confirmed)
to its own online lock, each with one guest arriving within the 48 h programming horizon and no
code yet (rows COPYed into pipeline.*); the Tuya sandbox (``TuyaSandbox``) holding the 1,000 locks
with ``call_latency`` 0.1 s and ``rate_limit_per_second`` 20 (its token bucket answers code 1110
beyond that). Dagster's runs and events go to Postgres too (a second database on the same
server), as in the deployment's dagster.yaml.

What runs is the real thing, in this process: one evaluation of ``pin_actions_sensor`` (batches of
``max_actions_per_run`` = 100 actions per run beyond 10 due actions), then every RunRequest it
returned is executed with ``pin_actions_job.execute_in_process`` on a pool of threads as large
as the run queue's limit of concurrent Tuya runs (read from dagster.yaml: tag ``lock_pipeline/tuya``).
Threads share one interpreter, so Dagster's per-step CPU does not run in parallel here as it
does in the deployment's separate run processes: the figure is conservative.
The Tuya resource uses the production defaults (timeout 10 s, 4 attempts, backoff 0.5 s), and
each step keeps its RetryPolicy (3 retries after 2, 4, 8 s). The console logger is set to
WARNING so the terminal is not the bottleneck; the event log is still written to Postgres.

Printed: time until every PIN is on its lock (phase 2, from the sandbox's own state: the last
successful create per lock; cross-checked by polling), the floor (Tuya calls the design made,
not counting throttled ones, / 20 rps), the ratio, a second floor for the minimum a PIN needs
(ticket + create, one token), calls per PIN by endpoint, runs launched (= processes the real
deployment starts, each paying a process start measured here), throttled answers and how many
ended a PIN in ``failed`` (throttling left unretried), peak RSS. Target: within 1.5x of the floor.
The Dagster UI: a real ``dagster-webserver`` process on the same run storage is asked for the
latest runs over GraphQL every 0.5 s during the burst; every answer's latency and every failure
is counted. Target: it keeps answering.

Then the confirm phase: a create leaves its code ``pending_on_lock`` (the create's answer does
not say the lock has the PIN) and the sensor's next tick plans a ``confirm`` (one phase read)
for each. Here that second evaluation runs as soon as the generate runs have finished, and its
runs on the same pool; printed: when every code is ``active`` in the database, and its calls.
In the deployment the tick comes every 30 s and its confirm runs queue behind the generate
runs already queued, so "active in the database" follows the last create by about this phase.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import benchlib  # noqa: E402
from benchlib import BENCH_NOW, MiB, mib, median, spread, verdict  # noqa: E402

ZONE = ZoneInfo("America/Sao_Paulo")
TARGET_RATIO = 1.5


def _tuya_run_limit() -> int:
    """The run queue's limit of concurrent Tuya runs, read from the deployment's dagster.yaml."""
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    return next(int(limit["limit"]) for limit in limits if limit["key"] == "lock_pipeline/tuya")


QUEUE_LIMIT = _tuya_run_limit()

_KINDS = [
    ("token", re.compile(r"^GET /v1\.0/token")),
    ("list_temp_passwords", re.compile(r"^GET .*/door-lock/temp-passwords$")),
    ("password_ticket", re.compile(r"^POST .*/door-lock/password-ticket$")),
    ("create_temp_password", re.compile(r"^POST .*/door-lock/temp-password$")),
    ("get_temp_password", re.compile(r"^GET .*/door-lock/temp-password/[^/]+$")),
    ("delete_temp_password", re.compile(r"^DELETE ")),
    ("devices", re.compile(r"^GET /v1\.0/(iot-01|devices/[^/]+$)")),
]


def _kind(method: str, path: str) -> str:
    line = f"{method} {path}"
    return next((name for name, pattern in _KINDS if pattern.search(line)), "other")


def counting_sandbox_class():
    from lock_pipeline.sandbox.tuya_cloud import TuyaSandbox

    class CountingTuyaSandbox(TuyaSandbox):
        """The stock sandbox; also counts answers by endpoint and code, and when each lock got its PIN."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.answers: Counter = Counter()
            self.throttled_by_kind: Counter = Counter()
            self.created_at: dict[str, float] = {}
            self._count_lock = threading.Lock()

        def _handle(self, method, target, headers, body):
            reply = super()._handle(method, target, headers, body)
            path = target.split("?", 1)[0]
            kind = _kind(method, path)
            code = "dropped" if reply is None else "ok"
            if reply is not None and reply.body[:20].startswith(b'{"success":false'):
                try:
                    code = json.loads(reply.body).get("code")
                except ValueError:
                    code = "bad"
            with self._count_lock:
                self.answers[(kind, code)] += 1
                if code == 1110:
                    self.throttled_by_kind[kind] += 1
                if kind == "create_temp_password" and code == "ok":
                    device = path.split("/")[3]
                    self.created_at[device] = time.monotonic()
            return reply

    return CountingTuyaSandbox


def load_data(url: str, n: int, seed: int = 3) -> tuple[list[str], list[str]]:
    import random

    rng = random.Random(seed)
    now = BENCH_NOW
    old = now - timedelta(days=90)
    listing_ids = [benchlib.stable_hash("burst-listing", i)[:24] for i in range(n)]
    device_ids = ["eb" + benchlib.stable_hash("burst-lock", i)[:20] for i in range(n)]
    conn = benchlib.raw_connection(url)
    cur = conn.cursor()
    benchlib.copy_rows(cur, "pipeline.listings", [
        "listing_id", "short_code", "internal_name", "title", "address", "city", "status", "time_zone",
        "default_check_in_time", "default_check_out_time", "content_hash", "first_seen_at", "last_seen_at", "updated_at",
    ], ((lid, f"B{i:04d}", f"Apto {i}", f"Apto {i}", f"Rua Burst, {i}", "Rio de Janeiro", "active",
         "America/Sao_Paulo", "15:00", "11:00", "h", old, now, old) for i, lid in enumerate(listing_ids)))
    benchlib.copy_rows(cur, "pipeline.locks", [
        "device_id", "name", "category", "product_name", "online", "pin_length", "first_seen_at", "last_seen_at",
        "last_online_at", "content_hash",
    ], ((did, f"Fechadura Apto {i}", "ms", "Wi-Fi Smart Lock", "true", 7, old, now, now, "h")
        for i, did in enumerate(device_ids)))
    benchlib.copy_rows(cur, "pipeline.lock_mappings", [
        "listing_id", "device_id", "status", "score", "source", "decided_at", "updated_at",
    ], ((lid, did, "confirmed", 100.0, "matcher", old, old) for lid, did in zip(listing_ids, device_ids)))
    rows = []
    for i, lid in enumerate(listing_ids):
        check_in = (now + timedelta(hours=1 + rng.random() * 46)).replace(minute=0, second=0, microsecond=0)
        check_out = (check_in.astimezone(ZONE) + timedelta(days=3)).replace(hour=11)
        ci, co = check_in.astimezone(ZONE), check_out.astimezone(ZONE)
        code = f"B{i:04d}"
        rows.append((benchlib.stable_hash("burst-stay", i)[:24], code, lid, "booked", "guest", "confirmed", ci.date(),
                     ci.time(), co.date(), co.time(), "America/Sao_Paulo", check_in, check_out, "Maria", "h",
                     old, now, old, None, None))
    benchlib.copy_rows(cur, "pipeline.reservations", [
        "reservation_id", "code", "listing_id", "stays_type", "kind", "status", "check_in_date", "check_in_time",
        "check_out_date", "check_out_time", "time_zone", "check_in_at", "check_out_at", "guest_first_name",
        "content_hash", "first_seen_at", "last_seen_at", "updated_at", "cancelled_at", "missing_since",
    ], rows)
    conn.commit()
    conn.autocommit = True
    cur.execute("ANALYZE")
    conn.close()
    return listing_ids, device_ids


def build_defs(url: str, sandbox, home: Path):
    from cryptography.fernet import Fernet

    from lock_pipeline.orchestration.resources import (
        ClockResource, PinVaultResource, PostgresResource, StaysResource, TuyaResource)
    from lock_pipeline.orchestration.definitions import build_definitions
    from lock_pipeline.orchestration.resources import SettingsResource
    from lock_pipeline.settings import load_settings

    settings = load_settings({"LOCK_PIPELINE_HOME": str(home)})
    resources = {
        "postgres": PostgresResource(url=url),
        "clock": ClockResource(frozen_at=BENCH_NOW.isoformat()),
        "settings": SettingsResource.of(settings),
        # production defaults for timeout, attempts and backoff (the tests shorten them)
        "tuya": TuyaResource(base_url=sandbox.base_url, access_id=sandbox.access_id,
                             access_secret=sandbox.access_secret, ca_bundle=sandbox.ca_cert_path),
        "pin_vault": PinVaultResource(key=Fernet.generate_key().decode()),
        "stays": StaysResource(base_url="http://127.0.0.1:9/external/v1", client_id="unused", client_secret="unused"),
    }
    return build_definitions(settings, resources=resources), resources


def db_states(url: str) -> dict:
    conn = benchlib.raw_connection(url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT state, count(*) FROM pipeline.access_codes GROUP BY state")
        states = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM pipeline.access_codes WHERE state = 'failed' AND last_error LIKE '%%1110%%'")
        failed_throttled = cur.fetchone()[0]
        cur.execute("SELECT outcome, count(*) FROM pipeline.access_code_events GROUP BY outcome")
        events = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM pipeline.access_code_events WHERE outcome IN ('error', 'failed') "
                    "AND detail LIKE '%%1110%%'")
        throttled_events = cur.fetchone()[0]
        return {"states": states, "failed_throttled": failed_throttled, "events": events,
                "throttled_events": throttled_events}
    finally:
        conn.close()


def one_burst(server, n: int, latency: float, rps: float, number: int) -> dict:
    from dagster import RunRequest, build_sensor_context, instance_for_test

    from lock_pipeline.clock import ManualClock
    from lock_pipeline.orchestration.access import pin_actions_sensor
    from lock_pipeline.sandbox.seed import SeedLock
    from lock_pipeline.storage.database import sqlalchemy_url

    url = benchlib.fresh_database(server, f"bench_burst_{number}")
    dagster_url = benchlib.fresh_database(server, f"bench_burst_dagster_{number}", migrate=False)
    _listing_ids, device_ids = load_data(url, n)
    sandbox = counting_sandbox_class()(
        [SeedLock(device_id=d, name=f"Fechadura Apto {i}") for i, d in enumerate(device_ids)],
        clock=ManualClock(BENCH_NOW), call_latency=latency, rate_limit_per_second=rps).start()
    home = Path(tempfile.mkdtemp(prefix="lp-bench-burst-home-"))
    figures: dict = {}
    ui = None
    try:
        defs, resources = build_defs(url, sandbox, home)
        job = defs.resolve_job_def("pin_actions_job")
        overrides = {
            "storage": {"postgres": {"postgres_url": sqlalchemy_url(dagster_url)}},
            # Runs share this process's stdout/stderr here; the local compute-log manager's per-run
            # `tail` + watcher subprocesses then stall each run's end by up to 2 x 30 s. A deployed run
            # is its own process and captures its own streams, so the benchmark turns capture off.
            "compute_logs": {"module": "dagster._core.storage.noop_compute_log_manager",
                             "class": "NoOpComputeLogManager"},
        }
        with instance_for_test(overrides=overrides, temp_dir=str(home)) as instance:
            # Threads-only shim: at each run start Dagster calls logging.config.dictConfig (instance
            # python_logs handlers, none configured here), which deadlocks against another run's
            # handler emitting an event. The deployment runs each run in its own process, so this
            # never happens there; with no python_logs configured the handler list is empty anyway.
            instance.get_yaml_python_handlers = lambda: []
            sensor_resources = {k: resources[k] for k in ("postgres", "clock", "settings")}
            # warm the engine and the schema check outside the timed burst (the daemon's process is warm)
            build_sensor_context(instance=instance, resources=sensor_resources)
            ui = UiProbe(dagster_url, home)
            figures["ui_ready_s"] = ui.wait_ready()
            on_lock_polled: dict[str, float] = {}
            stop = threading.Event()
            t0 = time.monotonic()

            def poll() -> None:
                while not stop.is_set():
                    at = time.monotonic()
                    for device in device_ids:
                        if device not in on_lock_polled and any(
                                p.phase == 2 and p.name.startswith("LP ") for p in sandbox.pins(device)):
                            on_lock_polled[device] = at
                    stop.wait(0.25)

            with benchlib.RssSampler() as own, benchlib.RssSampler(lambda: [server.postmaster_pid], 0.5) as pg:
                poller = threading.Thread(target=poll, daemon=True)
                poller.start()
                ui.start_polling()
                context = build_sensor_context(instance=instance, cursor=None, resources=sensor_resources)
                result = pin_actions_sensor(context)
                requests = [r for r in (result if isinstance(result, list) else []) if isinstance(r, RunRequest)]
                t_sensor = time.monotonic() - t0
                quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
                run_ends: list[float] = []

                def execute(request: RunRequest):
                    outcome = job.execute_in_process(run_config={**request.run_config, **quiet}, tags=request.tags,
                                                     instance=instance, raise_on_error=False)
                    run_ends.append(time.monotonic() - t0)
                    return outcome

                with ThreadPoolExecutor(max_workers=QUEUE_LIMIT, thread_name_prefix="run") as pool:
                    outcomes = list(pool.map(execute, requests))
                t_runs = time.monotonic() - t0
                stop.set()
                poller.join()
                ui.stop()
                figures["ui_latencies"] = list(ui.latencies)
                figures["ui_failures"] = list(ui.failures)
                created = dict(sandbox.created_at)
                figures["requests"] = sandbox.request_count
                figures["answers"] = dict(sandbox.answers)
                figures["throttled_by_kind"] = dict(sandbox.throttled_by_kind)
                figures.update(db_states(url))  # after the generate runs: pending_on_lock until confirmed

                # The confirm phase: the sensor's next tick (cursor carried over) and its runs.
                confirm_context = build_sensor_context(instance=instance, cursor=context.cursor,
                                                       resources=sensor_resources)
                confirm_result = pin_actions_sensor(confirm_context)
                confirm_requests = [r for r in (confirm_result if isinstance(confirm_result, list) else [])
                                    if isinstance(r, RunRequest)]
                with ThreadPoolExecutor(max_workers=QUEUE_LIMIT, thread_name_prefix="confirm") as pool:
                    confirm_outcomes = list(pool.map(execute, confirm_requests))
                t_confirmed = time.monotonic() - t0
            figures["sensor_s"] = t_sensor
            figures["runs"] = len(requests)
            figures["actions"] = sum(len(r.run_config["ops"]["planned_pin_actions"]["config"]["actions"])
                                     for r in requests)
            figures["failed_runs"] = sum(1 for o in outcomes if not o.success)
            figures["runs_done_s"] = t_runs
            figures["peak_own"] = own.peak
            figures["peak_pg"] = pg.peak
            figures["confirm_runs"] = len(confirm_requests)
            figures["confirm_failed_runs"] = sum(1 for o in confirm_outcomes if not o.success)
            figures["confirm_done_s"] = t_confirmed
        figures["on_lock"] = len(created)
        figures["all_on_lock_s"] = (max(created.values()) - t0) if len(created) >= n else None
        figures["all_on_lock_polled_s"] = (max(on_lock_polled.values()) - t0) if len(on_lock_polled) >= n else None
        figures["throttled"] = sum(v for (kind, code), v in figures["answers"].items() if code == 1110)
        after = db_states(url)
        figures["confirm_states"] = after["states"]
        figures["all_active_db_s"] = t_confirmed if after["states"].get("active", 0) >= n else None
        figures["confirm_answers"] = dict(Counter(sandbox.answers) - Counter(figures["answers"]))
    finally:
        if ui is not None:
            ui.stop()
        sandbox.stop()
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    return figures


class UiProbe:
    """A real ``dagster-webserver`` (its own process, as deployed) on the burst's run storage,
    asked for the latest runs over GraphQL every half second: does the UI answer during a burst?"""

    QUERY = "{ runsOrError(limit: 20) { __typename ... on Runs { results { runId status } } } }"

    def __init__(self, dagster_url: str, home: Path) -> None:
        import socket

        from lock_pipeline.storage.database import sqlalchemy_url

        self.home = home / "webserver"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(
            "storage:\n  postgres:\n    postgres_url: " + json.dumps(sqlalchemy_url(dagster_url)) + "\n")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._log = open(self.home / "webserver.log", "w")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(self.port), "--empty-workspace"],
            env={**os.environ, "DAGSTER_HOME": str(self.home)}, stdout=self._log, stderr=subprocess.STDOUT)
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def wait_ready(self, timeout: float = 120) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self._ask() is None:
                return time.monotonic() - started
            time.sleep(0.5)
        raise RuntimeError(f"dagster-webserver did not answer within {timeout:g} s; see {self.home / 'webserver.log'}")

    def start_polling(self) -> None:
        self.latencies.clear()
        self.failures.clear()
        self._thread.start()

    def _ask(self) -> str | None:
        """None when the runs query answered; else what went wrong."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql", method="POST",
                                         data=json.dumps({"query": self.QUERY}).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                body = json.loads(answer.read())
            kind = body.get("data", {}).get("runsOrError", {}).get("__typename")
            return None if kind == "Runs" else f"answered {kind or body}"
        except Exception as error:  # noqa: BLE001 - every failure is a finding here
            return f"{type(error).__name__}: {error}"

    def _poll(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            problem = self._ask()
            if problem is None:
                self.latencies.append(time.monotonic() - started)
            else:
                self.failures.append(problem)
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._log.close()


def process_start_seconds(repeats: int = 3) -> float:
    """What each run costs before its first step in the real deployment, at least: a new Python
    process importing Dagster and loading the code location (``dagster api execute_run`` does more)."""
    code = ("import os; os.environ.setdefault('LOCK_PIPELINE_HOME', '/tmp/lp-unused'); "
            "from lock_pipeline.orchestration.definitions import build_definitions; "
            "from lock_pipeline.settings import load_settings; import dagster")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=benchlib.REPO)
        times.append(time.perf_counter() - started)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locks", type=int, default=1000, help="locks = PINs due at once")
    parser.add_argument("--scale", type=float, default=None, help="shorthand: --locks 1000 x scale")
    parser.add_argument("--runs", type=int, default=1, help="bursts to run (each ~5 min at 1,000 locks)")
    parser.add_argument("--latency", type=float, default=0.1, help="Tuya sandbox call latency, seconds")
    parser.add_argument("--rps", type=float, default=20.0, help="Tuya sandbox rate limit, calls per second")
    args = parser.parse_args()
    n = max(11, round(1000 * args.scale)) if args.scale is not None else args.locks
    load = benchlib.ForeignLoad()
    print(f"bench_burst: {n} locks, {n} PINs due at once; Tuya latency {args.latency} s, limit {args.rps:g} rps; "
          f"{QUEUE_LIMIT} concurrent runs; {args.runs} burst(s); {benchlib.machine_line()}", flush=True)

    bursts = []
    with benchlib.embedded_server("lp-bench-burst-") as server:
        for number in range(1, args.runs + 1):
            figures = one_burst(server, n, args.latency, args.rps, number)
            bursts.append(figures)
            _print_burst(number, figures, n, args.rps)
    start_cost = process_start_seconds()
    _summary(bursts, n, args.rps, start_cost)
    print(load.line())


def _floor(figures: dict, rps: float) -> tuple[float, float]:
    needed = figures["requests"] - figures["throttled"]
    return needed, needed / rps


def _print_burst(number: int, f: dict, n: int, rps: float) -> None:
    needed, floor = _floor(f, rps)
    done = f["all_on_lock_s"]
    print(f"burst {number}: sensor {f['sensor_s']:.2f} s -> {f['runs']} runs / {f['actions']} actions; "
          f"every PIN on its lock after {done:.1f} s" if done is not None else
          f"burst {number}: sensor {f['sensor_s']:.2f} s -> {f['runs']} runs; only {f['on_lock']}/{n} PINs on their locks",
          flush=True)
    print(f"  runs finished at {f['runs_done_s']:.1f} s ({f['failed_runs']} failed); Tuya calls {f['requests']} "
          f"({f['throttled']} throttled 1110), needed {needed} -> floor {floor:.1f} s"
          + (f", ratio x{done / floor:.2f}" if done else ""), flush=True)
    print(f"  code states {f['states']}; events {f['events']}; peak RSS {mib(f['peak_own'])}", flush=True)
    lat = sorted(f["ui_latencies"])
    if lat:
        print(f"  Dagster UI (dagster-webserver process, runs query every 0.5 s during the burst): "
              f"{len(lat)} answers, median {median(lat) * 1000:.0f} ms, p95 {lat[int(0.95 * (len(lat) - 1))] * 1000:.0f} ms, "
              f"max {lat[-1] * 1000:.0f} ms; {len(f['ui_failures'])} failed" +
              (f" (first: {f['ui_failures'][0]})" if f["ui_failures"] else ""), flush=True)
    confirm_calls = sum(v for (_kind, code), v in f["confirm_answers"].items() if code != 1110)
    print(f"  confirm phase: {f['confirm_runs']} runs ({f['confirm_failed_runs']} failed), {confirm_calls} Tuya calls "
          f"not throttled ({sum(v for (_k, c), v in f['confirm_answers'].items() if c == 1110)} throttled); "
          + (f"every code active in the database after {f['all_active_db_s']:.1f} s" if f["all_active_db_s"] is not None
             else f"codes {f['confirm_states']}"), flush=True)


def _summary(bursts: list[dict], n: int, rps: float, start_cost: float) -> None:
    benchlib.banner("bench_burst summary")
    done = [b["all_on_lock_s"] for b in bursts if b["all_on_lock_s"] is not None]
    floors = [_floor(b, rps)[1] for b in bursts]
    ratios = [b["all_on_lock_s"] / fl for b, fl in zip(bursts, floors) if b["all_on_lock_s"] is not None]
    minimal_floor = (2 * n + 1) / rps
    b = bursts[len(bursts) // 2]
    if done:
        print(f"time until every PIN is active on its lock: {spread(done, 's', 1)} "
              f"(cross-check by polling the sandbox every 0.25 s: {b['all_on_lock_polled_s']})")
    else:
        print(f"not every PIN reached its lock: {[x['on_lock'] for x in bursts]} of {n}")
    print(f"floor = Tuya calls made and not throttled / {rps:g} rps: {spread(floors, 's', 1)}")
    answered = [len(x["ui_latencies"]) for x in bursts]
    failed = [len(x["ui_failures"]) for x in bursts]
    worst = [max(x["ui_latencies"]) for x in bursts if x["ui_latencies"]]
    print(f"Dagster UI during the burst: answers {answered}, failures {failed}, slowest answer "
          f"{spread(worst, 's', 2) if worst else 'none'}  target: still answering: "
          f"{verdict(min(answered) > 0 and max(failed) == 0)}")
    if ratios:
        print(f"ratio time / floor: {spread(ratios, 'x')}  target <= {TARGET_RATIO}x: {verdict(median(ratios) <= TARGET_RATIO)}")
        print(f"against the minimum a PIN needs (ticket + create, one token: {2 * n + 1} calls -> {minimal_floor:.1f} s): "
              f"x{median(done) / minimal_floor:.2f}")
    calls_per_pin = Counter()
    for (kind, code), count in b["answers"].items():
        if code != 1110:
            calls_per_pin[kind] += count
    print("Tuya calls per PIN by endpoint (not throttled): " +
          ", ".join(f"{k} {v / n:.2f}" for k, v in calls_per_pin.most_common()) +
          f"; total {sum(calls_per_pin.values()) / n:.2f}")
    print(f"throttled answers (1110): {[x['throttled'] for x in bursts]} by endpoint {b['throttled_by_kind']}; "
          f"retried by the client/step; left unretried (codes failed on 1110): {[x['failed_throttled'] for x in bursts]}; "
          f"codes in failed state: {[x['states'].get('failed', 0) for x in bursts]}; failed runs: "
          f"{[x['failed_runs'] for x in bursts]}")
    print(f"runs launched (= run processes in the deployment): {[x['runs'] for x in bursts]}; each real run first "
          f"starts a process (import Dagster + the code location: {start_cost:.1f} s measured here), so with "
          f"{QUEUE_LIMIT} at a time add about {b['runs'] / QUEUE_LIMIT * start_cost:.0f} s to the in-process time")
    active = [x["all_active_db_s"] for x in bursts if x["all_active_db_s"] is not None]
    confirm_calls = Counter()
    for (kind, code), count in b["confirm_answers"].items():
        if code != 1110:
            confirm_calls[kind] += count
    print(f"then every code active in the database (the next tick's confirm runs, {[x['confirm_runs'] for x in bursts]} "
          f"runs): {spread(active, 's', 1) if active else 'not reached'}; confirm calls per PIN: " +
          ", ".join(f"{k} {v / n:.2f}" for k, v in confirm_calls.most_common()))
    print(f"sensor evaluation {spread([x['sensor_s'] for x in bursts], 's', 2)}; all runs finished "
          f"{spread([x['runs_done_s'] for x in bursts], 's', 1)}")
    print(f"peak RSS of this process (runs, sandbox, sensor): {spread([x['peak_own'] / MiB for x in bursts], 'MiB', 0)}; "
          f"Postgres processes RSS sum {spread([x['peak_pg'] / MiB for x in bursts], 'MiB', 0)}")


if __name__ == "__main__":
    main()
