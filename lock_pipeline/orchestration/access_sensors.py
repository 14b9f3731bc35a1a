"""The access sensor (due PIN work -> runs) and the run-failure sensor (failures -> Postgres).

The access sensor reads Postgres only, never the network, and never raises on purpose: a
sensor that raises loses its cursor update. Run keys hold the action, stay, lock, window and
the code row's version, so a retried tick never doubles a run and a moved stay gets new work.
"""

import hashlib
import json
from datetime import datetime, timedelta, timezone

from dagster import (
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from sqlalchemy import text

from lock_pipeline.access import store as access_store
from lock_pipeline.access.planning import Action, plan_actions
from lock_pipeline.orchestration.access_jobs import pin_actions_job
from lock_pipeline.orchestration.resources import ClockResource, PipelineConfig, PostgresResource, access_policy

SINGLE_ACTION_RUNS_UP_TO = 10  # below this, one run per action: the cleanest audit trail
CURSOR_MEMORY = timedelta(minutes=30)


def batch_actions(actions: list[Action], max_per_run: int) -> list[list[Action]]:
    """One run per action for a handful; in a burst, runs of up to ``max_per_run``, one lock's actions together."""
    if len(actions) <= SINGLE_ACTION_RUNS_UP_TO:
        return [[a] for a in actions]
    ordered = sorted(actions, key=lambda a: (a.device_id, {"generate": 0, "confirm": 1, "revoke": 2}[a.kind]))
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
            "lock_pipeline/stay": action.reservation_code,
            "lock_pipeline/listing": action.listing_id,
            "lock_pipeline/lock": action.device_id,
            "lock_pipeline/action": action.kind,
        }
    else:
        run_key = "batch:" + hashlib.sha256("|".join(a.key for a in batch).encode()).hexdigest()[:32]
        tags = {"lock_pipeline/action": "batch", "lock_pipeline/actions": str(len(batch))}
        tags.update({f"lock_pipeline/stay.{a.reservation_code}": a.kind for a in batch})
    tags["lock_pipeline/tuya"] = "1"
    if now is not None:
        run_key += f"@{_attempt_slot(now)}"
    return RunRequest(
        run_key=run_key,
        run_config={"ops": {"planned_pin_actions": {"config": {"actions": [a.to_config() for a in batch]}}}},
        tags=tags,
    )


@sensor(job=pin_actions_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Launches PIN generate / confirm / revoke runs when they fall due (reads Postgres only).")
def pin_actions_sensor(context: SensorEvaluationContext, postgres: PostgresResource, clock: ClockResource,
                       pipeline_config: PipelineConfig):
    now = clock.now()
    with postgres.engine.connect() as conn:
        stays, codes = access_store.load_for_planning(conn, now, access_policy(pipeline_config))
    plan = plan_actions(stays, codes, now, access_policy(pipeline_config))
    launched = _read_cursor(context.cursor, now)
    fresh = [a for a in plan.actions if a.key not in launched]
    for note in plan.waiting[:20]:
        context.log.info(note)
    if not fresh:
        context.update_cursor(json.dumps(launched))
        return SkipReason(f"no PIN work due ({len(plan.actions)} already launched, {len(plan.waiting)} waiting)")
    requests = [run_request_for(batch, now) for batch in batch_actions(fresh, pipeline_config.max_actions_per_run)]
    launched.update({a.key: now.isoformat() for a in fresh})
    context.update_cursor(json.dumps(launched))
    context.log.info(f"{len(fresh)} PIN action(s) due: {len(requests)} run(s)")
    return requests


def _attempt_slot(now: datetime) -> str:
    """The CURSOR_MEMORY-long slot ``now`` falls in (UTC): one launch of an action per slot at most."""
    length = int(CURSOR_MEMORY.total_seconds())
    return f"{datetime.fromtimestamp(int(now.timestamp()) // length * length, tz=timezone.utc):%Y%m%dT%H%M}"


def _read_cursor(cursor: str | None, now: datetime) -> dict[str, str]:
    """Actions launched in the last half hour; a bad cursor is dropped (run keys still dedupe)."""
    try:
        launched = json.loads(cursor or "{}")
        return {k: v for k, v in launched.items() if now - datetime.fromisoformat(v) < CURSOR_MEMORY}
    except (ValueError, TypeError, AttributeError):
        return {}


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING, monitor_all_code_locations=False,
                    description="Records every failed run in pipeline.run_failures (admin.attention reads it).")
def record_failed_runs(context: RunFailureSensorContext, postgres: PostgresResource, clock: ClockResource):
    run = context.dagster_run
    stays = sorted({v if k == "lock_pipeline/stay" else k.split(".", 1)[1]
                    for k, v in run.tags.items() if k == "lock_pipeline/stay" or k.startswith("lock_pipeline/stay.")})
    message = context.failure_event.message if context.failure_event else "run failed"
    with postgres.engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO pipeline.run_failures (run_id, job_name, stay_codes, message, failed_at)
            VALUES (:run_id, :job, :stays, :message, :at) ON CONFLICT (run_id) DO NOTHING
        """), {"run_id": run.run_id, "job": run.job_name, "stays": stays, "message": (message or "")[:1000],
               "at": clock.now()})
