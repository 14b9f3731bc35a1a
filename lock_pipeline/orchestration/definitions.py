"""Builds the one Definitions object from validated settings (tests pass their own resources)."""

import os

from dagster import AssetSelection, Definitions, EnvVar, RetryPolicy, define_asset_job, in_process_executor

from lock_pipeline.orchestration.access import (
    PIN_RETRY_POLICY,
    build_pin_actions_job,
    lock_pin_audit,
    pin_actions_sensor,
    record_failed_runs,
    reprocess_stay_job,
)
from lock_pipeline.orchestration.admin import DAY_BOARD, day_board, stay_history
from lock_pipeline.orchestration.delivery import code_delivery_sensor, deliver_codes_job
from lock_pipeline.orchestration.locks import (
    MAPPING_CHECKS,
    accommodation_lock_mappings,
    mapping_decision_job,
    tuya_locks,
)
from lock_pipeline.orchestration.overrides import listing_settings_job, lock_settings_job
from lock_pipeline.orchestration.partitions import arrival_month_partitions
from lock_pipeline.orchestration.resources import (
    ClockResource,
    DeliveryResource,
    PinVaultResource,
    PostgresResource,
    SettingsResource,
    StaysResource,
    TuyaResource,
)
from lock_pipeline.orchestration.stays import build_stays_assets, build_sync_schedules
from lock_pipeline.orchestration.webhooks import stays_webhooks_job, stays_webhooks_sensor
from lock_pipeline.clock import CLOCK_FILE_ENV
from lock_pipeline.settings import Settings, SettingsError
from lock_pipeline.vocabulary import RunKind, RunTag

SYNC_GROUPS = ("stays", "locks", "access")
NEAR_TERM_ASSETS = ("stays_near_term_reservations", "reconciliation_logs")


def default_resources(settings: Settings) -> dict[str, object]:
    """Real resources from settings; secrets stay environment variables (shown by name in the UI)."""
    problems = []
    if settings.database_url is None:
        problems.append("LOCK_PIPELINE_DATABASE_URL is not set: start with `lock-pipeline up` "
                        "(it starts the embedded Postgres), or point it at your server")
    if settings.stays is None:
        problems.append("STAYS_BASE_URL is not set: start with `lock-pipeline up` for the sandbox, "
                        "or set STAYS_BASE_URL, STAYS_CLIENT_ID and STAYS_CLIENT_SECRET")
    if settings.tuya is None:
        problems.append("TUYA_ACCESS_ID is not set: start with `lock-pipeline up` for the sandbox, "
                        "or set TUYA_ACCESS_ID, TUYA_ACCESS_SECRET and TUYA_REGION (or TUYA_BASE_URL)")
    if settings.pin_key is None:
        problems.append("LOCK_PIPELINE_PIN_KEY is not set: start with `lock-pipeline up` (it generates one on "
                        "the embedded default), or set it (`lock-pipeline new-pin-key`)")
    if problems:
        raise SettingsError(problems)
    return {
        "postgres": PostgresResource(url=EnvVar("LOCK_PIPELINE_DATABASE_URL")),
        "stays": StaysResource(base_url=settings.stays.base_url, client_id=EnvVar("STAYS_CLIENT_ID"),
                               client_secret=EnvVar("STAYS_CLIENT_SECRET")),
        "tuya": TuyaResource(base_url=settings.tuya.base_url, access_id=EnvVar("TUYA_ACCESS_ID"),
                             access_secret=EnvVar("TUYA_ACCESS_SECRET"),
                             token_database_url=EnvVar("LOCK_PIPELINE_DATABASE_URL"),
                             token_key=EnvVar("LOCK_PIPELINE_PIN_KEY")),
        "pin_vault": PinVaultResource(key=EnvVar("LOCK_PIPELINE_PIN_KEY")),
        "clock": ClockResource(clock_file=EnvVar(CLOCK_FILE_ENV) if os.environ.get(CLOCK_FILE_ENV) else None),
        "settings": SettingsResource.of(settings),
        "delivery": DeliveryResource(notify_secret=EnvVar("LOCK_PIPELINE_NOTIFY_SECRET") if settings.notify_secret
                                     else None),
    }


def build_definitions(settings: Settings, resources: dict[str, object] | None = None, *,
                      pin_retry_policy: RetryPolicy = PIN_RETRY_POLICY) -> Definitions:
    """The pipeline. ``resources`` replace the real ones (tests, simulator); ``pin_retry_policy`` too
    (a simulator on a controlled clock shortens the waits between a PIN step's retries)."""
    arrival_months = arrival_month_partitions(settings.timezone, settings.sync_days_ahead)
    stays_assets = build_stays_assets(arrival_months)
    locks_and_access = AssetSelection.groups("locks", "access")
    sync_job = define_asset_job(
        "sync_job",
        selection=AssetSelection.assets(*NEAR_TERM_ASSETS, DAY_BOARD) | locks_and_access,
        executor_def=in_process_executor,
        description="What can touch a door soon (Stays -> Postgres), locks -> mapping, the lock audit: "
                    "what the 30-minute schedule runs.",
        tags={RunTag.KIND: RunKind.SYNC},
    )
    full_sync_job = define_asset_job(
        "full_sync_job",
        selection=(AssetSelection.groups(*SYNC_GROUPS) | AssetSelection.assets(DAY_BOARD))
        - AssetSelection.assets("stays_near_term_reservations"),
        executor_def=in_process_executor,
        description="Listings and the whole sync window by arrival month (and locks, mapping, audit): what the "
                    "full-sync schedule, `lock-pipeline sync` and a backfill run.",
        tags={RunTag.KIND: RunKind.SYNC},
    )
    if resources is not None:  # tests and the simulator: the signing secret from the settings they built
        resources = {"delivery": DeliveryResource(notify_secret=settings.notify_secret), **resources}
    return Definitions(
        assets=[*stays_assets, tuya_locks, accommodation_lock_mappings, lock_pin_audit, day_board, stay_history],
        asset_checks=[*MAPPING_CHECKS],
        jobs=[sync_job, full_sync_job, mapping_decision_job, build_pin_actions_job(pin_retry_policy), reprocess_stay_job,
              stays_webhooks_job, listing_settings_job, lock_settings_job, deliver_codes_job],
        sensors=[pin_actions_sensor, stays_webhooks_sensor, record_failed_runs, code_delivery_sensor],
        schedules=build_sync_schedules(sync_job, full_sync_job, settings.timezone, settings.full_sync_hours),
        resources=resources if resources is not None else default_resources(settings),
    )
