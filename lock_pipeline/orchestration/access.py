"""PIN actions in Dagster: the access sensor, the runs it launches, reprocess, the lock audit, failed runs.

The access sensor reads Postgres only, never the network, and never raises on purpose: a
sensor that raises loses its cursor update. Run keys hold the action, stay, lock, window and
the code row's version, so a retried tick never doubles a run and a moved stay gets new work.
One run carries one or many actions, each its own step and audit event.
"""

import hashlib
import json
from datetime import datetime, timedelta, timezone

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Backoff,
    Config,
    DefaultSensorStatus,
    DynamicOut,
    DynamicOutput,
    Failure,
    JobDefinition,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    RetryPolicy,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    in_process_executor,
    job,
    op,
    run_failure_sensor,
    sensor,
)
from pydantic import Field, field_validator

from lock_pipeline.access import backup_store
from lock_pipeline.access import store as access_store
from lock_pipeline.access.audit import audit_lock
from lock_pipeline.access.executor import AccessExecutor
from lock_pipeline.access.planning import AccessPolicy, Action, desired_access, plan_actions
from lock_pipeline.orchestration.admin import StayHistory, log_day_board
from lock_pipeline.orchestration.cursors import launched_recently, slot
from lock_pipeline.orchestration.resources import (
    ClockResource,
    PinVaultResource,
    PostgresResource,
    SettingsResource,
    TuyaResource,
)
from lock_pipeline.stays import store as stays_store
from lock_pipeline.storage.run_failures import record_run_failure
from lock_pipeline.tuya.client import TuyaError
from lock_pipeline.vocabulary import ACTION_ORDER, ActionKind, CodeState, RunKind, RunTag

# As the seed: 3 retries after 2 s, 4 s, 8 s. Then the code is `failed`, retried on a bounded
# schedule (access/planning.py RETRY_DELAYS), and a person can reprocess it.
PIN_STEP_RETRIES = 3
PIN_RETRY_POLICY = RetryPolicy(max_retries=PIN_STEP_RETRIES, delay=2, backoff=Backoff.EXPONENTIAL)
SINGLE_ACTION_RUNS_UP_TO = 10  # below this, one run per action: the cleanest audit trail
CURSOR_MEMORY = timedelta(minutes=30)


# ====================================================================== the PIN action runs

class PinActionConfig(Config):
    kind: str
    reservation_id: str
    reservation_code: str
    listing_id: str
    device_id: str
    valid_from: str
    valid_until: str
    code_id: int | None = None
    reason: str = ""
    version: str = "0"


class PinActionsConfig(Config):
    actions: list[PinActionConfig] = Field(description="planned by the access sensor")


@op(out=DynamicOut(dict), description="Fan the run's actions out, one step each.")
def planned_pin_actions(config: PinActionsConfig):
    for index, action in enumerate(config.actions):
        yield DynamicOutput(action.model_dump(), mapping_key=f"{action.kind}_{_key_safe(action.reservation_code)}_{index}")


@op(tags={RunTag.TUYA: "1"},
    description="Generate, confirm or revoke one PIN on its lock (exactly once, audited); retried by the job's policy.")
def perform_pin_action(context: OpExecutionContext, planned: dict, postgres: PostgresResource,
                       tuya: TuyaResource, pin_vault: PinVaultResource, clock: ClockResource,
                       settings: SettingsResource) -> str:
    action = Action.from_config(planned)
    final_attempt = context.retry_number >= PIN_STEP_RETRIES
    with tuya.client() as client:
        executor = AccessExecutor(postgres.engine, client, pin_vault.vault(), now=clock.now,
                                  policy=settings.access_policy(), run_id=context.run.run_id,
                                  channels=settings.get().delivery_channels)
        try:
            outcome = executor.perform(action, final_attempt=final_attempt)
        except Exception as error:
            attempt = f"attempt {context.retry_number + 1} of {PIN_STEP_RETRIES + 1}"
            if isinstance(error, TuyaError):
                context.log.warning(f"{action.kind} {action.reservation_code} on lock {action.device_id}: {error} "
                                    f"({attempt})")
            StayHistory(context, postgres, settings).add(
                action.reservation_code, what=action.kind, lock_id=action.device_id,
                outcome="failed" if final_attempt else "error", detail=f"{str(error)[:300]} ({attempt})")
            if final_attempt:  # the run fails: the board shows it now, not at the next sync
                log_day_board(context, postgres, clock, settings)
            raise
    context.log.info(f"{action.kind} {action.reservation_code} on lock {action.device_id}: {outcome.result} "
                     f"({outcome.detail}){f'; Tuya password id {outcome.password_id}' if outcome.password_id else ''}")
    StayHistory(context, postgres, settings).add(action.reservation_code, what=action.kind,
                                                 outcome=str(outcome.result), detail=outcome.detail,
                                                 lock_id=action.device_id)
    return str(outcome.result)


