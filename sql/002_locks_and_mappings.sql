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

CREATE VIEW admin.lock_mappings AS
SELECT l.short_code                              AS listing_code,
       COALESCE(NULLIF(l.internal_name, ''), l.title) AS listing_name,
       m.device_id                               AS lock_id,
       k.name                                    AS lock_name,
       round(m.score::numeric, 1)                AS score,
       COALESCE(m.status, 'unmatched')           AS status,
       m.source,
       m.runner_up_device_id                     AS runner_up_lock_id,
       ru.name                                   AS runner_up_lock_name,
       round(m.runner_up_score::numeric, 1)      AS runner_up_score,
       m.decided_by,
       m.decided_at
FROM pipeline.listings l
LEFT JOIN pipeline.lock_mappings m USING (listing_id)
LEFT JOIN pipeline.locks k ON k.device_id = m.device_id
LEFT JOIN pipeline.locks ru ON ru.device_id = m.runner_up_device_id;

CREATE VIEW admin.locks AS
SELECT k.device_id AS lock_id,
       k.name      AS lock_name,
       k.online,
       k.last_seen_at,
       k.last_online_at,
       k.missing_since,
       k.pin_length,
       l.short_code AS mapped_listing_code,
       COALESCE(NULLIF(l.internal_name, ''), l.title) AS mapped_listing_name
FROM pipeline.locks k
LEFT JOIN pipeline.lock_mappings m ON m.device_id = k.device_id AND m.status = 'confirmed'
LEFT JOIN pipeline.listings l ON l.listing_id = m.listing_id;

GRANT SELECT ON ALL TABLES IN SCHEMA admin TO lock_pipeline_reader;
