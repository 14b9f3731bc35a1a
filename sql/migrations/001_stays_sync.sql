-- 001: Stays listings and reservations, sync logs, quarantine, the reader role.
-- Applied by lock_pipeline itself (lock_pipeline/storage/migrations.py), once, in a transaction.
-- Tables only: functions and views live in sql/views/ and are re-applied on every migrate
-- (they were created here until schema 006 moved them; a database migrated before keeps working).

CREATE SCHEMA IF NOT EXISTS pipeline;
CREATE SCHEMA IF NOT EXISTS admin;

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
