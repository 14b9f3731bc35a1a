-- The admin's day: today's and tomorrow's arrivals and departures (days in the account's zone), one
-- row each, with the code's state, masked PIN, delivery state and what needs a person (admin.attention).
-- The Dagster asset day_board renders it as a table; set lock_pipeline.now to read another day.
CREATE OR REPLACE VIEW admin.day_board AS
WITH today AS (
    SELECT (pipeline.clock_now() AT TIME ZONE pipeline.setting('LOCK_PIPELINE_TIMEZONE'))::date AS day,
           pipeline.setting('LOCK_PIPELINE_TIMEZONE') AS zone
),
bounds AS (
    SELECT day, zone, (day::timestamp AT TIME ZONE zone) AS starts, ((day + 2)::timestamp AT TIME ZONE zone) AS ends
    FROM today
),
movements AS (
    SELECT r.reservation_id, 'arrival' AS movement, r.check_in_at AS at
    FROM pipeline.reservations r, bounds b
    WHERE r.kind = 'guest' AND r.status = 'confirmed' AND r.check_in_at >= b.starts AND r.check_in_at < b.ends
    UNION ALL
    SELECT r.reservation_id, 'departure', r.check_out_at
    FROM pipeline.reservations r, bounds b
    WHERE r.kind = 'guest' AND r.status = 'confirmed' AND r.check_out_at >= b.starts AND r.check_out_at < b.ends
),
attention AS MATERIALIZED (SELECT issue, listing_code, reservation_code FROM admin.attention)
SELECT CASE WHEN (m.at AT TIME ZONE b.zone)::date = b.day THEN 'today' ELSE 'tomorrow' END AS day_label,
       (m.at AT TIME ZONE b.zone)::date AS day,
       m.movement,
       (m.at AT TIME ZONE b.zone) AS at_local,
       a.listing_name,
       a.listing_code,
       a.reservation_code,
       a.guest_first_name,
       a.check_in_local,
       a.check_out_local,
       a.access_state,
       a.pin_masked,
       a.delivery_state,
       a.delivered_at,
       (SELECT string_agg(DISTINCT x.issue, ', ' ORDER BY x.issue) FROM attention x
        WHERE r.code = ANY(string_to_array(x.reservation_code, ','))
           OR (x.listing_code = a.listing_code
               AND x.issue IN ('unmapped_listing_with_arrival', 'lock_offline_arrival_soon'))) AS needs_a_person
FROM movements m
CROSS JOIN bounds b
JOIN pipeline.reservations r ON r.reservation_id = m.reservation_id
JOIN pipeline.listings l ON l.listing_id = r.listing_id
JOIN admin.reservations a ON a.reservation_code = r.code AND a.listing_code = l.short_code
ORDER BY day, a.listing_name, m.at, a.reservation_code;
