-- Each listing's effective settings and where each comes from: the listing's own (lock-pipeline listing
-- set), else the account setting ('account' when it changed the built-in default, else 'default'), as the
-- sync (zone, default times) and the PIN planner (lead, grace) use them. Sources are SettingSource values
-- (lock_pipeline/vocabulary.py); `overrides` lists what the listing sets for itself.
CREATE OR REPLACE VIEW pipeline.listing_settings AS
SELECT l.listing_id,
       COALESCE(l.time_zone, a.time_zone)                                      AS time_zone,
       CASE WHEN l.time_zone IS NOT NULL THEN 'listing'
            WHEN a.time_zone = d.time_zone THEN 'default' ELSE 'account' END    AS time_zone_source,
       COALESCE(l.default_check_in_time, CAST(a.check_in AS time))             AS check_in_time,
       CASE WHEN l.default_check_in_time IS NOT NULL THEN 'listing'
            WHEN a.check_in = d.check_in THEN 'default' ELSE 'account' END      AS check_in_time_source,
       COALESCE(l.default_check_out_time, CAST(a.check_out AS time))           AS check_out_time,
       CASE WHEN l.default_check_out_time IS NOT NULL THEN 'listing'
            WHEN a.check_out = d.check_out THEN 'default' ELSE 'account' END    AS check_out_time_source,
       COALESCE(l.access_lead_minutes, CAST(a.lead AS integer))                AS access_lead_minutes,
       CASE WHEN l.access_lead_minutes IS NOT NULL THEN 'listing'
            WHEN a.lead = d.lead THEN 'default' ELSE 'account' END              AS access_lead_source,
       COALESCE(l.access_grace_minutes, CAST(a.grace AS integer))              AS access_grace_minutes,
       CASE WHEN l.access_grace_minutes IS NOT NULL THEN 'listing'
            WHEN a.grace = d.grace THEN 'default' ELSE 'account' END            AS access_grace_source,
       NULLIF(concat_ws(', ',
           'time_zone=' || l.time_zone,
           'check_in_time=' || to_char(l.default_check_in_time, 'HH24:MI'),
           'check_out_time=' || to_char(l.default_check_out_time, 'HH24:MI'),
           'lead_minutes=' || l.access_lead_minutes,
           'grace_minutes=' || l.access_grace_minutes), '')                    AS overrides
FROM pipeline.listings l
CROSS JOIN (SELECT pipeline.setting('LOCK_PIPELINE_TIMEZONE')               AS time_zone,
                   pipeline.setting('LOCK_PIPELINE_DEFAULT_CHECK_IN_TIME')  AS check_in,
                   pipeline.setting('LOCK_PIPELINE_DEFAULT_CHECK_OUT_TIME') AS check_out,
                   pipeline.setting('LOCK_PIPELINE_ACCESS_LEAD_MINUTES')    AS lead,
                   pipeline.setting('LOCK_PIPELINE_ACCESS_GRACE_MINUTES')   AS grace) a
CROSS JOIN (SELECT pipeline.setting('default.LOCK_PIPELINE_TIMEZONE')               AS time_zone,
                   pipeline.setting('default.LOCK_PIPELINE_DEFAULT_CHECK_IN_TIME')  AS check_in,
                   pipeline.setting('default.LOCK_PIPELINE_DEFAULT_CHECK_OUT_TIME') AS check_out,
                   pipeline.setting('default.LOCK_PIPELINE_ACCESS_LEAD_MINUTES')    AS lead,
                   pipeline.setting('default.LOCK_PIPELINE_ACCESS_GRACE_MINUTES')   AS grace) d;
