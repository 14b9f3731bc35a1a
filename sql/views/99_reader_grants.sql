-- Read-only reporting: the role lock_pipeline_reader (created once by migration 001) reads the
-- admin views and nothing else. Re-granted after the views are re-applied.
GRANT USAGE ON SCHEMA admin TO lock_pipeline_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA admin TO lock_pipeline_reader;
