"""Stays webhooks in Dagster: a sensor picks up what the receiver stored; one run applies them.

The fast path from a booking (or a cancellation) in Stays to the lock: the receiver stores the
webhook, this sensor (every few seconds, Postgres only) launches a run, and the run re-fetches
each stay from the Stays API, applies it through the sync's own code, and does the stay's due
PIN work at once instead of waiting for the access sensor. Each change is recorded in the stay's
history (admin.access_history: "booked via webhook at ..."), and the run is tagged with the stays.
"""

import json
from datetime import timedelta, timezone

from dagster import (
    Config,
    DefaultSensorStatus,
    OpExecutionContext,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    in_process_executor,
    job,
    op,
    sensor,
)
from pydantic import Field

from lock_pipeline.access import store as access_store
from lock_pipeline.access.executor import AccessExecutor
from lock_pipeline.orchestration.access import run_due_work_for_stay
from lock_pipeline.orchestration.admin import StayHistory, log_day_board
from lock_pipeline.orchestration.cursors import launched_recently, slot
from lock_pipeline.orchestration.resources import (
    ClockResource,
    PinVaultResource,
    PostgresResource,
    SettingsResource,
    StaysResource,
    TuyaResource,
)
from lock_pipeline.stays import webhook_store
from lock_pipeline.stays.sync import StaysFetchFailed, StaysSync
from lock_pipeline.stays.webhooks import LISTING_ACTIONS, RESERVATION_ACTIONS
from lock_pipeline.vocabulary import EventAction, RunKind, RunTag, WebhookState

RELAUNCH_AFTER = timedelta(minutes=10)  # a webhook whose run died is launched again after this
MAX_PER_RUN = 50
HISTORY_DEVICE = "-"  # access_code_events.device_id of a Stays change (no lock involved)


class StaysWebhooksConfig(Config):
    webhook_ids: list[int] = Field(description="stored webhooks to apply (pipeline.stays_webhooks)")


@op(tags={RunTag.TUYA: "1"},
    description="Re-fetch each webhook's stay from Stays, apply it as the sync would, and do its due PIN work now.")
def apply_stays_webhooks(context: OpExecutionContext, config: StaysWebhooksConfig, postgres: PostgresResource,
                         stays: StaysResource, tuya: TuyaResource, pin_vault: PinVaultResource, clock: ClockResource,
                         settings: SettingsResource) -> None:
    engine, config_settings = postgres.engine, settings.get()
    with stays.client() as stays_client, tuya.client() as tuya_client:
        sync = StaysSync(engine, stays_client, now=clock.now, default_time_zone=config_settings.timezone,
                         default_check_in=config_settings.default_check_in,
                         default_check_out=config_settings.default_check_out, run_id=context.run.run_id,
                         progress=context.log.info)
        history = StayHistory(context, postgres, settings)
        executor = AccessExecutor(engine, tuya_client, pin_vault.vault(), now=clock.now,
                                  policy=settings.access_policy(), run_id=context.run.run_id,
                                  channels=config_settings.delivery_channels)
        for webhook_id in config.webhook_ids:
            with engine.connect() as conn, conn.begin():  # the row stays locked while it is applied
                claimed = webhook_store.claim(conn, [webhook_id])
                if not claimed:
                    continue  # applied by another run meanwhile
                [webhook] = claimed
                state, reason, error, stay_id = _apply(context, sync, webhook, history)
                webhook_store.finish(conn, webhook_id, state=state, reason=reason, now=clock.now(),
                                     run_id=context.run.run_id, reservation_id=stay_id, error=error)
            if stay_id is not None and state == WebhookState.APPLIED:
                done = run_due_work_for_stay(engine, executor, stay_id, clock.now, settings.access_policy(), context.log,
                                             keep_going=True, history=history)
                context.log.info(f"webhook {webhook_id}: {reason}; {done} PIN action(s) done now")
    log_day_board(context, postgres, clock, settings)


def _apply(context: OpExecutionContext, sync: StaysSync, webhook,
           history: StayHistory) -> tuple[WebhookState, str, str | None, str | None]:
    """Apply one webhook; returns (state, what happened, error, the stay's _id)."""
    received = f"{webhook.action} received {webhook.received_at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
    try:
        if webhook.action in LISTING_ACTIONS:
            return WebhookState.APPLIED, f"{received}: {sync.refresh_listing(webhook.listing_ref)}", None, None
        result = sync.refresh_reservation(webhook.reservation_ref)
    except StaysFetchFailed as error:
        context.log.warning(f"webhook {webhook.webhook_id} ({webhook.action}): {error}; the next sync catches up")
        return WebhookState.FAILED, f"{received}: not applied", str(error), None
    what = f"{RESERVATION_ACTIONS[webhook.action]} via webhook ({received}): {result.change}"
    if result.detail:
        what += f" ({result.detail})"
    if result.reservation_id is not None:
        with sync.engine.begin() as conn:  # the stay's audit trail, beside its PIN actions
            access_store.record_event(conn, code_id=None, reservation_id=result.reservation_id,
                                      device_id=HISTORY_DEVICE, action=EventAction.STAYS_WEBHOOK, outcome=result.change,
                                      run_id=context.run.run_id, at=sync.now(), detail=what)
    context.log.info(f"{result.code or webhook.reservation_ref}: {what}")
    if result.code and result.change != "unchanged":  # e.g. the echo of a write-back: nothing for the history page
        history.add(result.code, what=EventAction.STAYS_WEBHOOK, outcome=str(result.change), detail=what)
    return WebhookState.APPLIED, what, None, result.reservation_id


@job(executor_def=in_process_executor, tags={RunTag.KIND: RunKind.WEBHOOK, RunTag.TUYA: "1"},
     description="Apply Stays webhooks: re-fetch, upsert, and the stays' due PIN work (launched by stays_webhooks_sensor).")
def stays_webhooks_job():
    apply_stays_webhooks()


@sensor(job=stays_webhooks_job, minimum_interval_seconds=5, default_status=DefaultSensorStatus.RUNNING,
        description="Launches a run for the webhooks the receiver stored (reads Postgres only).")
def stays_webhooks_sensor(context: SensorEvaluationContext, postgres: PostgresResource, clock: ClockResource):
    now = clock.now()
    with postgres.engine.connect() as conn:
        waiting = webhook_store.pending(conn)
    launched = launched_recently(context.cursor, now, RELAUNCH_AFTER)
    fresh = [w.webhook_id for w in waiting if str(w.webhook_id) not in launched][:MAX_PER_RUN]
    if not fresh:
        context.update_cursor(json.dumps(launched))
        return SkipReason(f"no new webhooks ({len(waiting)} pending, launched within {RELAUNCH_AFTER})")
    launched.update({str(i): now.isoformat() for i in fresh})
    context.update_cursor(json.dumps(launched))
    return RunRequest(run_key=f"webhooks:{fresh[0]}-{fresh[-1]}:{len(fresh)}@{slot(now, RELAUNCH_AFTER)}",
                      run_config={"ops": {"apply_stays_webhooks": {"config": {"webhook_ids": fresh}}}},
                      tags={RunTag.WEBHOOKS: f"{fresh[0]}-{fresh[-1]}"})