@op(description="Refresh the day board once the run's PIN actions are done (a failed action refreshes it itself).")
def refresh_day_board(context: OpExecutionContext, results: list[str], postgres: PostgresResource,
                      clock: ClockResource, settings: SettingsResource) -> None:
    log_day_board(context, postgres, clock, settings)


def build_pin_actions_job(retry_policy: RetryPolicy = PIN_RETRY_POLICY) -> JobDefinition:
    """The job the access sensor launches. ``retry_policy`` is the product's; a simulator whose clock does
    not move during a run passes shorter waits (the same number of retries, or it is refused)."""
    if retry_policy.max_retries != PIN_STEP_RETRIES:
        raise ValueError(f"a PIN step is retried {PIN_STEP_RETRIES} times; the executor's final attempt depends on it")

    @job(name="pin_actions_job", executor_def=in_process_executor, tags={RunTag.KIND: RunKind.PIN},
         description="PIN actions planned by the access sensor; one process however many actions.")
    def pin_actions_job():
        refresh_day_board(planned_pin_actions().map(perform_pin_action.with_retry_policy(retry_policy)).collect())

    return pin_actions_job


class ReprocessConfig(Config):
    reservation_code: str = Field(description="the stay's code as people see it, e.g. EV23J")

    @field_validator("reservation_code")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > 40 or not value.replace("-", "").isalnum():
            raise ValueError(f"{value!r} is not a stay code: use the code shown in admin.reservations, e.g. EV23J")
        return value


@op(description="Restart a stay's PIN work now: failed codes get a fresh retry budget, due work runs at once.")
def reprocess_stay(context: OpExecutionContext, config: ReprocessConfig, postgres: PostgresResource,
                   tuya: TuyaResource, pin_vault: PinVaultResource, clock: ClockResource,
                   settings: SettingsResource) -> None:
    policy = settings.access_policy()
    with postgres.engine.begin() as conn:
        reservation_id = stays_store.find_stay_by_code(conn, config.reservation_code)
        if reservation_id is None:
            raise Failure(description=f"no stay with code {config.reservation_code!r}: see admin.reservations")
        reset = access_store.request_retry(conn, reservation_id, run_id=context.run.run_id, now=clock.now())
    context.log.info(f"reprocess {config.reservation_code}: {reset} failed code(s) reset")
    with tuya.client() as client:
        executor = AccessExecutor(postgres.engine, client, pin_vault.vault(), now=clock.now, policy=policy,
                                  run_id=context.run.run_id, channels=settings.get().delivery_channels)
        history = StayHistory(context, postgres, settings)
        history.add(config.reservation_code, what="reprocess", outcome="requested",
                    detail=f"{reset} failed code(s) reset")
        try:
            done = run_due_work_for_stay(postgres.engine, executor, reservation_id, clock.now, policy, context.log,
                                         history=history)
        finally:
            log_day_board(context, postgres, clock, settings)
    context.log.info(f"reprocess {config.reservation_code}: {done} action(s) done")


