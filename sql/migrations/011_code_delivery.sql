-- 011: the code reaches the guest: a transactional outbox of code events, one row per channel.
--
-- A row is written in the same transaction as the state change it announces (access/store.py), so
-- an event exists exactly when its change does; the delivery job sends it later, at least once.
-- No row ever holds a PIN in clear: the digits are read from the code row (or, for a backup code,
-- from pin_ciphertext, Fernet like access_codes) and decrypted at send time.
CREATE TABLE pipeline.delivery_outbox (
    outbox_id       bigserial PRIMARY KEY,
    event_id        text NOT NULL,            -- the event's id, the same on every channel and every
                                              -- retry: the notification's webhook-id
    event_type      text NOT NULL CHECK (event_type IN ('code.active', 'code.changed', 'code.backup_issued',
                                                        'code.failed', 'code.revoked')),
    channel         text NOT NULL CHECK (channel IN ('stays_field', 'notify')),
    reservation_id  text NOT NULL REFERENCES pipeline.reservations (reservation_id),
    code_id         bigint REFERENCES pipeline.access_codes (code_id),
    device_id       text NOT NULL,
    valid_from      timestamptz,              -- the window the event announces (a snapshot: a later
    valid_until     timestamptz,              -- move is its own event)
    pin_ciphertext  bytea,                    -- only digits that are not the code row's own (a backup code)
    occurred_at     timestamptz NOT NULL,     -- when the change happened (the pipeline's clock)
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed', 'dead', 'skipped')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_attempt_at timestamptz,
    last_error      text,                     -- never a response body (a receiver may echo the request)
    delivered_at    timestamptz,
    run_id          text,                     -- the delivery run that last tried it
    UNIQUE (event_id, channel)
);
CREATE INDEX delivery_outbox_due ON pipeline.delivery_outbox (next_attempt_at) WHERE state IN ('pending', 'failed');
CREATE INDEX delivery_outbox_stay ON pipeline.delivery_outbox (reservation_id, channel, outbox_id);
CREATE INDEX delivery_outbox_code ON pipeline.delivery_outbox (code_id, outbox_id);

-- Per channel: stopped (Stays refused writes with 403/404: one alert, tried again hourly, not a
-- retry storm), and what it found out once (the Stays custom field's id).
CREATE TABLE pipeline.delivery_channels (
    channel          text PRIMARY KEY CHECK (channel IN ('stays_field', 'notify')),
    stopped_at       timestamptz,
    stopped_reason   text,
    last_probe_at    timestamptz,
    stays_field_name text,                    -- the custom field's internalName the id below belongs to
    stays_field_id   text,                    -- its _idfield
    updated_at       timestamptz NOT NULL
);
CREATE INDEX delivery_outbox_failing ON pipeline.delivery_outbox (reservation_id) WHERE state IN ('failed', 'dead');
