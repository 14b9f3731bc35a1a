-- 009: offline backup codes when a lock cannot take (or confirm) the online PIN in time, and lock health.

-- A Tuya offline temporary password for a stay: the lock computes it itself, so it opens even while
-- the lock is offline or its PIN storage is full. It cannot be deleted remotely: a stay cancelled or
-- moved after one was issued is listed for a person (admin.attention backup_code_outstanding) until
-- they confirm they cleared it at the lock (Tuya's clear_one code) or it expires.
CREATE TABLE pipeline.backup_codes (
    backup_id         bigserial PRIMARY KEY,
    reservation_id    text NOT NULL REFERENCES pipeline.reservations (reservation_id),
    device_id         text NOT NULL,
    name              text NOT NULL,              -- the name the cloud knows it by (unique among the lock's live ones)
    requested_from    timestamptz NOT NULL,       -- the window asked for (whole hours, inside the stay's access window)
    requested_until   timestamptz NOT NULL,
    state             text NOT NULL CHECK (state IN ('requesting', 'issued', 'lost')),
    tuya_offline_id   text,                       -- offline_temp_password_id
    code_ciphertext   bytea,                      -- Fernet, as the PINs; never the digits themselves
    code_masked       text,
    effective_from    timestamptz,                -- the window the cloud actually used
    invalid_at        timestamptz,
    issued_at         timestamptz,
    run_id            text,
    clear_ciphertext  bytea,                      -- the clear_one digits, once a person asked for them
    clear_requested_at timestamptz,
    clear_requested_by text,
    cleared_at        timestamptz,                -- a person confirmed they typed the clear code at the lock
    cleared_by        text,
    created_at        timestamptz NOT NULL
);
CREATE INDEX backup_codes_reservation ON pipeline.backup_codes (reservation_id);
CREATE INDEX backup_codes_live ON pipeline.backup_codes (invalid_at) WHERE state = 'issued' AND cleared_at IS NULL;

-- What each lock can do and how it is: offline-password support (learnt from the cloud's answer),
-- and its battery as the lock reports it.
ALTER TABLE pipeline.locks ADD COLUMN offline_codes text NOT NULL DEFAULT 'unknown'
    CHECK (offline_codes IN ('unknown', 'supported', 'unsupported'));
ALTER TABLE pipeline.locks ADD COLUMN offline_codes_checked_at timestamptz;
ALTER TABLE pipeline.locks ADD COLUMN battery text;             -- verbatim, e.g. '87' or 'low'
ALTER TABLE pipeline.locks ADD COLUMN battery_kind text;        -- 'percent' or 'level'
ALTER TABLE pipeline.locks ADD COLUMN battery_percent integer;  -- when the lock reports one
ALTER TABLE pipeline.locks ADD COLUMN battery_reported_at timestamptz;

-- `pin show` reveals a backup code too (and a stay may have only that): a reveal names what was shown.
ALTER TABLE pipeline.pin_reveals ALTER COLUMN code_id DROP NOT NULL;
ALTER TABLE pipeline.pin_reveals ADD COLUMN backup_id bigint REFERENCES pipeline.backup_codes (backup_id);
