"""Delivery of the code to the guest in Dagster: a sensor finds due outbox rows; one run sends them.

The sensor (every 15 s) reads Postgres only and launches ``deliver_codes_job`` for the rows whose
next attempt is due; the run sends each (delivery/sender.py: Stays field, signed notification),
records the outcome, adds it to the stay's history and refreshes the day board. A row a run could
not finish is launched again after RELAUNCH_AFTER; a retry (next attempt) gets a new run at once.
"""

import hashlib
import json
from datetime import timedelta

from dagster import (
    Config,
    DefaultSensorStatus,
    Failure,
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

from lock_pipeline.delivery import outbox
from lock_pipeline.delivery.notify import Notifier
from lock_pipeline.delivery.sender import HELD, DeliverySender
from lock_pipeline.orchestration.admin import StayHistory, log_day_board
from lock_pipeline.orchestration.cursors import launched_recently, slot
from lock_pipeline.orchestration.resources import (
    ClockResource,
    DeliveryResource,
    PinVaultResource,
    PostgresResource,
    SettingsResource,
    StaysResource,
)
from lock_pipeline.vocabulary import DeliveryChannel, RunKind, RunTag

DELIVERY_SENSOR_SECONDS = 15
RELAUNCH_AFTER = timedelta(minutes=5)  # a row whose run died is launched again after this
MAX_PER_RUN = 100


class DeliverCodesConfig(Config):
    outbox_ids: list[int] = Field(description="due rows of pipeline.delivery_outbox (chosen by code_delivery_sensor)")


@op(description="Send each due code event to its channel (Stays field, signed notification), at least once; "
                "record the outcome, the stay's history and the day board.")
def deliver_codes(context: OpExecutionContext, config: DeliverCodesConfig, postgres: PostgresResource,
                  stays: StaysResource, pin_vault: PinVaultResource, clock: ClockResource, settings: SettingsResource,
                  delivery: DeliveryResource) -> None:
    current = settings.get()
    channels = current.delivery_channels
    notifier = None
    if DeliveryChannel.NOTIFY in channels:
        if not delivery.notify_secret:
            raise Failure(description="LOCK_PIPELINE_NOTIFY_URL is set but this deployment has no "
                                      "LOCK_PIPELINE_NOTIFY_SECRET: set it for the code server and daemon")
        notifier = Notifier(current.notify_url, delivery.notify_secret)
    try:
        with stays.client() as stays_client:
            sender = DeliverySender(postgres.engine, pin_vault.vault(), now=clock.now, channels=channels,
                                    run_id=context.run.run_id, stays_client=stays_client,
                                    stays_field_name=current.stays_pin_field, notifier=notifier,
                                    include_pin=current.notify_include_pin)
            attempts = sender.deliver(config.outbox_ids)
    finally:
        if notifier is not None:
            notifier.close()
    history = StayHistory(context, postgres, settings)
    for attempt in attempts:
        if attempt.outcome == HELD:  # its channel is stopped: nothing happened to it
            continue
        context.log.info(f"{attempt.reservation_code}: {attempt.event_type} to {attempt.channel}: {attempt.outcome} "
                         f"({attempt.detail})")
        history.add(attempt.reservation_code, what=f"{attempt.event_type} to {attempt.channel}",
                    outcome=attempt.outcome, detail=attempt.detail, lock_id=attempt.device_id)
    log_day_board(context, postgres, clock, settings)


@job(executor_def=in_process_executor, tags={RunTag.KIND: RunKind.DELIVERY},
     description="Deliver code events to the guest's channels (launched by code_delivery_sensor).")
def deliver_codes_job():
    deliver_codes()


@sensor(job=deliver_codes_job, minimum_interval_seconds=DELIVERY_SENSOR_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Launches a delivery run for code events whose next attempt is due (reads Postgres only).")
def code_delivery_sensor(context: SensorEvaluationContext, postgres: PostgresResource, clock: ClockResource,
                         settings: SettingsResource):
    channels = settings.get().delivery_channels
    if not channels:
        return SkipReason("no delivery channel is switched on (LOCK_PIPELINE_STAYS_WRITE_BACK, LOCK_PIPELINE_NOTIFY_URL)")
    now = clock.now()
    with postgres.engine.connect() as conn:
        due = outbox.due(conn, now, channels, limit=MAX_PER_RUN)
    launched = launched_recently(context.cursor, now, RELAUNCH_AFTER)
    fresh = [row for row in due if f"{row.outbox_id}:{row.attempts}" not in launched]
    if not fresh:
        context.update_cursor(json.dumps(launched))
        return SkipReason(f"no code event due ({len(due)} launched within {RELAUNCH_AFTER})")
    launched.update({f"{row.outbox_id}:{row.attempts}": now.isoformat() for row in fresh})
    context.update_cursor(json.dumps(launched))
    attempts = "|".join(f"{row.outbox_id}:{row.attempts}" for row in fresh)
    tags = {RunTag.OUTBOX: f"{fresh[0].outbox_id}-{fresh[-1].outbox_id}"}
    tags.update({f"{RunTag.STAY_PREFIX}{row.reservation_code}": row.event_type for row in fresh})
    return RunRequest(run_key=f"delivery:{hashlib.sha256(attempts.encode()).hexdigest()[:24]}@{slot(now, RELAUNCH_AFTER)}",
                      run_config={"ops": {"deliver_codes": {"config": {"outbox_ids": [r.outbox_id for r in fresh]}}}},
                      tags=tags)
