-- Every lock Tuya reported, its state and the listing it is confirmed for.
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
       s.pin_length_source,   -- lock (lock-pipeline lock set), account (LOCK_PIPELINE_PIN_LENGTH) or default
       s.pin_length_asked     -- what the lock's cloud asked for when it refused a PIN for its length
FROM pipeline.locks k
JOIN pipeline.lock_settings s USING (device_id)
LEFT JOIN pipeline.lock_mappings m ON m.device_id = k.device_id AND m.status = 'confirmed'
LEFT JOIN pipeline.listings l ON l.listing_id = m.listing_id;
