-- The last sync (latest by start, then by id: two syncs can start in the same instant), its figures,
-- and when the schedule runs next (its cadence as published by the pipeline).
CREATE OR REPLACE VIEW admin.reconciliation_status AS
SELECT last.sync_id          AS last_sync_id,
       last.started_at       AS last_started_at,
       last.completed_at     AS last_completed_at,
       last.duration_ms,
       last.status,
       last.fetched, last.created, last.updated, last.unchanged,
       last.cancelled, last.missing, last.quarantined, last.errors,
       last.message,
       (SELECT max(completed_at) FROM pipeline.reconciliation_logs WHERE status IN ('success', 'partial'))
                             AS last_success_at,
       date_bin((SELECT pipeline.setting('sync.interval')::interval), pipeline.clock_now(),
                TIMESTAMPTZ '2000-01-01 00:00+00') + (SELECT pipeline.setting('sync.interval')::interval)
                             AS next_scheduled_run,
       (SELECT count(*) FROM pipeline.quarantined_records) AS quarantined_total,
       last.feed_suspect
FROM (SELECT * FROM pipeline.reconciliation_logs ORDER BY started_at DESC, sync_id DESC LIMIT 1) AS last;
