"""Stays -> Postgres: listings, reservations, the sync log, and their schedules.

Two syncs: every 30 minutes, only what can touch a door soon (stays in the house, arriving or
leaving within the programming horizon, and bookings made since the last one:
``stays_near_term_reservations``); every LOCK_PIPELINE_FULL_SYNC_HOURS, and by backfill from the UI,
the whole window by arrival month (``stays_reservations``). Webhooks bring single changes in
seconds (orchestration/webhooks.py); the syncs are the safety net.
"""

from datetime import timedelta
from zoneinfo import ZoneInfo

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    DefaultScheduleStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    asset,
    schedule,
)

from lock_pipeline.orchestration.dagster_internals import partition_range_tags
from lock_pipeline.orchestration.partitions import months_covering, sync_window_for
from lock_pipeline.orchestration.resources import ClockResource, PostgresResource, SettingsResource, StaysResource
from lock_pipeline.settings import SYNC_INTERVAL
from lock_pipeline.stays import store as stays_store
from lock_pipeline.stays import webhook_store
from lock_pipeline.stays.sync import StaysFetchFailed, StaysSync, SyncResult, near_term_windows
from lock_pipeline.storage.migrations import publish_settings
from lock_pipeline.vocabulary import RunTag

LOG_RETENTION_DAYS = 180
SYNC_CRON = f"*/{int(SYNC_INTERVAL.total_seconds() // 60)} * * * *"
NEAR_TERM_DATE_TYPES = "included+creation"  # how the near-term sync's rows read in reconciliation_logs


def _stays_sync(context: AssetExecutionContext, stays_client, postgres: PostgresResource,
                clock: ClockResource, settings: SettingsResource) -> StaysSync:
    config = settings.get()
    return StaysSync(
        postgres.engine, stays_client, now=clock.now, default_time_zone=config.timezone,
        default_check_in=config.default_check_in, default_check_out=config.default_check_out,
        run_id=context.run.run_id, progress=context.log.info,
    )


