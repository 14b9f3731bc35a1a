-- Owner and maintenance blocks: they never get a PIN.
CREATE OR REPLACE VIEW admin.blocks AS
SELECT r.code AS block_code,
       COALESCE(NULLIF(l.internal_name, ''), l.title) AS listing_name,
       (r.check_in_at AT TIME ZONE r.time_zone)  AS starts_local,
       (r.check_out_at AT TIME ZONE r.time_zone) AS ends_local,
       r.stays_type,
       r.status
FROM pipeline.reservations r
JOIN pipeline.listings l USING (listing_id)
WHERE r.kind = 'block';
