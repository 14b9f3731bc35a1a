"""Stays -> Postgres: listings, reservations (by arrival month), the sync log, and the 30-minute schedule."""

from datetime import timedelta

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
from lock_pipeline.stays.sync import StaysFetchFailed, StaysSync
from lock_pipeline.storage.migrations import publish_settings
from lock_pipeline.vocabulary import RunTag

LOG_RETENTION_DAYS = 180
SYNC_CRON = f"*/{int(SYNC_INTERVAL.total_seconds() // 60)} * * * *"


def _stays_sync(context: AssetExecutionContext, stays_client, postgres: PostgresResource,
                clock: ClockResource, settings: SettingsResource) -> StaysSync:
    config = settings.get()
    return StaysSync(
        postgres.engine, stays_client, now=clock.now, default_time_zone=config.timezone,
        default_check_in=config.default_check_in, default_check_out=config.default_check_out,
        run_id=context.run_id, progress=context.log.info,
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
        return MaterializeResult(metadata={
            "sync_id": result.sync_id,
            "status": result.status,
            "window": f"{window.from_date}..{window.to_date}",
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
        })

    @asset(group_name="stays", kinds={"postgres"}, deps=[stays_reservations],
           description=f"One row per sync (pipeline.reconciliation_logs); rows older than {LOG_RETENTION_DAYS} days are pruned.")
    def reconciliation_logs(postgres: PostgresResource, clock: ClockResource) -> MaterializeResult:
        with postgres.engine.begin() as conn:
            pruned = stays_store.prune_sync_logs(conn, clock.now() - timedelta(days=LOG_RETENTION_DAYS))
            recent = stays_store.recent_syncs(conn)
            counts = stays_store.syncs_by_status(conn)
        return MaterializeResult(metadata={
            "syncs_by_status": MetadataValue.json(counts),
            "pruned": pruned,
            "recent_syncs": MetadataValue.json([{k: str(v) for k, v in row.items()} for row in recent]),
        })

    return [stays_listings, stays_reservations, reconciliation_logs]


def build_sync_schedule(sync_job, timezone: str) -> ScheduleDefinition:
    @schedule(job=sync_job, cron_schedule=SYNC_CRON, execution_timezone=timezone,
              default_status=DefaultScheduleStatus.RUNNING, name="sync_every_30_minutes",
              description="Refresh listings, reservations in the sync window, locks and mappings.")
    def sync_every_30_minutes(context: ScheduleEvaluationContext, clock: ClockResource, settings: SettingsResource):
        config = settings.get()
        months = months_covering(clock.now(), config.timezone, config.sync_days_back, config.sync_days_ahead)
        return RunRequest(tags={**partition_range_tags(months.start, months.end), RunTag.TRIGGER: "schedule"})

    return sync_every_30_minutes
