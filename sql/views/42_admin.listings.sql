-- Every listing with its effective settings and where each comes from (default, account setting or the
-- listing's own), its lock's PIN length, and its last settings change.
-- Changed with `lock-pipeline listing set / reset` and `lock-pipeline lock set`, or the Dagster jobs
-- listing_settings_job and lock_settings_job; every change is in pipeline.setting_changes.
CREATE OR REPLACE VIEW admin.listings AS
SELECT l.short_code                                   AS listing_code,
       COALESCE(NULLIF(l.internal_name, ''), l.title) AS listing_name,
       l.listing_id,
       l.status,
       s.time_zone,
       s.time_zone_source,
       s.check_in_time,
       s.check_in_time_source,
       s.check_out_time,
       s.check_out_time_source,
       s.access_lead_minutes,
       s.access_lead_source,
       s.access_grace_minutes,
       s.access_grace_source,
       s.overrides,
       m.device_id                                    AS lock_id,
       k.pin_length                                   AS lock_pin_length,
       k.pin_length_source                            AS lock_pin_length_source,
       last.at                                        AS last_change_at,
       last.actor                                     AS last_change_by,
       last.via                                       AS last_change_via
FROM pipeline.listings l
JOIN pipeline.listing_settings s USING (listing_id)
LEFT JOIN pipeline.lock_mappings m ON m.listing_id = l.listing_id AND m.status = 'confirmed'
LEFT JOIN pipeline.lock_settings k ON k.device_id = m.device_id
LEFT JOIN LATERAL (SELECT c.at, c.actor, c.via FROM pipeline.setting_changes c
                   WHERE c.listing_id = l.listing_id ORDER BY c.at DESC, c.change_id DESC LIMIT 1) last ON true;
