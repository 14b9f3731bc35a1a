"""The 30-minute sync: one run over every month the sync window touches, not one per month."""


from dagster import DefaultScheduleStatus, RunRequest, ScheduleDefinition, ScheduleEvaluationContext, schedule
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from lock_pipeline.orchestration.partitions import months_covering
from lock_pipeline.orchestration.resources import ClockResource, PipelineConfig

SYNC_CRON = "*/30 * * * *"  # admin.reconciliation_status derives the next run from this cadence


def build_sync_schedule(sync_job, timezone: str) -> ScheduleDefinition:
    @schedule(job=sync_job, cron_schedule=SYNC_CRON, execution_timezone=timezone,
              default_status=DefaultScheduleStatus.RUNNING, name="sync_every_30_minutes",
              description="Refresh listings, reservations in the sync window, locks and mappings.")
    def sync_every_30_minutes(context: ScheduleEvaluationContext, clock: ClockResource, pipeline_config: PipelineConfig):
        months = months_covering(clock.now(), pipeline_config.timezone, pipeline_config.sync_days_back, pipeline_config.sync_days_ahead)
        return RunRequest(tags={
            ASSET_PARTITION_RANGE_START_TAG: months.start,
            ASSET_PARTITION_RANGE_END_TAG: months.end,
            "lock_pipeline/trigger": "schedule",
        })

    return sync_every_30_minutes
