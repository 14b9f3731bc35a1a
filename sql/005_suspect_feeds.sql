-- 005: a sync that got an empty or collapsed feed says so where the admin looks.
-- Such a sync is not a failure (Stays answered and nothing is lost or flagged), but stays booked or
-- changed meanwhile cannot be seen, so admin.attention lists it as sync_failing with the reason.
-- The last sync is now the latest by start, then by id (two syncs can start in the same instant).

ALTER TABLE pipeline.reconciliation_logs ADD COLUMN feed_suspect text;  -- why the feed was not trusted; NULL when it was

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
       date_bin('30 minutes', pipeline.clock_now(), TIMESTAMPTZ '2000-01-01 00:00+00') + interval '30 minutes'
                             AS next_scheduled_run,
       (SELECT count(*) FROM pipeline.quarantined_records) AS quarantined_total,
       last.feed_suspect
FROM (SELECT * FROM pipeline.reconciliation_logs ORDER BY started_at DESC, sync_id DESC LIMIT 1) AS last;

CREATE OR REPLACE VIEW admin.attention AS
SELECT * FROM (
    SELECT 'unmapped_listing_with_arrival' AS issue,
           l.short_code AS listing_code,
           min(r.code) AS reservation_code,
           min(r.check_in_at) AS due_at,
           'listing has guests arriving within 14 days but no confirmed lock: confirm or set its lock' AS what_to_do
    FROM pipeline.reservations r
    JOIN pipeline.listings l USING (listing_id)
    LEFT JOIN pipeline.lock_mappings m ON m.listing_id = r.listing_id
    WHERE r.kind = 'guest' AND r.status = 'confirmed' AND r.check_out_at > pipeline.clock_now()
      AND r.check_in_at < pipeline.clock_now() + interval '14 days' AND m.status IS DISTINCT FROM 'confirmed'
    GROUP BY l.short_code
    UNION ALL
    SELECT 'pin_failed', l.short_code, r.code, c.valid_from,
           'PIN could not be programmed (' || COALESCE(c.last_error, 'unknown error') || '): fix the cause, then reprocess ' || r.code
    FROM pipeline.current_access_codes c
    JOIN pipeline.reservations r USING (reservation_id) JOIN pipeline.listings l USING (listing_id)
    WHERE c.state = 'failed' AND c.valid_until > pipeline.clock_now()
    UNION ALL
    SELECT 'pin_not_on_lock_yet', l.short_code, r.code, c.valid_from,
           'PIN is in the cloud but the lock has not taken it (lock asleep or offline): check the lock before arrival'
    FROM pipeline.current_access_codes c
    JOIN pipeline.reservations r USING (reservation_id) JOIN pipeline.listings l USING (listing_id)
    WHERE c.state IN ('pending_on_lock', 'programming') AND c.valid_from < pipeline.clock_now() + interval '12 hours'
      AND c.valid_until > pipeline.clock_now()
    UNION ALL
    SELECT 'lock_offline_arrival_soon', l.short_code, min(r.code), min(r.check_in_at),
           'lock is offline and a guest arrives within 24 h: check its Wi-Fi and batteries'
    FROM pipeline.reservations r
    JOIN pipeline.listings l USING (listing_id)
    JOIN pipeline.lock_mappings m ON m.listing_id = r.listing_id AND m.status = 'confirmed'
    JOIN pipeline.locks k ON k.device_id = m.device_id
    WHERE r.kind = 'guest' AND r.status = 'confirmed' AND NOT k.online
      AND r.check_in_at BETWEEN pipeline.clock_now() - interval '2 hours' AND pipeline.clock_now() + interval '24 hours'
    GROUP BY l.short_code
    UNION ALL
    SELECT 'run_failed', NULL, array_to_string(f.stay_codes, ','), f.failed_at,
           f.job_name || ' run ' || f.run_id || ' failed: see it in the Dagster UI (Runs); ' || left(COALESCE(f.message, ''), 200)
    FROM pipeline.run_failures f
    WHERE f.failed_at > pipeline.clock_now() - interval '24 hours'
    UNION ALL
    SELECT 'sync_failing', NULL, NULL, s.last_started_at,
           'the last Stays sync failed: ' || COALESCE(s.message, '') 
    FROM admin.reconciliation_status s
    WHERE s.status = 'failed'
    UNION ALL
    SELECT 'sync_failing', NULL, NULL, s.last_started_at,
           'Stays answered, but the feed looks broken (' || s.feed_suspect || '): new bookings and changes may be '
           || 'missing, nothing was flagged missing; check Stays, then look at admin.reservations before arrivals'
    FROM admin.reconciliation_status s
    WHERE s.status <> 'failed' AND s.feed_suspect IS NOT NULL
    UNION ALL
    SELECT 'sync_stale', NULL, NULL, s.last_success_at,
           'no Stays sync has succeeded for over an hour: check that the Dagster daemon is running and the schedule is on'
    FROM admin.reconciliation_status s
    WHERE s.last_success_at < pipeline.clock_now() - interval '1 hour'
) AS items
ORDER BY due_at NULLS FIRST;