def run_due_work_for_stay(engine, executor: AccessExecutor, reservation_id: str, now, policy: AccessPolicy, log, *,
                          keep_going: bool = False, history: StayHistory | None = None) -> int:
    """Do a stay's due PIN work now (reprocess, a webhook), then read the lock's answer for a PIN just
    created or moved, as the sensor's next tick would, so the state is true when the run ends.

    ``keep_going``: a Tuya error is logged, not raised (the code is then ``failed`` with its retry
    schedule, as after any run), so one stay's lock cannot stop a batch of webhooks. ``history``: each
    action goes into the stay's history (stay_history).
    """
    done = 0
    for confirm_only in (False, True):
        with engine.connect() as conn:
            stay, codes = access_store.load_stay(conn, reservation_id)
            backups = backup_store.live_backups(conn, [reservation_id], now())
        for action in due_now_for_stay(stay, codes, now(), policy, backups):
            if confirm_only and action.kind != ActionKind.CONFIRM:
                continue
            try:
                outcome = executor.perform(action, final_attempt=True)
            except TuyaError as error:
                if history is not None:
                    history.add(action.reservation_code, what=action.kind, outcome="failed", detail=str(error)[:300],
                                lock_id=action.device_id)
                if not keep_going:
                    raise
                log.warning(f"{action.kind} {action.reservation_code} on lock {action.device_id}: {error}; "
                            "the access sensor retries it on its schedule")
                continue
            done += 1
            log.info(f"{action.kind} {action.reservation_code} on lock {action.device_id}: {outcome.result} ({outcome.detail})")
            if history is not None:
                history.add(action.reservation_code, what=action.kind, outcome=str(outcome.result),
                            detail=outcome.detail, lock_id=action.device_id)
    return done


def due_now_for_stay(stay, codes, now, policy: AccessPolicy, backups=()) -> list[Action]:
    if stay is None:
        return []
    return plan_actions({stay.reservation_id: stay}, codes, now, policy, backups).actions


@job(executor_def=in_process_executor, tags={RunTag.KIND: RunKind.REPROCESS, RunTag.TUYA: "1"},
     description="Reprocess one stay (Launchpad config: reservation_code).")
def reprocess_stay_job():
    reprocess_stay()


def _key_safe(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)[:40]


# ====================================================================== the sensors

def batch_actions(actions: list[Action], max_per_run: int) -> list[list[Action]]:
    """One run per action for a handful; in a burst, runs of up to ``max_per_run``, one lock's actions together."""
    if len(actions) <= SINGLE_ACTION_RUNS_UP_TO:
        return [[a] for a in actions]
    ordered = sorted(actions, key=lambda a: (a.device_id, ACTION_ORDER[a.kind]))
    return [ordered[i:i + max_per_run] for i in range(0, len(ordered), max_per_run)]


def run_request_for(batch: list[Action], now: datetime | None = None) -> RunRequest:
    """A run for a batch. With ``now`` (the sensor), the run key ends with the half hour it was
    requested in: a run key is spent forever once used, whatever the run's outcome, so without it
    work whose run failed before changing its code row (killed before the row existed, Postgres
    gone, a confirm that errored) would never be launched again. A retried tick in the same half
    hour still reuses the key, and the cursor holds an action back for that half hour anyway."""
    if len(batch) == 1:
        action = batch[0]
        run_key = action.key
        tags = {
            RunTag.STAY: action.reservation_code,
            RunTag.LISTING: action.listing_id,
            RunTag.LOCK: action.device_id,
            RunTag.ACTION: action.kind,
        }
    else:
        run_key = "batch:" + hashlib.sha256("|".join(a.key for a in batch).encode()).hexdigest()[:32]
        tags = {RunTag.ACTION: "batch", RunTag.ACTIONS: str(len(batch))}
        tags.update({f"{RunTag.STAY_PREFIX}{a.reservation_code}": a.kind for a in batch})
    tags[RunTag.TUYA] = "1"
    if now is not None:
        run_key += f"@{_attempt_slot(now)}"
    return RunRequest(
        run_key=run_key,
        run_config={"ops": {"planned_pin_actions": {"config": {"actions": [a.to_config() for a in batch]}}}},
        tags={str(key): str(value) for key, value in tags.items()},
    )


