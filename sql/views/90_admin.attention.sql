-- What a person must act on, most urgent first. Each issue name is an AttentionIssue
-- (lock_pipeline/vocabulary.py); each horizon is published by the pipeline (settings.py).
CREATE OR REPLACE VIEW admin.attention AS
SELECT * FROM (
    SELECT 'unmapped_listing_with_arrival' AS issue,
           l.short_code AS listing_code,
           min(r.code) AS reservation_code,
           min(r.check_in_at) AS due_at,
           'listing has guests arriving within ' || pipeline.setting('attention.unmapped_listing_within')
           || ' but no confirmed lock: confirm or set its lock' AS what_to_do
    FROM pipeline.reservations r
    JOIN pipeline.listings l USING (listing_id)
    LEFT JOIN pipeline.lock_mappings m ON m.listing_id = r.listing_id
    WHERE r.kind = 'guest' AND r.status = 'confirmed' AND r.check_out_at > pipeline.clock_now()
      AND r.check_in_at < pipeline.clock_now() + (SELECT pipeline.setting('attention.unmapped_listing_within')::interval)
      AND m.status IS DISTINCT FROM 'confirmed'
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
    WHERE c.state IN ('pending_on_lock', 'programming')
      AND c.valid_from < pipeline.clock_now() + (SELECT pipeline.setting('attention.pin_not_on_lock_within')::interval)
      AND c.valid_until > pipeline.clock_now()
    UNION ALL
    SELECT 'pin_length_mismatch', l.short_code, failed.first_code, COALESCE(failed.first_from, s.pin_length_asked_at),
           'lock ' || k.device_id || ' (' || k.name || ') refused a ' || s.pin_length || '-digit PIN and asked for '
           || s.pin_length_asked || ' digits; its PINs wait until its length is set: '
           || 'lock-pipeline lock set ' || k.device_id || ' --pin-length ' || s.pin_length_asked
    FROM pipeline.lock_settings s
    JOIN pipeline.locks k USING (device_id)
    LEFT JOIN pipeline.lock_mappings m ON m.device_id = k.device_id AND m.status = 'confirmed'
    LEFT JOIN pipeline.listings l ON l.listing_id = m.listing_id
    LEFT JOIN LATERAL (SELECT min(r.code) AS first_code, min(c.valid_from) AS first_from
                       FROM pipeline.current_access_codes c JOIN pipeline.reservations r USING (reservation_id)
                       WHERE c.device_id = k.device_id AND c.state = 'failed'
                         AND c.valid_until > pipeline.clock_now()) failed ON true
    WHERE s.pin_length_asked IS NOT NULL AND s.pin_length_asked <> s.pin_length
    UNION ALL
    SELECT 'pin_changed', l.short_code, r.code, c.valid_from,
           'the guest''s digits changed (the lock would not move the old PIN, or already held these digits for '
           || 'someone else): give the guest the new code (lock-pipeline pin show ' || r.code || ')'
    FROM pipeline.current_access_codes c
    JOIN pipeline.reservations r USING (reservation_id) JOIN pipeline.listings l USING (listing_id)
    WHERE c.digits_changed_at IS NOT NULL AND c.state NOT IN ('revoked', 'cancelled', 'failed')
      AND c.valid_until > pipeline.clock_now()
      AND NOT EXISTS (SELECT 1 FROM pipeline.delivery_outbox o  -- a channel already gave the guest the new digits
                      WHERE o.code_id = c.code_id AND o.event_type = 'code.changed' AND o.state = 'delivered')
    UNION ALL
    SELECT 'lock_offline_arrival_soon', l.short_code, min(r.code), min(r.check_in_at),
           'lock is offline and a guest arrives within '
           || pipeline.setting('attention.lock_offline_arrival_within')
           || ': check its Wi-Fi and batteries; '
           || CASE WHEN k.offline_codes = 'unsupported' THEN 'this lock has no offline codes: no backup is possible'
                   WHEN bool_and(EXISTS (SELECT 1 FROM pipeline.backup_codes b WHERE b.reservation_id = r.reservation_id
                                         AND b.state = 'issued' AND b.invalid_at > pipeline.clock_now()))
                        THEN 'an offline backup code is issued for the arrival'
                   ELSE 'an offline backup code is issued ' || pipeline.setting('LOCK_PIPELINE_BACKUP_CODE_LEAD_MINUTES')
                        || ' minutes before access opens if the PIN is still not on the lock' END
    FROM pipeline.reservations r
    JOIN pipeline.listings l USING (listing_id)
    JOIN pipeline.lock_mappings m ON m.listing_id = r.listing_id AND m.status = 'confirmed'
    JOIN pipeline.locks k ON k.device_id = m.device_id
    WHERE r.kind = 'guest' AND r.status = 'confirmed' AND NOT k.online
      AND r.check_in_at BETWEEN pipeline.clock_now() - (SELECT pipeline.setting('attention.lock_offline_arrived_within')::interval)
                            AND pipeline.clock_now() + (SELECT pipeline.setting('attention.lock_offline_arrival_within')::interval)
    GROUP BY l.short_code, k.offline_codes
    UNION ALL
    SELECT 'backup_code_issued', l.short_code, r.code, b.effective_from,
           'the PIN is not on the lock, so an offline backup code was issued (valid '
           || to_char(b.effective_from AT TIME ZONE r.time_zone, 'DD/MM HH24:MI') || ' to '
           || to_char(b.invalid_at AT TIME ZONE r.time_zone, 'DD/MM HH24:MI')
           || ', to be used first within 24 h of its start): give it to the guest (lock-pipeline pin show ' || r.code || ')'
    FROM pipeline.backup_codes b
    JOIN pipeline.reservations r USING (reservation_id) JOIN pipeline.listings l USING (listing_id)
    WHERE b.state = 'issued' AND b.invalid_at > pipeline.clock_now() AND b.cleared_at IS NULL
      AND r.status = 'confirmed' AND r.missing_since IS NULL
      AND NOT EXISTS (SELECT 1 FROM pipeline.delivery_outbox o  -- a channel already gave it to the guest
                      WHERE o.reservation_id = b.reservation_id AND o.device_id = b.device_id
                        AND o.event_type = 'code.backup_issued' AND o.state = 'delivered'
                        AND o.valid_from = b.effective_from)
    UNION ALL
    SELECT 'backup_code_outstanding', l.short_code, r.code, b.invalid_at,
           'an offline backup code still opens lock ' || b.device_id || ' until '
           || to_char(b.invalid_at AT TIME ZONE r.time_zone, 'DD/MM HH24:MI')
           || ' but its stay no longer has access there (' || CASE WHEN r.status <> 'confirmed' THEN 'stay ' || r.status
                                                                  WHEN r.missing_since IS NOT NULL THEN 'stay gone from Stays'
                                                                  ELSE 'stay moved or lock changed' END
           || '): clear it at the lock (lock-pipeline backup-code clear ' || r.code || ')'
    FROM pipeline.backup_codes b
    JOIN pipeline.reservations r USING (reservation_id) JOIN pipeline.listings l USING (listing_id)
    LEFT JOIN pipeline.lock_mappings m ON m.listing_id = r.listing_id AND m.status = 'confirmed'
    WHERE b.state = 'issued' AND b.invalid_at > pipeline.clock_now() AND b.cleared_at IS NULL
      AND (r.status <> 'confirmed' OR r.missing_since IS NOT NULL OR m.device_id IS DISTINCT FROM b.device_id
           OR b.effective_from < r.check_in_at - make_interval(mins => COALESCE(l.access_lead_minutes,
                                     (SELECT pipeline.setting('LOCK_PIPELINE_ACCESS_LEAD_MINUTES')::integer)))
           OR b.invalid_at > r.check_out_at + make_interval(mins => COALESCE(l.access_grace_minutes,
                                     (SELECT pipeline.setting('LOCK_PIPELINE_ACCESS_GRACE_MINUTES')::integer))))
    UNION ALL
    SELECT 'lock_battery_low', l.short_code, min(r.code), min(r.check_in_at),
           'lock battery is low (' || k.battery || CASE WHEN k.battery_kind = 'percent' THEN '%' ELSE '' END
           || ') and a guest arrives within ' || pipeline.setting('attention.battery_arrival_within')
           || ': change the batteries before the arrival'
    FROM pipeline.reservations r
    JOIN pipeline.listings l USING (listing_id)
    JOIN pipeline.lock_mappings m ON m.listing_id = r.listing_id AND m.status = 'confirmed'
    JOIN admin.locks k ON k.lock_id = m.device_id
    WHERE r.kind = 'guest' AND r.status = 'confirmed' AND k.battery_low
      AND r.check_in_at BETWEEN pipeline.clock_now()
                            AND pipeline.clock_now() + (SELECT pipeline.setting('attention.battery_arrival_within')::interval)
    GROUP BY l.short_code, k.battery, k.battery_kind
    UNION ALL
    SELECT 'run_failed', NULL, array_to_string(f.stay_codes, ','), f.failed_at,
           f.job_name || ' run ' || f.run_id || ' failed: see it in the Dagster UI (Runs); ' || left(COALESCE(f.message, ''), 200)
    FROM pipeline.run_failures f
    WHERE f.failed_at > pipeline.clock_now() - (SELECT pipeline.setting('attention.run_failed_within')::interval)
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
    SELECT 'webhook_failed', l.short_code, COALESCE(r.code, w.reservation_ref), w.received_at,
           'a Stays webhook (' || w.action || ') could not be applied (' || left(COALESCE(w.last_error, ''), 200)
           || '): the next sync applies the change; if this repeats, check that Stays is up and the API credentials'
    FROM pipeline.stays_webhooks w
    LEFT JOIN pipeline.reservations r ON r.reservation_id = w.reservation_id
    LEFT JOIN pipeline.listings l ON l.listing_id = r.listing_id
    WHERE w.state = 'failed'
      AND w.received_at > COALESCE((SELECT max(started_at) FROM pipeline.reconciliation_logs
                                    WHERE status IN ('success', 'partial') AND date_type <> 'listings'), '-infinity')
    UNION ALL
    SELECT 'webhook_failed', NULL, NULL, max(w.received_at),
           count(*) || ' Stays webhook(s) refused in the last hour (' || left(string_agg(DISTINCT w.reason, '; '), 200)
           || '): if these are Stays'' own, the URL registered in Stays or STAYS_CLIENT_ID is wrong '
           || '(lock-pipeline webhooks --print-url shows the URL to register); changes then wait for the 30-minute sync'
    FROM pipeline.stays_webhooks w
    WHERE w.state = 'rejected' AND w.received_at > pipeline.clock_now() - interval '1 hour'
      AND NOT EXISTS (SELECT 1 FROM pipeline.stays_webhooks a  -- none accepted since: not a stray forgery
                      WHERE a.state <> 'rejected' AND a.webhook_id > w.webhook_id)
    HAVING count(*) > 0
    UNION ALL
    SELECT 'webhooks_silent', NULL, NULL, heard.last_at,
           'no Stays webhook for over ' || pipeline.setting('attention.webhooks_silent_after') || ' while the syncs since '
           || 'found ' || since.changes || ' change(s) Stays never announced: check the webhook URL registered in Stays '
           || '(lock-pipeline webhooks --print-url) and that the receiver is reachable through your proxy'
    FROM (SELECT max(received_at) AS last_at FROM pipeline.stays_webhooks WHERE state <> 'rejected') heard
    CROSS JOIN LATERAL (SELECT COALESCE(sum(created + updated + cancelled), 0) AS changes FROM pipeline.reconciliation_logs
                        WHERE started_at > heard.last_at AND status IN ('success', 'partial')) since
    WHERE heard.last_at < pipeline.clock_now() - (SELECT pipeline.setting('attention.webhooks_silent_after')::interval)
      AND since.changes > 0
    UNION ALL
    SELECT 'delivery_failed', NULL, NULL, ch.stopped_at,
           'Stays refused to write door codes to reservations (' || left(COALESCE(ch.stopped_reason, ''), 300)
           || '): give the API client write access in Stays > App Center > API, or set '
           || 'LOCK_PIPELINE_STAYS_WRITE_BACK=off. Write-back is tried again every hour and nothing is lost meanwhile; '
           || 'until then guests need their code another way (lock-pipeline pin show CODE)'
    FROM pipeline.delivery_channels ch
    WHERE ch.stopped_at IS NOT NULL
      AND ch.channel = ANY(string_to_array(pipeline.setting('delivery.channels'), ','))
    UNION ALL
    SELECT 'delivery_failed', NULL, array_to_string((array_agg(r.code ORDER BY r.check_in_at))[1:20], ','),
           min(r.check_in_at),
           w.channel || ': ' || count(*) || ' stay(s) whose latest code event was not delivered ('
           || left(COALESCE(max(w.last_error), ''), 200) || '); '
           || CASE WHEN bool_or(w.state = 'dead')
                   THEN 'gave up after 24 h on some: give those guests their code another way (lock-pipeline pin show CODE)'
                   ELSE 'retrying with back-off: check the receiver' END
    FROM pipeline.delivery_outbox w
    JOIN pipeline.reservations r USING (reservation_id)
    WHERE w.state IN ('failed', 'dead') AND r.check_out_at > pipeline.clock_now()
      AND w.channel = ANY(string_to_array(pipeline.setting('delivery.channels'), ','))
      AND NOT EXISTS (SELECT 1 FROM pipeline.delivery_outbox n
                      WHERE n.reservation_id = w.reservation_id AND n.channel = w.channel
                        AND n.outbox_id > w.outbox_id AND n.state <> 'skipped')
    GROUP BY w.channel
    UNION ALL
    SELECT 'code_not_delivered_arrival_soon', l.short_code, r.code, r.check_in_at,
           'the guest arrives within ' || pipeline.setting('attention.code_not_delivered_within')
           || ' and their code is on the lock, but no channel has delivered it (' || d.delivery_state
           || '): give it to them yourself (lock-pipeline pin show ' || r.code || ')'
    FROM pipeline.reservations r
    JOIN pipeline.listings l USING (listing_id)
    JOIN pipeline.current_access_codes c ON c.reservation_id = r.reservation_id
    JOIN pipeline.stay_delivery d ON d.reservation_id = r.reservation_id
    WHERE r.kind = 'guest' AND r.status = 'confirmed' AND c.state = 'active'
      AND c.active_at < pipeline.clock_now() - (SELECT pipeline.setting('attention.code_not_delivered_grace')::interval)
      AND r.check_in_at < pipeline.clock_now() + (SELECT pipeline.setting('attention.code_not_delivered_within')::interval)
      AND r.check_out_at > pipeline.clock_now()
      AND d.delivery_state IN ('pending', 'failed')
    UNION ALL
    SELECT 'sync_stale', NULL, NULL, s.last_success_at,
           'no Stays sync has succeeded for over ' || pipeline.setting('attention.sync_stale_after')
           || ': check that the Dagster daemon is running and the schedule is on'
    FROM admin.reconciliation_status s
    WHERE s.last_success_at < pipeline.clock_now() - (SELECT pipeline.setting('attention.sync_stale_after')::interval)
) AS items
ORDER BY due_at NULLS FIRST;
