-- Records Stays sent that could not be used, with the reason (guest contact data stripped).
CREATE OR REPLACE VIEW admin.quarantine AS
SELECT entity, record_id, reason, first_seen_at, last_seen_at
FROM pipeline.quarantined_records;
