-- 004: a cheap fingerprint of each stay's raw Stays record, so a sync skips parsing what did not change.
-- NULL for rows written before this version: the next sync parses them once and fills it in.
-- The same release computes content_hash more cheaply, so that first sync also rewrites each
-- stored stay once (same values, new hash); after it, an unchanged feed writes nothing.
ALTER TABLE pipeline.reservations ADD COLUMN source_fingerprint text;

-- Indexes every bulk write pays for, matched to the queries that exist (benchmarked at 100k stays):
-- stays are looked up by code case-insensitively (find_stay_by_code), which the plain index on
-- code could not serve; nothing filters reservations by (listing_id, check_in_at).
DROP INDEX pipeline.reservations_code;
CREATE INDEX reservations_code_upper ON pipeline.reservations (upper(code));
DROP INDEX pipeline.reservations_listing_check_in;
