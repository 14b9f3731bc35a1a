-- 006: views become code, cadences come from the pipeline, a reprocess says what it means.
--
-- Views and their functions moved to sql/views/ (one file each, re-applied on every migrate);
-- pipeline.schema_views records which version of them a database carries, so the code can
-- refuse to run against views it did not write.
CREATE TABLE pipeline.schema_views (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Cadences, horizons and settings the running pipeline publishes (lock_pipeline/settings.py
-- published_settings), so the views read them instead of repeating literals.
CREATE TABLE pipeline.settings (
    name         text PRIMARY KEY,
    value        text NOT NULL,
    unit         text NOT NULL DEFAULT '',
    published_at timestamptz NOT NULL DEFAULT now()
);

-- A reprocess asks for the code's work to run now. It used to backdate updated_at by a day so the
-- planner's staleness rule fired; now it sets this, and the executor clears it when it acts.
ALTER TABLE pipeline.access_codes ADD COLUMN retry_requested_at timestamptz;
