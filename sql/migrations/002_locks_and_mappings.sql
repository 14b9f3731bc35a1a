-- 002: Tuya locks and the 1:1 listing-to-lock map.

-- A lock as the Tuya cloud reports it. Never deleted: a lock gone from the cloud gets missing_since.
CREATE TABLE pipeline.locks (
    device_id      text PRIMARY KEY,          -- Tuya device id
    name           text NOT NULL DEFAULT '',
    category       text NOT NULL DEFAULT '',
    product_name   text NOT NULL DEFAULT '',
    online         boolean NOT NULL DEFAULT false,
    pin_length     integer NOT NULL DEFAULT 7 CHECK (pin_length BETWEEN 4 AND 12),  -- Wi-Fi locks take 7
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    last_online_at timestamptz,
    missing_since  timestamptz,
    content_hash   text NOT NULL DEFAULT ''
);

-- One row per listing: the lock suggested for it, or confirmed by an admin or by a clear match.
-- The 1:1 rule is enforced here too, so a race or a second writer fails loudly:
-- listing_id is the key (one lock per listing) and a confirmed lock is unique (one listing per lock).
CREATE TABLE pipeline.lock_mappings (
    listing_id          text PRIMARY KEY REFERENCES pipeline.listings (listing_id),
    device_id           text,                 -- no FK: a mapped lock may vanish from Tuya (a check reports it)
    status              text NOT NULL CHECK (status IN ('suggested', 'confirmed', 'unmatched')),
    score               real,
    runner_up_device_id text,
    runner_up_score     real,
    source              text NOT NULL CHECK (source IN ('matcher', 'admin')),
    decided_by          text,
    decided_at          timestamptz,
    updated_at          timestamptz NOT NULL,
    CHECK (status = 'unmatched' OR device_id IS NOT NULL)
);
CREATE UNIQUE INDEX lock_mappings_one_listing_per_lock ON pipeline.lock_mappings (device_id)
    WHERE status = 'confirmed';

-- Pairs an admin rejected: never suggested again.
CREATE TABLE pipeline.mapping_rejections (
    listing_id  text NOT NULL REFERENCES pipeline.listings (listing_id),
    device_id   text NOT NULL,
    rejected_by text,
    rejected_at timestamptz NOT NULL,
    PRIMARY KEY (listing_id, device_id)
);

-- Every change of a confirmed mapping (confirm, set, remap, unmap, auto-confirm), for the audit trail.
CREATE TABLE pipeline.lock_mapping_events (
    event_id       bigserial PRIMARY KEY,
    listing_id     text NOT NULL,
    old_device_id  text,
    new_device_id  text,
    action         text NOT NULL,
    actor          text NOT NULL,
    run_id         text,
    at             timestamptz NOT NULL
);
CREATE INDEX lock_mapping_events_listing ON pipeline.lock_mapping_events (listing_id, at);