def build_stays_assets(arrival_months: PartitionsDefinition) -> list[AssetsDefinition]:
    @asset(group_name="stays", kinds={"postgres"},
           description="Every listing in the Stays account (pipeline.listings). Never deactivated by a missing feed.")
    def stays_listings(context: AssetExecutionContext, stays: StaysResource, postgres: PostgresResource,
                       clock: ClockResource, settings: SettingsResource) -> MaterializeResult:
        with postgres.engine.begin() as conn:  # the views read the settings this run works with
            publish_settings(conn, settings.get())
        with stays.client() as client:
            try:
                result = _stays_sync(context, client, postgres, clock, settings).sync_listings()
            except StaysFetchFailed as error:
                raise Failure(description=str(error), metadata={"sync_id": error.sync_id or 0}) from error
        return MaterializeResult(metadata={
            "fetched": result.fetched,
            "written": result.written,
            "quarantined": result.quarantined,
            "quarantine_reasons": MetadataValue.json(result.quarantine_reasons),
        })

    @asset(group_name="stays", kinds={"postgres"}, deps=[stays_listings],
           partitions_def=arrival_months, backfill_policy=BackfillPolicy.single_run(),
           description="Reservations and blocks by arrival month (pipeline.reservations): upserted by Stays _id, "
                       "cancellations kept, absences flagged, bad records quarantined.")
    def stays_reservations(context: AssetExecutionContext, stays: StaysResource, postgres: PostgresResource,
                           clock: ClockResource, settings: SettingsResource) -> MaterializeResult:
        window = sync_window_for(context.partition_time_window)
        context.log.info(f"syncing arrivals {window.from_date}..{window.to_date}")
        with stays.client() as client:
            try:
                result = _stays_sync(context, client, postgres, clock, settings).sync_reservations(window)
            except StaysFetchFailed as error:
                raise Failure(description=str(error), metadata={"sync_id": error.sync_id or 0}) from error
        return MaterializeResult(metadata={"window": f"{window.from_date}..{window.to_date}", **_sync_metadata(result)})

    @asset(group_name="stays", kinds={"postgres"},
           description="What can touch a door soon, every 30 minutes: stays in the house, arriving or leaving within "
                       "the programming horizon, and bookings made since the last sync (pipeline.reservations). "
                       "Listings it does not know yet are fetched one by one.")
    def stays_near_term_reservations(context: AssetExecutionContext, stays: StaysResource, postgres: PostgresResource,
                                     clock: ClockResource, settings: SettingsResource) -> MaterializeResult:
        config = settings.get()
        with postgres.engine.begin() as conn:
            publish_settings(conn, config)
            since = stays_store.last_sync_started(conn, NEAR_TERM_DATE_TYPES)
        now = clock.now()
        windows = near_term_windows(now, config.timezone, config.program_ahead,
                                    since.astimezone(ZoneInfo(config.timezone)).date() if since else None)
        with stays.client() as client:
            try:
                result = _stays_sync(context, client, postgres, clock, settings).sync_reservations(windows)
            except StaysFetchFailed as error:
                raise Failure(description=str(error), metadata={"sync_id": error.sync_id or 0}) from error
        return MaterializeResult(metadata={"windows": ", ".join(f"{w.date_type} {w.from_date}..{w.to_date}"
                                                                for w in windows), **_sync_metadata(result)})

    @asset(group_name="stays", kinds={"postgres"}, deps=[stays_reservations, stays_near_term_reservations],
           description=f"One row per sync (pipeline.reconciliation_logs); rows older than {LOG_RETENTION_DAYS} days are "
                       "pruned, and webhooks older than that too.")
    def reconciliation_logs(postgres: PostgresResource, clock: ClockResource) -> MaterializeResult:
        with postgres.engine.begin() as conn:
            pruned = stays_store.prune_sync_logs(conn, clock.now() - timedelta(days=LOG_RETENTION_DAYS))
            pruned += webhook_store.prune(conn, clock.now() - timedelta(days=LOG_RETENTION_DAYS))
            recent = stays_store.recent_syncs(conn)
            counts = stays_store.syncs_by_status(conn)
        return MaterializeResult(metadata={
            "syncs_by_status": MetadataValue.json(counts),
            "pruned": pruned,
            "recent_syncs": MetadataValue.json([{k: str(v) for k, v in row.items()} for row in recent]),
        })

    return [stays_listings, stays_reservations, stays_near_term_reservations, reconciliation_logs]


def _sync_metadata(result: SyncResult) -> dict:
    return {
        "sync_id": result.sync_id,
        "status": result.status,
        "fetched": result.fetched,
        "created": result.created,
        "updated": result.updated,
        "cancelled": result.cancelled,
        "unchanged": result.unchanged,
        "missing": result.missing,
        "quarantined": result.quarantined,
        "pages": result.pages,
        "fetch_seconds": round(result.fetch_seconds, 3),
        "plan_seconds": round(result.plan_seconds, 3),
        "write_seconds": round(result.write_seconds, 3),
        "changed_reservation_codes": MetadataValue.json(result.changed_codes),
        "quarantine_reasons": MetadataValue.json(result.quarantine_reasons),
        "message": result.message or "",
    }


def build_sync_schedules(sync_job, full_sync_job, timezone: str, full_sync_hours: int) -> list[ScheduleDefinition]:
    every_30_minutes = ScheduleDefinition(
        name="sync_every_30_minutes", job=sync_job, cron_schedule=SYNC_CRON, execution_timezone=timezone,
        default_status=DefaultScheduleStatus.RUNNING, tags={RunTag.TRIGGER: "schedule"},
        description="Refresh what can touch a door soon (and what was booked since), locks and mappings.")

    @schedule(job=full_sync_job, cron_schedule=f"5 */{full_sync_hours} * * *", execution_timezone=timezone,
              default_status=DefaultScheduleStatus.RUNNING, name="full_sync",
              description=f"Every {full_sync_hours} h: listings and the whole sync window, one run over every month.")
    def full_sync(context: ScheduleEvaluationContext, clock: ClockResource, settings: SettingsResource):
        config = settings.get()
        months = months_covering(clock.now(), config.timezone, config.sync_days_back, config.sync_days_ahead)
        return RunRequest(tags={**partition_range_tags(months.start, months.end), RunTag.TRIGGER: "schedule"})

    return [every_30_minutes, full_sync]