@sensor(job_name="pin_actions_job", minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Launches PIN generate / confirm / revoke runs when they fall due (reads Postgres only).")
def pin_actions_sensor(context: SensorEvaluationContext, postgres: PostgresResource, clock: ClockResource,
                       settings: SettingsResource):
    now, policy = clock.now(), settings.access_policy()
    with postgres.engine.connect() as conn:
        stays, codes = access_store.load_for_planning(conn, now, policy)
        backups = backup_store.live_backups(conn, list(stays), now)
    plan = plan_actions(stays, codes, now, policy, backups)
    launched = launched_recently(context.cursor, now, CURSOR_MEMORY)
    fresh = [a for a in plan.actions if a.key not in launched]
    for note in plan.waiting[:20]:
        context.log.info(note)
    if not fresh:
        context.update_cursor(json.dumps(launched))
        return SkipReason(f"no PIN work due ({len(plan.actions)} already launched, {len(plan.waiting)} waiting)")
    requests = [run_request_for(batch, now) for batch in batch_actions(fresh, settings.get().max_actions_per_run)]
    launched.update({a.key: now.isoformat() for a in fresh})
    context.update_cursor(json.dumps(launched))
    context.log.info(f"{len(fresh)} PIN action(s) due: {len(requests)} run(s)")
    return requests


def _attempt_slot(now: datetime) -> str:
    """The CURSOR_MEMORY-long slot ``now`` falls in (UTC): one launch of an action per slot at most."""
    length = int(CURSOR_MEMORY.total_seconds())
    return f"{datetime.fromtimestamp(slot(now, CURSOR_MEMORY) * length, tz=timezone.utc):%Y%m%dT%H%M}"


def stays_named_by(tags: dict[str, str]) -> list[str]:
    """The stay codes a run's tags name, whether it ran one action or a batch."""
    return sorted({value if key == RunTag.STAY else key[len(RunTag.STAY_PREFIX):]
                   for key, value in tags.items() if key == RunTag.STAY or key.startswith(RunTag.STAY_PREFIX)})


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING, monitor_all_code_locations=False,
                    description="Records every failed run in pipeline.run_failures (admin.attention reads it).")
def record_failed_runs(context: RunFailureSensorContext, postgres: PostgresResource, clock: ClockResource):
    run = context.dagster_run
    message = context.failure_event.message if context.failure_event else "run failed"
    with postgres.engine.begin() as conn:
        record_run_failure(conn, run_id=run.run_id, job_name=run.job_name, stay_codes=stays_named_by(run.tags),
                           message=message or "", failed_at=clock.now())


# ====================================================================== the lock audit

AUDIT_ASSET = "lock_pin_audit"
AUDIT_CHECKS = [
    AssetCheckSpec("no_pin_valid_outside_its_stay", asset=AUDIT_ASSET, blocking=True,
                   description="No PIN on a lock is valid outside its own stay's access window (the lock's list vs Postgres)."),
    AssetCheckSpec("every_stay_in_its_window_has_an_active_pin", asset=AUDIT_ASSET,
                   description="Every confirmed stay whose access window is open has a PIN active on its lock."),
    AssetCheckSpec("no_orphan_pins", asset=AUDIT_ASSET,
                   description="No PIN the pipeline named is left on a lock without a known stay once the audit has "
                               "revoked the orphans it found (fails while one could not be deleted)."),
]


@asset(name=AUDIT_ASSET, group_name="access", kinds={"postgres"}, deps=["accommodation_lock_mappings"],
       check_specs=AUDIT_CHECKS,
       description="Reads every mapped lock's PIN list from Tuya and compares it with pipeline.access_codes; "
                   "revokes orphans the pipeline named; never touches PINs it did not create.")
