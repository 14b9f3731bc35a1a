"""Drives the real pipeline on a controlled clock: sync runs, sensor ticks and the runs they ask for.

Real Postgres, the sandbox Stays and Tuya servers, the real Definitions, sensor and jobs;
only time is moved by hand (through a clock file both the pipeline and the Tuya sandbox
read). What the Dagster daemon does is reproduced in process, including the rule that a
sensor run key is spent forever once a run was launched with it.

Used by the season simulator (the rest of this package) and by the tests
(lock_pipeline_tests/harness.py builds on :class:`PipelineDriver`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from cryptography.fernet import Fernet
from dagster import Backoff, DagsterInstance, Definitions, RetryPolicy, RunRequest, build_sensor_context
from sqlalchemy import text

from lock_pipeline.access.pins import PinVault
from lock_pipeline.clock import FileClock
from lock_pipeline.orchestration.access import PIN_RETRY_POLICY
from lock_pipeline.orchestration.dagster_internals import RUN_KEY_TAG, SENSOR_NAME_TAG, partition_range_tags
from lock_pipeline.orchestration.definitions import build_definitions
from lock_pipeline.orchestration.partitions import months_covering
from lock_pipeline.orchestration.resources import (
    ClockResource,
    PinVaultResource,
    PostgresResource,
    SettingsResource,
    StaysResource,
    TuyaResource,
)
from lock_pipeline.sandbox.seed import Seed
from lock_pipeline.sandbox.stays_server import StaysSandbox
from lock_pipeline.sandbox.tuya_cloud import TuyaSandbox
from lock_pipeline.settings import Settings, load_settings
from lock_pipeline.storage.database import engine_for

STAYS_CLIENT_ID = "sandbox-client"
STAYS_CLIENT_SECRET = "sandbox-secret"
WEBHOOK_TOKEN = "season-and-tests-webhook-token-0123456789"
MAX_PINS_PER_LOCK = 50  # a sandbox lock's PIN storage unless told otherwise
QUIET_LOGGING = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
_SILENT = logging.getLogger("season.driver.silent")
_SILENT.disabled = True


def simulation_definitions(database_url: str, *, stays: StaysSandbox | None, tuya: TuyaSandbox | None,
                           clock: ClockResource, pin_key: str, settings: Settings,
                           stays_timeout: float = 2.0, tuya_timeout: float = 2.0,
                           extra: dict | None = None, step_retry_delay: float | None = None) -> Definitions:
    """The real Definitions, with resources pointed at the sandboxes and the simulated clock."""
    resources: dict[str, object] = {
        "postgres": PostgresResource(url=database_url),
        "clock": clock,
        "settings": SettingsResource.of(settings),
        "pin_vault": PinVaultResource(key=pin_key),
    }
    if stays is not None:
        resources["stays"] = StaysResource(base_url=stays.base_url, client_id=STAYS_CLIENT_ID,
                                           client_secret=STAYS_CLIENT_SECRET, backoff_seconds=0.01,
                                           timeout_seconds=stays_timeout)
    if tuya is not None:  # one token shared by every run through Postgres, as in a deployment
        resources["tuya"] = TuyaResource(base_url=tuya.base_url, access_id=tuya.access_id,
                                         access_secret=tuya.access_secret, ca_bundle=tuya.ca_cert_path,
                                         timeout_seconds=tuya_timeout, backoff_seconds=0.01,
                                         token_database_url=database_url, token_key=pin_key)
    resources.update(extra or {})
    if step_retry_delay is None:
        return build_definitions(settings, resources=resources)
    return build_definitions(settings, resources=resources, pin_retry_policy=fast_retry_policy(step_retry_delay))


def run_near_term_sync(defs: Definitions, *, instance: DagsterInstance, run_config: dict | None = None):
    """What the 30-minute schedule launches: the near-term sync, locks, mapping and the audit."""
    return defs.resolve_job_def("sync_job").execute_in_process(
        instance=instance, run_config=run_config, tags={"lock_pipeline/trigger": "schedule"}, raise_on_error=False)


def run_sync(defs: Definitions, *, now: datetime, instance: DagsterInstance, raise_on_error: bool = False,
             run_config: dict | None = None):
    """What the full-sync schedule launches: one run over every month of the sync window."""
    config = defs.resources["settings"].get()
    months = months_covering(now, config.timezone, config.sync_days_back, config.sync_days_ahead)
    return defs.resolve_job_def("full_sync_job").execute_in_process(
        instance=instance,
        run_config=run_config,
        tags={**partition_range_tags(months.start, months.end), "lock_pipeline/trigger": "schedule"},
        raise_on_error=raise_on_error,
    )


def fast_retry_policy(delay_seconds: float = 0.02) -> RetryPolicy:
    """The PIN step's retry policy with shorter waits (same count and backoff shape).

    Simulated time does not pass during a run, so the product's 2 s / 4 s / 8 s waits only cost
    wall-clock time here; the number of attempts and what each attempt does are unchanged.
    """
    return RetryPolicy(max_retries=PIN_RETRY_POLICY.max_retries, delay=delay_seconds, backoff=Backoff.EXPONENTIAL)


class PipelineDriver:
    """One account on the sandboxes, the real pipeline against ``database_url``, time moved by hand."""

    def __init__(self, database_url: str, seed: Seed, workdir: Path, start: datetime, *,
                 instance: DagsterInstance | None = None, pin_key: str | None = None,
                 settings: Settings | None = None, max_pins_per_lock: int = MAX_PINS_PER_LOCK,
                 stays_timeout: float = 2.0, tuya_timeout: float = 2.0, quiet: bool = False, keep_runs: bool = True,
                 step_retry_delay: float | None = None, webhooks: bool = False) -> None:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url
        self.clock = FileClock(workdir / "clock")
        self.clock.set(start)
        self.pin_key = pin_key or Fernet.generate_key().decode()
        self.settings = settings or load_settings({"LOCK_PIPELINE_HOME": str(workdir / "home")})
        self.stays = StaysSandbox(seed, client_id=STAYS_CLIENT_ID, client_secret=STAYS_CLIENT_SECRET,
                                  clock=self.clock).start()
        try:
            self.tuya = TuyaSandbox(seed.locks, clock=self.clock, max_pins_per_lock=max_pins_per_lock).start()
        except BaseException:
            self.stays.stop()
            raise
        self._timeouts = (stays_timeout, tuya_timeout)
        self.use_step_retry_delay(step_retry_delay)
        self.engine = engine_for(database_url)
        self._own_instance = instance is None
        self.instance = instance or DagsterInstance.ephemeral()
        self.cursor: str | None = None
        self.vault = PinVault(self.pin_key)
        self.quiet = quiet
        self.keep_runs = keep_runs
        self.runs: list = []
        self.spent_run_keys: set[str] = set()
        self.skipped_spent_keys = 0
        self.launched_runs = 0
        self.failures_not_recorded = 0
        self.webhook_cursor: str | None = None
        self.delivery_cursor: str | None = None
        self.receiver = None
        if webhooks:
            self.start_receiver()

    def use_step_retry_delay(self, seconds: float | None) -> None:
        """(Re)build the pipeline's Definitions; ``seconds`` shortens the waits between a PIN step's retries."""
        self.defs = simulation_definitions(self.database_url, stays=self.stays, tuya=self.tuya,
                                           clock=ClockResource(clock_file=str(self.clock.path)),
                                           pin_key=self.pin_key, settings=self.settings,
                                           stays_timeout=self._timeouts[0], tuya_timeout=self._timeouts[1],
                                           step_retry_delay=seconds)

    def close(self) -> None:
        self.stop_receiver()
        self.stays.stop()
        self.tuya.stop()

    # -- webhooks ---------------------------------------------------------------------------

    def start_receiver(self) -> None:
        """The real receiver on loopback, and the sandbox sending its webhooks to it (as `lock-pipeline up`)."""
        from lock_pipeline.stays.receiver import BackgroundReceiver, webhook_url

        self.receiver = BackgroundReceiver(self.engine, host="127.0.0.1", port=0, token=WEBHOOK_TOKEN,
                                           client_id=STAYS_CLIENT_ID, now=self.clock.now).start()
        self.webhook_url = webhook_url(f"http://127.0.0.1:{self.receiver.port}", WEBHOOK_TOKEN)
        self.stays.set_webhook_url(self.webhook_url)

    def stop_receiver(self) -> None:
        """The receiver goes down: Stays' deliveries fail (the syncs still catch up)."""
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None

    def deliver_webhooks(self, wait_seconds: float = 10.0) -> list:
        """Let the sandbox's deliveries land, then what the daemon does: evaluate the webhook sensor and run
        what it asks for, in process."""
        from lock_pipeline.orchestration.webhooks import stays_webhooks_sensor

        self.stays.wait_for_webhooks(wait_seconds)
        resources = {key: self.defs.resources[key] for key in ("postgres", "clock")}
        context = build_sensor_context(instance=self.instance, cursor=self.webhook_cursor, resources=resources)
        if self.quiet:
            context._logger = _SILENT
        request = stays_webhooks_sensor(context)
        self.webhook_cursor = context.cursor
        if not isinstance(request, RunRequest):
            return []
        job = self.defs.resolve_job_def("stays_webhooks_job")
        outcome = job.execute_in_process(run_config=self._run_config(request.run_config), tags=request.tags,
                                         instance=self.instance, raise_on_error=False)
        self.launched_runs += 1
        self.record_failure(outcome)
        if self.keep_runs:
            self.runs.append(outcome)
        return [outcome]

    def deliver(self) -> list:
        """What the daemon does for code delivery: evaluate the delivery sensor (cursor carried over) and
        run what it asks for, in process; a spent run key is skipped, as the daemon does."""
        from lock_pipeline.orchestration.delivery import code_delivery_sensor

        resources = {key: self.defs.resources[key] for key in ("postgres", "clock", "settings")}
        context = build_sensor_context(instance=self.instance, cursor=self.delivery_cursor, resources=resources)
        if self.quiet:
            context._logger = _SILENT
        request = code_delivery_sensor(context)
        self.delivery_cursor = context.cursor
        if not isinstance(request, RunRequest):
            return []
        if request.run_key in self.spent_run_keys:
            self.skipped_spent_keys += 1
            return []
        self.spent_run_keys.add(request.run_key)
        tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: "code_delivery_sensor"}
        outcome = self.defs.resolve_job_def("deliver_codes_job").execute_in_process(
            run_config=self._run_config(request.run_config), tags=tags, instance=self.instance, raise_on_error=False)
        self.launched_runs += 1
        self.record_failure(outcome)
        if self.keep_runs:
            self.runs.append(outcome)
        return [outcome]

    def renew_instance(self) -> None:
        """A fresh in-memory Dagster instance (bounds memory over a long season). Spent run keys are
        kept by the driver itself, so the daemon's rule still holds across instances."""
        if self._own_instance:
            self.instance.dispose()
            self.instance = DagsterInstance.ephemeral()

    # -- time and orchestration -------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def move_to(self, instant: datetime) -> None:
        self.clock.set(instant)

    def _run_config(self, config: dict | None) -> dict | None:
        if not self.quiet:
            return config
        return {**(config or {}), **QUIET_LOGGING}

    def sync(self):
        """One full sync run (never raises: a failed run is a result)."""
        result = run_sync(self.defs, now=self.now, instance=self.instance, raise_on_error=False,
                          run_config=self._run_config(None))
        self.record_failure(result)
        return result

    def scheduled_syncs(self, previous: datetime | None) -> list:
        """What the schedules launch between ``previous`` and now: the near-term sync, and the full one
        when its cadence came round (always at the first step)."""
        outcomes = [run_near_term_sync(self.defs, instance=self.instance, run_config=self._run_config(None))]
        self.record_failure(outcomes[0])
        period = self.settings.full_sync_hours * 3600
        if previous is None or int(self.now.timestamp()) // period != int(previous.timestamp()) // period:
            outcomes.append(self.sync())
        return outcomes

    def record_failure(self, outcome) -> None:
        """What the daemon's run-failure sensor (record_failed_runs) does for a failed run."""
        if outcome.success:
            return
        from dagster import DagsterEventType, build_run_status_sensor_context

        from lock_pipeline.orchestration.access import record_failed_runs

        try:
            event = next((e for e in self.instance.all_logs(outcome.run_id, of_type=DagsterEventType.RUN_FAILURE)), None)
            if event is None:
                return
            context = build_run_status_sensor_context(
                sensor_name="record_failed_runs", dagster_instance=self.instance, dagster_run=outcome.dagster_run,
                dagster_event=event.dagster_event,
                resources={key: self.defs.resources[key] for key in ("postgres", "clock")},
            ).for_run_failure()
            record_failed_runs(context)
        except Exception:  # noqa: BLE001 - the daemon retries a sensor that failed (Postgres away); so does the next run
            self.failures_not_recorded += 1

    def sensor_requests(self) -> list[RunRequest]:
        """One evaluation of the access sensor, cursor carried over as the daemon does."""
        from lock_pipeline.orchestration.access import pin_actions_sensor

        resources = {key: self.defs.resources[key] for key in ("postgres", "clock", "settings")}
        context = build_sensor_context(instance=self.instance, cursor=self.cursor, resources=resources)
        if self.quiet:
            context._logger = _SILENT  # the evaluation's own console logger would print every tick
        result = pin_actions_sensor(context)
        self.cursor = context.cursor
        return [r for r in (result if isinstance(result, list) else []) if isinstance(r, RunRequest)]

    def tick(self) -> list:
        """One sensor evaluation and the runs it asked for, executed in process.

        As the daemon: a request whose run key was used before is skipped (a run key is spent
        forever once a run was launched with it, whatever that run's outcome).
        """
        job = self.defs.resolve_job_def("pin_actions_job")
        outcomes = []
        for request in self.sensor_requests():
            if request.run_key in self.spent_run_keys:
                self.skipped_spent_keys += 1
                continue
            self.spent_run_keys.add(request.run_key)
            tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: "pin_actions_sensor"}
            outcome = job.execute_in_process(run_config=self._run_config(request.run_config), tags=tags,
                                             instance=self.instance, raise_on_error=False)
            self.launched_runs += 1
            outcomes.append(outcome)
            self.record_failure(outcome)
        if self.keep_runs:
            self.runs.extend(outcomes)
        return outcomes

    def settle(self, ticks: int = 3) -> list:
        """Sync, then tick until nothing more is due (as the schedule and the sensor would)."""
        self.sync()
        outcomes = []
        for _ in range(ticks):
            launched = self.tick()
            outcomes.extend(launched)
            if not launched:
                break
        return outcomes

    # -- the lock's own truth and the admin's view ------------------------------------------

    def pins_of(self, code: str) -> list[tuple[str, str]]:
        """(device, PIN) of every code ever issued for a stay."""
        with self.engine.connect() as conn:
            rows = conn.execute(text("""
                SELECT c.device_id, c.pin_ciphertext FROM pipeline.access_codes c
                JOIN pipeline.reservations r USING (reservation_id)
                WHERE r.code = :code AND c.pin_ciphertext IS NOT NULL
            """), {"code": code}).all()
        return [(row.device_id, self.vault.decrypt(row.pin_ciphertext)) for row in rows]

    def opens(self, code: str, device_id: str, at: datetime | None = None) -> bool:
        at = at or self.now
        return any(self.tuya.would_open(device, pin, at) for device, pin in self.pins_of(code) if device == device_id)

    def opens_anywhere(self, code: str, at: datetime | None = None) -> list[str]:
        at = at or self.now
        return [device for device, pin in self.pins_of(code) if self.tuya.would_open(device, pin, at)]

    def state_of(self, code: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT access_state FROM admin.reservations WHERE reservation_code = :c"),
                                {"c": code}).scalar()

    def attention(self, at: datetime | None = None) -> list[dict]:
        """admin.attention as a person would read it at ``at`` (the views' clock moved with SET LOCAL)."""
        with self.engine.begin() as conn:
            conn.execute(text("SELECT set_config('lock_pipeline.now', :n, true)"), {"n": (at or self.now).isoformat()})
            return [dict(row) for row in conn.execute(text("SELECT * FROM admin.attention")).mappings()]
