-- Every lock Tuya reported, its state and the listing it is confirmed for.
CREATE OR REPLACE VIEW admin.locks AS
SELECT k.device_id AS lock_id,
       k.name      AS lock_name,
       k.online,
       k.last_seen_at,
       k.last_online_at,
       k.missing_since,
       k.pin_length,
       l.short_code AS mapped_listing_code,
       COALESCE(NULLIF(l.internal_name, ''), l.title) AS mapped_listing_name
FROM pipeline.locks k
LEFT JOIN pipeline.lock_mappings m ON m.device_id = k.device_id AND m.status = 'confirmed'
LEFT JOIN pipeline.listings l ON l.listing_id = m.listing_id;
