-- 010: a listing's and a lock's own settings, changed by command (lock-pipeline listing / lock) or from the
-- Dagster UI (listing_settings_job, lock_settings_job) instead of by SQL, each change recorded.

-- A listing's zone and default check-in/out times become overrides, as its access lead and grace already
-- are: NULL means "the account setting" (LOCK_PIPELINE_TIMEZONE, LOCK_PIPELINE_DEFAULT_CHECK_IN_TIME,
-- LOCK_PIPELINE_DEFAULT_CHECK_OUT_TIME), so a change of the account setting reaches every listing without
-- a value of its own. Same for a lock's PIN length (LOCK_PIPELINE_PIN_LENGTH, new in this version; before
-- it, the column's default 7 stood in for it).
ALTER TABLE pipeline.listings
    ALTER COLUMN time_zone DROP NOT NULL,
    ALTER COLUMN default_check_in_time DROP NOT NULL,
    ALTER COLUMN default_check_out_time DROP NOT NULL;
ALTER TABLE pipeline.locks
    ALTER COLUMN pin_length DROP NOT NULL,
    ALTER COLUMN pin_length DROP DEFAULT;

-- Every change of a listing's or lock's own setting: who, when, what it was and became, and how.
-- old_value / new_value NULL: the setting followed / follows the account setting.
CREATE TABLE pipeline.setting_changes (
    change_id  bigserial PRIMARY KEY,
    listing_id text REFERENCES pipeline.listings (listing_id),
    device_id  text REFERENCES pipeline.locks (device_id),
    setting    text NOT NULL CHECK (setting IN ('time_zone', 'check_in_time', 'check_out_time', 'lead_minutes',
                                                'grace_minutes', 'pin_length')),
    old_value  text,
    new_value  text,
    actor      text NOT NULL,
    via        text NOT NULL CHECK (via IN ('cli', 'dagster', 'migration')),
    run_id     text,                 -- the Dagster run that applied it (via dagster)
    note       text,
    at         timestamptz NOT NULL,
    CHECK ((listing_id IS NULL) <> (device_id IS NULL)),
    CHECK ((setting = 'pin_length') = (device_id IS NOT NULL)),
    CHECK ((via = 'dagster') = (run_id IS NOT NULL))
);
CREATE INDEX setting_changes_listing ON pipeline.setting_changes (listing_id, at) WHERE listing_id IS NOT NULL;
CREATE INDEX setting_changes_lock ON pipeline.setting_changes (device_id, at) WHERE device_id IS NOT NULL;

-- The length a lock's cloud asked for when it last refused a PIN for its length (Tuya 1109 naming it),
-- and when; cleared once the lock takes a PIN. admin.attention lists the lock (pin_length_mismatch)
-- while it differs from the lock's length; the lock's PINs are not retried until someone sets it.
ALTER TABLE pipeline.locks
    ADD COLUMN pin_length_asked    integer CHECK (pin_length_asked BETWEEN 1 AND 99),
    ADD COLUMN pin_length_asked_at timestamptz;

-- The old values. Until now the sync copied the account setting into a new listing's zone and times and
-- never touched them again; only an operator's SQL changed them. An old value is therefore that copy or
-- an operator's choice, and the two cannot always be told apart:
-- * a value equal to the account setting the pipeline last published (pipeline.settings, rewritten at
--   every start and migrate: what the running pipeline used) is taken as the copy and becomes NULL. The
--   listing's effective value is the same, so no stay's instants move; from now on it follows the
--   account setting.
-- * any other value (an operator's SQL, or the account setting of before a change of it) is what the
--   listing's stays are derived with today: it is kept as the listing's own, so nothing at a door
--   changes with this migration. It shows as source 'listing' in admin.listings, is recorded below, and
--   `lock-pipeline listing reset CODE` makes the listing follow the account setting.
-- * a database that never published its settings (not started since schema 006) has nothing to compare
--   with: every value is kept.
-- A lock's pin_length of 7 was the column's default (there was no account setting): it becomes NULL
-- (LOCK_PIPELINE_PIN_LENGTH, default 7: the same length). Any other length was set by SQL: kept.
UPDATE pipeline.listings SET time_zone = NULL
WHERE time_zone = (SELECT value FROM pipeline.settings WHERE name = 'LOCK_PIPELINE_TIMEZONE');
UPDATE pipeline.listings SET default_check_in_time = NULL
WHERE default_check_in_time = (SELECT CAST(value AS time) FROM pipeline.settings
                               WHERE name = 'LOCK_PIPELINE_DEFAULT_CHECK_IN_TIME');
UPDATE pipeline.listings SET default_check_out_time = NULL
WHERE default_check_out_time = (SELECT CAST(value AS time) FROM pipeline.settings
                                WHERE name = 'LOCK_PIPELINE_DEFAULT_CHECK_OUT_TIME');
UPDATE pipeline.locks SET pin_length = NULL WHERE pin_length = 7;

INSERT INTO pipeline.setting_changes (listing_id, device_id, setting, old_value, new_value, actor, via, note, at)
SELECT listing_id, NULL, kept.setting, kept.value, kept.value, 'migration 010', 'migration',
       'kept as the listing''s own: set (or copied from an earlier account setting) before per-listing '
       || 'settings had a command; lock-pipeline listing reset makes it follow the account setting', now()
FROM pipeline.listings
CROSS JOIN LATERAL (VALUES ('time_zone', time_zone),
                           ('check_in_time', to_char(default_check_in_time, 'HH24:MI')),
                           ('check_out_time', to_char(default_check_out_time, 'HH24:MI')),
                           ('lead_minutes', CAST(access_lead_minutes AS text)),
                           ('grace_minutes', CAST(access_grace_minutes AS text))) AS kept (setting, value)
WHERE kept.value IS NOT NULL
UNION ALL
SELECT NULL, device_id, 'pin_length', CAST(pin_length AS text), CAST(pin_length AS text), 'migration 010',
       'migration', 'kept as the lock''s own: set before PIN lengths had a command', now()
FROM pipeline.locks WHERE pin_length IS NOT NULL;
