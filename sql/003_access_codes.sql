-- 003: PIN life cycle (access codes), its audit trail, PIN reveals, failed runs, admin views.

CREATE TABLE pipeline.access_codes (
    code_id          bigserial PRIMARY KEY,
    reservation_id   text NOT NULL REFERENCES pipeline.reservations (reservation_id),
    device_id        text NOT NULL,
    valid_from       timestamptz NOT NULL,     -- lock-enforced window (Tuya effective_time)
    valid_until      timestamptz NOT NULL,     -- (Tuya invalid_time)
    state            text NOT NULL CHECK (state IN ('programming', 'pending_on_lock', 'active', 'revoking',
                                                    'revoked', 'failed', 'cancelled')),
    pin_ciphertext   bytea,                    -- Fernet; never the PIN itself
    pin_masked       text,                     -- e.g. •••••42
    lock_label       text NOT NULL,            -- the name on the lock, how a rerun finds its own PIN
    tuya_password_id text,
    tuya_phase       integer,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_error       text,
    last_run_id      text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    programmed_at    timestamptz,
    active_at        timestamptz,
    revoked_at       timestamptz,
    CHECK (valid_until > valid_from)
);
-- Exactly once: one live code per stay, lock and window.
CREATE UNIQUE INDEX access_codes_one_live_per_window ON pipeline.access_codes
    (reservation_id, device_id, valid_from, valid_until) WHERE state NOT IN ('revoked', 'cancelled');
CREATE INDEX access_codes_live ON pipeline.access_codes (state) WHERE state NOT IN ('revoked', 'cancelled');
CREATE INDEX access_codes_reservation ON pipeline.access_codes (reservation_id);
CREATE INDEX access_codes_device ON pipeline.access_codes (device_id);

-- Every PIN action and its outcome, with the Dagster run that did it: the audit trail in SQL.
CREATE TABLE pipeline.access_code_events (
    event_id         bigserial PRIMARY KEY,
    code_id          bigint REFERENCES pipeline.access_codes (code_id),
    reservation_id   text NOT NULL,
    device_id        text NOT NULL,
    action           text NOT NULL,
    outcome          text NOT NULL,
    tuya_password_id text,
    detail           text,
    run_id           text,
    at               timestamptz NOT NULL
);
CREATE INDEX access_code_events_reservation ON pipeline.access_code_events (reservation_id, at);

-- Who saw a PIN in clear, and when (`lock-pipeline pin show`).
CREATE TABLE pipeline.pin_reveals (
    reveal_id      bigserial PRIMARY KEY,
    code_id        bigint NOT NULL REFERENCES pipeline.access_codes (code_id),
    reservation_id text NOT NULL,
    revealed_by    text NOT NULL,
    reason         text,
    at             timestamptz NOT NULL
);

-- Every failed Dagster run, recorded by the run-failure sensor.
CREATE TABLE pipeline.run_failures (
    run_id     text PRIMARY KEY,
    job_name   text NOT NULL,
    stay_codes text[] NOT NULL DEFAULT '{}',
    message    text,
    failed_at  timestamptz NOT NULL
);

-- The current code of each stay: the newest live one, else the newest of any state.
CREATE VIEW pipeline.current_access_codes AS
SELECT DISTINCT ON (reservation_id) *
FROM pipeline.access_codes
ORDER BY reservation_id, (state NOT IN ('revoked', 'cancelled')) DESC, created_at DESC, code_id DESC;

DROP VIEW admin.reservations;
CREATE VIEW admin.reservations AS
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
       k.name                                  AS lock_name
FROM pipeline.reservations r
JOIN pipeline.listings l USING (listing_id)
LEFT JOIN pipeline.lock_mappings m ON m.listing_id = r.listing_id
LEFT JOIN pipeline.current_access_codes c ON c.reservation_id = r.reservation_id
LEFT JOIN pipeline.locks k ON k.device_id = COALESCE(c.device_id, CASE WHEN m.status = 'confirmed' THEN m.device_id END)
WHERE r.kind = 'guest';

CREATE VIEW admin.access_history AS
SELECT r.code AS reservation_code, e.action, e.outcome, e.detail, e.device_id AS lock_id,
       e.tuya_password_id, e.run_id, e.at
FROM pipeline.access_code_events e
JOIN pipeline.reservations r USING (reservation_id);

-- What a person must act on, most urgent first.
CREATE VIEW admin.attention AS
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
    SELECT 'sync_stale', NULL, NULL, s.last_success_at,
           'no Stays sync has succeeded for over an hour: check that the Dagster daemon is running and the schedule is on'
    FROM admin.reconciliation_status s
    WHERE s.last_success_at < pipeline.clock_now() - interval '1 hour'
) AS items
ORDER BY due_at NULLS FIRST;

GRANT SELECT ON ALL TABLES IN SCHEMA admin TO lock_pipeline_reader;
