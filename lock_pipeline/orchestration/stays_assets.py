"""Stays -> Postgres: listings, reservations (by arrival month) and the sync log."""


from datetime import timedelta

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
)
from sqlalchemy import text

from lock_pipeline.orchestration.partitions import sync_window_for
from lock_pipeline.orchestration.resources import ClockResource, PipelineConfig, PostgresResource, StaysResource
from lock_pipeline.stays.sync import StaysFetchFailed, StaysSync

LOG_RETENTION_DAYS = 180


def _stays_sync(context: AssetExecutionContext, stays_client, postgres: PostgresResource,
                clock: ClockResource, pipeline_config: PipelineConfig) -> StaysSync:
    return StaysSync(
        postgres.engine, stays_client, now=clock.now, default_time_zone=pipeline_config.timezone,
        default_check_in=pipeline_config.check_in_time, default_check_out=pipeline_config.check_out_time,
        run_id=context.run_id, progress=context.log.info,
    )


def build_stays_assets(arrival_months: PartitionsDefinition) -> list[AssetsDefinition]:
    @asset(group_name="stays", kinds={"postgres"},
           description="Every listing in the Stays account (pipeline.listings). Never deactivated by a missing feed.")
    def stays_listings(context: AssetExecutionContext, stays: StaysResource, postgres: PostgresResource,
                       clock: ClockResource, pipeline_config: PipelineConfig) -> MaterializeResult:
        with stays.client() as client:
            try:
                result = _stays_sync(context, client, postgres, clock, pipeline_config).sync_listings()
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
                           clock: ClockResource, pipeline_config: PipelineConfig) -> MaterializeResult:
        window = sync_window_for(context.partition_time_window)
        context.log.info(f"syncing arrivals {window.from_date}..{window.to_date}")
        with stays.client() as client:
            try:
                result = _stays_sync(context, client, postgres, clock, pipeline_config).sync_reservations(window)
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
            pruned = conn.execute(text(
                "DELETE FROM pipeline.reconciliation_logs WHERE started_at < :cutoff "
                "AND sync_id NOT IN (SELECT first_sync_id FROM pipeline.quarantined_records WHERE first_sync_id IS NOT NULL)"
            ), {"cutoff": clock.now() - timedelta(days=LOG_RETENTION_DAYS)}).rowcount
            recent = conn.execute(text(
                "SELECT sync_id, started_at, status, fetched, created, updated, cancelled, missing, quarantined, message "
                "FROM pipeline.reconciliation_logs ORDER BY started_at DESC LIMIT 10"
            )).mappings().all()
            counts = dict(conn.execute(text(
                "SELECT status, count(*) FROM pipeline.reconciliation_logs GROUP BY status"
            )).all())
        return MaterializeResult(metadata={
            "syncs_by_status": MetadataValue.json(counts),
            "pruned": pruned,
            "recent_syncs": MetadataValue.json([{k: str(v) for k, v in row.items()} for row in recent]),
        })

    return [stays_listings, stays_reservations, reconciliation_logs]

