-- The current code of each stay: the newest live one, else the newest of any state.
CREATE OR REPLACE VIEW pipeline.current_access_codes AS
SELECT DISTINCT ON (reservation_id) *
FROM pipeline.access_codes
ORDER BY reservation_id, (state NOT IN ('revoked', 'cancelled')) DESC, created_at DESC, code_id DESC;
