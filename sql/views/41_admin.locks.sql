-- Every lock Tuya reported, its state, what it can do, its battery, and the listing it is confirmed for.
CREATE OR REPLACE VIEW admin.locks AS
SELECT k.device_id AS lock_id,
       k.name      AS lock_name,
       k.online,
       k.last_seen_at,
       k.last_online_at,
       k.missing_since,
       s.pin_length,
       l.short_code AS mapped_listing_code,
       COALESCE(NULLIF(l.internal_name, ''), l.title) AS mapped_listing_name,
       k.offline_codes,                       -- supported | unsupported | unknown (learnt from the cloud's answer)
       k.battery,                             -- as the lock reports it: a percent, or a level such as 'low'
       CASE WHEN k.battery_percent IS NOT NULL
                THEN k.battery_percent <= (SELECT pipeline.setting('LOCK_PIPELINE_BATTERY_LOW_PERCENT')::integer)
            WHEN k.battery IS NOT NULL THEN lower(k.battery) IN ('low', 'poweroff')
       END AS battery_low,
       k.battery_reported_at,
       k.battery_kind,                        -- percent or level
       s.pin_length_source,   -- lock (lock-pipeline lock set), account (LOCK_PIPELINE_PIN_LENGTH) or default
       s.pin_length_asked     -- what the lock's cloud asked for when it refused a PIN for its length
FROM pipeline.locks k
JOIN pipeline.lock_settings s USING (device_id)
LEFT JOIN pipeline.lock_mappings m ON m.device_id = k.device_id AND m.status = 'confirmed'
LEFT JOIN pipeline.listings l ON l.listing_id = m.listing_id;
