-- 001: Stays listings and reservations, sync logs, quarantine, admin views, reader role.
-- Applied by lock_pipeline itself (lock_pipeline/storage/migrations.py), once, in a transaction.

CREATE SCHEMA IF NOT EXISTS pipeline;
CREATE SCHEMA IF NOT EXISTS admin;

-- The views' "now": the database clock, unless a session moved it (SET lock_pipeline.now = '...'),
-- as tests and the season simulator do so views agree with the pipeline's own clock.
CREATE FUNCTION pipeline.clock_now() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT COALESCE(NULLIF(current_setting('lock_pipeline.now', true), '')::timestamptz, now())
$$;

-- A listing as Stays knows it. The columns after `status` are owned by the operator
-- (per-listing overrides); the sync sets them on insert and never overwrites them.
CREATE TABLE pipeline.listings (
    listing_id             text PRIMARY KEY,          -- Stays _id
    short_code             text NOT NULL DEFAULT '',  -- Stays id, e.g. DB09I
    internal_name          text NOT NULL DEFAULT '',
    title                  text NOT NULL DEFAULT '',
    address                text NOT NULL DEFAULT '',
    city                   text NOT NULL DEFAULT '',
    status                 text NOT NULL,
    time_zone              text NOT NULL,
    default_check_in_time  time NOT NULL,
    default_check_out_time time NOT NULL,
    access_lead_minutes    integer CHECK (access_lead_minutes BETWEEN 0 AND 1440),   -- NULL: account default
    access_grace_minutes   integer CHECK (access_grace_minutes BETWEEN 0 AND 1440),  -- NULL: account default
    content_hash           text NOT NULL,
    first_seen_at          timestamptz NOT NULL,
    last_seen_at           timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL
);
CREATE INDEX listings_short_code ON pipeline.listings (short_code);

-- A reservation or a block. Never deleted: a cancellation sets status, a stay absent from
-- later feeds gets missing_since (the PIN life cycle decides, with a tolerance, what to do).
CREATE TABLE pipeline.reservations (
    reservation_id   text PRIMARY KEY,                 -- Stays _id
    code             text NOT NULL,                    -- Stays id, e.g. EV23J: what people type
    listing_id       text NOT NULL REFERENCES pipeline.listings (listing_id),
    stays_type       text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('guest', 'block')),
    status           text NOT NULL CHECK (status IN ('confirmed', 'cancelled', 'blocked')),
    check_in_date    date NOT NULL,
    check_in_time    time,                             -- NULL: Stays sent none, listing default used
    check_out_date   date NOT NULL,
    check_out_time   time,
    time_zone        text NOT NULL,
    check_in_at      timestamptz NOT NULL,
    check_out_at     timestamptz NOT NULL,
    guest_first_name text,                             -- the only guest data kept (LGPD)
    content_hash     text NOT NULL,
    first_seen_at    timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    cancelled_at     timestamptz,
    missing_since    timestamptz,
    CHECK (check_out_at >= check_in_at)
);
CREATE INDEX reservations_code ON pipeline.reservations (code);
CREATE INDEX reservations_listing_check_in ON pipeline.reservations (listing_id, check_in_at);
CREATE INDEX reservations_check_in_date ON pipeline.reservations (check_in_date);
CREATE INDEX reservations_live_window ON pipeline.reservations (check_out_at, check_in_at)
    WHERE status = 'confirmed' AND kind = 'guest';

-- One row per sync attempt, as the seed system's table: the admin's history of the feed.
CREATE TABLE pipeline.reconciliation_logs (
    sync_id      bigserial PRIMARY KEY,
    run_id       text,
    window_from  date,
    window_to    date,
    date_type    text,
    started_at   timestamptz NOT NULL,
    completed_at timestamptz,
    duration_ms  integer,
    fetched      integer NOT NULL DEFAULT 0,
    created      integer NOT NULL DEFAULT 0,
    updated      integer NOT NULL DEFAULT 0,
    unchanged    integer NOT NULL DEFAULT 0,
    cancelled    integer NOT NULL DEFAULT 0,
    missing      integer NOT NULL DEFAULT 0,
    quarantined  integer NOT NULL DEFAULT 0,
    errors       integer NOT NULL DEFAULT 0,
    status       text NOT NULL CHECK (status IN ('running', 'success', 'partial', 'failed')),
    message      text
);
CREATE INDEX reconciliation_logs_started ON pipeline.reconciliation_logs (started_at DESC);

-- Records Stays sent that could not be used, kept with the reason. Guest contact data is
-- stripped before a payload is stored. A record seen again unchanged only bumps last_seen_at.
CREATE TABLE pipeline.quarantined_records (
    quarantine_id bigserial PRIMARY KEY,
    entity        text NOT NULL CHECK (entity IN ('listing', 'reservation')),
    record_id     text,
    reason        text NOT NULL,
    payload       jsonb,
    payload_hash  text NOT NULL,
    first_sync_id bigint REFERENCES pipeline.reconciliation_logs (sync_id),
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    UNIQUE (entity, payload_hash)
);

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
       r.updated_at
FROM pipeline.reservations r
JOIN pipeline.listings l USING (listing_id)
WHERE r.kind = 'guest';

CREATE VIEW admin.blocks AS
SELECT r.code AS block_code,
       COALESCE(NULLIF(l.internal_name, ''), l.title) AS listing_name,
       (r.check_in_at AT TIME ZONE r.time_zone)  AS starts_local,
       (r.check_out_at AT TIME ZONE r.time_zone) AS ends_local,
       r.stays_type,
       r.status
FROM pipeline.reservations r
JOIN pipeline.listings l USING (listing_id)
WHERE r.kind = 'block';

-- The schedule runs every 30 minutes on the half hour (orchestration/schedules.py).
CREATE VIEW admin.reconciliation_status AS
SELECT last.sync_id          AS last_sync_id,
       last.started_at       AS last_started_at,
       last.completed_at     AS last_completed_at,
       last.duration_ms,
       last.status,
       last.fetched, last.created, last.updated, last.unchanged,
       last.cancelled, last.missing, last.quarantined, last.errors,
       last.message,
       (SELECT max(completed_at) FROM pipeline.reconciliation_logs WHERE status IN ('success', 'partial'))
                             AS last_success_at,
       date_bin('30 minutes', pipeline.clock_now(), TIMESTAMPTZ '2000-01-01 00:00+00') + interval '30 minutes'
                             AS next_scheduled_run,
       (SELECT count(*) FROM pipeline.quarantined_records) AS quarantined_total
FROM (SELECT * FROM pipeline.reconciliation_logs ORDER BY started_at DESC LIMIT 1) AS last;

CREATE VIEW admin.quarantine AS
SELECT entity, record_id, reason, first_seen_at, last_seen_at
FROM pipeline.quarantined_records;

-- Read-only reporting: the admin views and nothing else. Members are added by the operator:
--   CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE lock_pipeline_reader;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lock_pipeline_reader') THEN
        CREATE ROLE lock_pipeline_reader NOLOGIN;
    END IF;
END
$$;
REVOKE ALL ON SCHEMA pipeline FROM PUBLIC;
GRANT USAGE ON SCHEMA admin TO lock_pipeline_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA admin TO lock_pipeline_reader;
