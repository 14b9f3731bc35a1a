-- 008: Stays webhooks (the fast path), stable digits when dates move, no overlapping windows.

-- Every webhook the receiver answered. Accepted ones are stored before the receiver answers 2xx and
-- hold only what is needed to re-fetch (the action and the ids; never the guest's data); a
-- duplicate (same body) is stored once. Refused ones (wrong token or client id, too big, not JSON)
-- keep only the reason: a row nobody has to read, pruned after a while.
CREATE TABLE pipeline.stays_webhooks (
    webhook_id      bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'applied', 'failed', 'ignored', 'rejected')),
    action          text,                 -- reservation.created, ... (NULL when unreadable)
    event_at        timestamptz,          -- the body's _dt
    reservation_ref text,                 -- the payload's _id, else its id (short code): what is re-fetched
    listing_ref     text,                 -- the payload's _idlisting or listing _id
    body_sha256     text,                 -- one row per distinct body (duplicates change nothing twice)
    reason          text,                 -- why refused or ignored, or what applying it did
    reservation_id  text,                 -- the stay it turned out to be (after the fetch)
    applied_at      timestamptz,
    run_id          text,
    last_error      text
);
CREATE UNIQUE INDEX stays_webhooks_one_per_body ON pipeline.stays_webhooks (body_sha256) WHERE body_sha256 IS NOT NULL;
CREATE INDEX stays_webhooks_pending ON pipeline.stays_webhooks (webhook_id) WHERE state = 'pending';
CREATE INDEX stays_webhooks_received ON pipeline.stays_webhooks (received_at);

-- A lock that refuses to change a PIN's window (Tuya modify-password) is not asked again for that
-- code: it gets new digits the old way, and the stay is listed for a person (pin_changed).
ALTER TABLE pipeline.access_codes ADD COLUMN modify_refused_at timestamptz;
-- Set when a code replaced one whose digits the guest may already have: someone must tell them.
ALTER TABLE pipeline.access_codes ADD COLUMN digits_changed_at timestamptz;

-- The previous guest's departure on the same listing, looked up per stay by the planner so two
-- guests' windows never overlap.
CREATE INDEX reservations_listing_departures ON pipeline.reservations (listing_id, check_out_at)
    WHERE status = 'confirmed' AND kind = 'guest';
