-- Functions the views use. Re-applied on every `lock-pipeline migrate` (lock_pipeline/storage/migrations.py).

-- The views' "now": the database clock, unless a session moved it (SET lock_pipeline.now = '...'),
-- as tests and the season simulator do so views agree with the pipeline's own clock.
CREATE OR REPLACE FUNCTION pipeline.clock_now() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT COALESCE(NULLIF(current_setting('lock_pipeline.now', true), '')::timestamptz, now())
$$;

-- A cadence or horizon the pipeline published (lock_pipeline/settings.py published_settings), as text
-- (e.g. '24 hours', cast with ::interval),
-- so a view never repeats a literal that must match Python. A missing one is an error, not NULL:
-- a view that silently showed nothing would be worse than one that fails. SECURITY DEFINER: the
-- reader role reads the views, not pipeline.settings itself (published values hold no secret).
CREATE OR REPLACE FUNCTION pipeline.setting(setting_name text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found text;
BEGIN
    SELECT value INTO found FROM pipeline.settings WHERE name = setting_name;
    IF found IS NULL THEN
        RAISE EXCEPTION USING MESSAGE = 'setting ' || setting_name
            || ' is not published in pipeline.settings: run `lock-pipeline migrate`';
    END IF;
    RETURN found;
END
$$;
