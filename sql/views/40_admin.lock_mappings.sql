-- Each listing's lock: suggested, confirmed or unmatched, with the score and the runner-up.
CREATE OR REPLACE VIEW admin.lock_mappings AS
SELECT l.short_code                              AS listing_code,
       COALESCE(NULLIF(l.internal_name, ''), l.title) AS listing_name,
       m.device_id                               AS lock_id,
       k.name                                    AS lock_name,
       round(m.score::numeric, 1)                AS score,
       COALESCE(m.status, 'unmatched')           AS status,
       m.source,
       m.runner_up_device_id                     AS runner_up_lock_id,
       ru.name                                   AS runner_up_lock_name,
       round(m.runner_up_score::numeric, 1)      AS runner_up_score,
       m.decided_by,
       m.decided_at,
       ks.pin_length                             AS lock_pin_length,
       s.overrides                               AS listing_overrides  -- the settings the listing sets for itself (admin.listings)
FROM pipeline.listings l
JOIN pipeline.listing_settings s USING (listing_id)
LEFT JOIN pipeline.lock_mappings m USING (listing_id)
LEFT JOIN pipeline.locks k ON k.device_id = m.device_id
LEFT JOIN pipeline.lock_settings ks ON ks.device_id = m.device_id
LEFT JOIN pipeline.locks ru ON ru.device_id = m.runner_up_device_id;
