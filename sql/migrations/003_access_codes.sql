-- 003: PIN life cycle (access codes), its audit trail, PIN reveals, failed runs.

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
