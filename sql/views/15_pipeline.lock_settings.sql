-- Each lock's effective PIN length and where it comes from: the lock's own (lock-pipeline lock set), else
-- the account setting LOCK_PIPELINE_PIN_LENGTH ('account' when it changed the built-in default, else
-- 'default'). Sources are SettingSource values (lock_pipeline/vocabulary.py).
CREATE OR REPLACE VIEW pipeline.lock_settings AS
SELECT k.device_id,
       COALESCE(k.pin_length, CAST(a.pin_length AS integer)) AS pin_length,
       CASE WHEN k.pin_length IS NOT NULL THEN 'lock'
            WHEN a.pin_length = a.pin_length_default THEN 'default'
            ELSE 'account' END                                 AS pin_length_source,
       k.pin_length_asked,
       k.pin_length_asked_at
FROM pipeline.locks k
CROSS JOIN (SELECT pipeline.setting('LOCK_PIPELINE_PIN_LENGTH')         AS pin_length,
                   pipeline.setting('default.LOCK_PIPELINE_PIN_LENGTH') AS pin_length_default) a;