def lock_pin_audit(context: AssetExecutionContext, postgres: PostgresResource, tuya: TuyaResource,
                   clock: ClockResource, settings: SettingsResource):
    now, policy = clock.now(), settings.access_policy()
    with postgres.engine.connect() as conn:
        stays, _live = access_store.load_for_planning(conn, now, policy)
        devices = access_store.devices_to_audit(conn)
    violations, orphans_revoked, orphans_left, unreachable, gone, foreign = [], [], [], [], [], 0
    with tuya.client() as client:
        for device_id in devices:
            try:
                with access_store.lock_device(postgres.engine, device_id):
                    # Read inside the lock: a run that programmed or moved a PIN here since the audit began
                    # has committed, so its PIN is known, not an orphan to delete.
                    with postgres.engine.connect() as conn:
                        codes = access_store.known_codes_on(conn, [device_id])
                        here = {**stays, **access_store.stays_by_id(conn, {c.reservation_id for c in codes})}
                    on_lock = client.list_temp_passwords(device_id)
                    audit = audit_lock(device_id, on_lock, codes, here, now, policy)
                    revoked, left = _revoke_orphans(client, device_id, audit.orphans)
                    # Absent from the list is not proof (what the list's `valid` filter leaves out is not
                    # documented): only a PIN its own record shows deleted (phase 0) is programmed again.
                    audit.gone = [c for c in audit.gone
                                  if client.get_temp_password(device_id, c.tuya_password_id).phase == 0]
                    if audit.gone:
                        with postgres.engine.begin() as conn:
                            for code in audit.gone:
                                access_store.record_gone_from_lock(conn, code.code_id, now=now)
                                access_store.record_event(
                                    conn, code_id=code.code_id, reservation_id=code.reservation_id,
                                    device_id=device_id, action=ActionKind.CONFIRM, outcome=CodeState.FAILED,
                                    run_id=context.run.run_id, at=now, password_id=code.tuya_password_id,
                                    detail=access_store.GONE_FROM_LOCK)
            except TuyaError as error:
                unreachable.append({"lock_id": device_id, "error": str(error)})
                continue
            orphans_revoked.extend(revoked)
            orphans_left.extend(left)
            gone.extend({"lock_id": device_id, "reservation_code": c.reservation_code} for c in audit.gone)
            violations.extend({"lock_id": device_id, **v} for v in audit.violations)
            foreign += audit.foreign
    if orphans_revoked:
        context.log.warning(f"revoked {len(orphans_revoked)} orphan PIN(s) the pipeline had named")
    if gone:
        context.log.warning(f"{len(gone)} active PIN(s) no longer on their lock: programmed again with the same digits")
    missing = _stays_without_active_pin(postgres, stays, now, policy)
    yield MaterializeResult(metadata={
        "locks_audited": len(devices) - len(unreachable), "locks_unreachable": MetadataValue.json(unreachable),
        "foreign_pins_left_alone": foreign, "orphans_revoked": len(orphans_revoked),
        "pins_gone_from_locks": MetadataValue.json(gone),
    })
    yield AssetCheckResult(check_name="no_pin_valid_outside_its_stay", passed=not violations,
                           severity=AssetCheckSeverity.ERROR,
                           metadata={"violations": len(violations), "offending_rows": MetadataValue.json(violations)})
    yield AssetCheckResult(check_name="every_stay_in_its_window_has_an_active_pin", passed=not missing,
                           severity=AssetCheckSeverity.ERROR,
                           metadata={"stays_without_pin": len(missing), "offending_rows": MetadataValue.json(missing)})
    yield AssetCheckResult(check_name="no_orphan_pins", passed=not orphans_left, severity=AssetCheckSeverity.WARN,
                           metadata={"orphans_revoked": MetadataValue.json(orphans_revoked),
                                     "orphans_still_on_locks": len(orphans_left),
                                     "offending_rows": MetadataValue.json(orphans_left)})


def _revoke_orphans(client, device_id: str, orphans) -> tuple[list[dict], list[dict]]:
    """Delete each orphan, then read the lock again: what is still on it (a delete that failed, or one an
    offline lock has not carried out yet, phase 3) is left, and the check says so."""
    if not orphans:
        return [], []
    revoked, errors = [], {}
    for orphan in orphans:
        try:
            client.delete_temp_password(device_id, orphan.password_id)
            revoked.append({"lock_id": device_id, "password_id": orphan.password_id, "name": orphan.name})
        except TuyaError as error:
            errors[orphan.password_id] = str(error)
    orphan_ids = {o.password_id for o in orphans}
    left = [{"lock_id": device_id, "password_id": p.password_id, "name": p.name, "phase": p.phase,
             "error": errors.get(p.password_id, "deleted in the cloud, not yet on the lock")}
            for p in client.list_temp_passwords(device_id) if p.password_id in orphan_ids and p.phase != 0]
    return revoked, left


def _stays_without_active_pin(postgres: PostgresResource, stays, now, policy) -> list[dict]:
    open_now = {rid: stay for rid, stay in stays.items()
                if (d := desired_access(stay, now, policy)) is not None and d.window.contains(now)}
    if not open_now:
        return []
    with postgres.engine.connect() as conn:
        states = access_store.live_states_by_stay(conn, list(open_now))
    return [{"reservation_code": stay.code, "lock_id": stay.device_id,
             "code_states": ",".join(sorted(states.get(rid, ()))) or "none"}
            for rid, stay in open_now.items() if CodeState.ACTIVE not in states.get(rid, ())]
