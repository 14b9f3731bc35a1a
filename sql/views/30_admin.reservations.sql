-- Every guest stay with its PIN's state, masked PIN, access window and backup code in the listing's local
-- time, and whether the guest's channel got the current code (delivery_state: pipeline.stay_delivery).
CREATE OR REPLACE VIEW admin.reservations AS
SELECT r.code                                  AS reservation_code,
       COALESCE(NULLIF(l.internal_name, ''), l.title) AS listing_name,
       l.short_code                            AS listing_code,
       r.guest_first_name,
       (r.check_in_at AT TIME ZONE r.time_zone)  AS check_in_local,
       (r.check_out_at AT TIME ZONE r.time_zone) AS check_out_local,
       r.time_zone,
       r.status,
       r.stays_type,
       r.missing_since,
       r.updated_at,
       c.pin_masked,
       CASE
           WHEN c.state NOT IN ('revoked', 'cancelled') THEN c.state
           WHEN r.status = 'cancelled' THEN COALESCE(c.state, 'cancelled')
           WHEN r.check_out_at < pipeline.clock_now() THEN COALESCE(c.state, 'ended')
           WHEN m.status IS DISTINCT FROM 'confirmed' THEN 'no_lock'
           ELSE 'scheduled'
       END                                     AS access_state,
       (c.valid_from AT TIME ZONE r.time_zone)  AS access_from,
       (c.valid_until AT TIME ZONE r.time_zone) AS access_until,
       c.last_error,
       c.last_run_id,
       k.name                                  AS lock_name,
       b.code_masked                           AS backup_code_masked,  -- an offline backup code exists
       (b.effective_from AT TIME ZONE r.time_zone) AS backup_code_from,
       (b.invalid_at AT TIME ZONE r.time_zone)     AS backup_code_until,
       d.delivery_state,
       d.delivered_at
FROM pipeline.reservations r
JOIN pipeline.listings l USING (listing_id)
LEFT JOIN pipeline.lock_mappings m ON m.listing_id = r.listing_id
LEFT JOIN pipeline.current_access_codes c ON c.reservation_id = r.reservation_id
LEFT JOIN LATERAL (SELECT code_masked, effective_from, invalid_at FROM pipeline.backup_codes
                   WHERE reservation_id = r.reservation_id AND state = 'issued'
                   ORDER BY backup_id DESC LIMIT 1) b ON true
LEFT JOIN pipeline.locks k ON k.device_id = COALESCE(c.device_id, CASE WHEN m.status = 'confirmed' THEN m.device_id END)
LEFT JOIN pipeline.stay_delivery d ON d.reservation_id = r.reservation_id
WHERE r.kind = 'guest';
