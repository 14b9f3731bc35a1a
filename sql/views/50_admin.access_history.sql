-- Every PIN action and its outcome, with the Dagster run that did it: the audit trail in SQL.
CREATE OR REPLACE VIEW admin.access_history AS
SELECT r.code AS reservation_code, e.action, e.outcome, e.detail, e.device_id AS lock_id,
       e.tuya_password_id, e.run_id, e.at
FROM pipeline.access_code_events e
JOIN pipeline.reservations r USING (reservation_id);
