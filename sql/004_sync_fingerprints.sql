-- 004: a cheap fingerprint of each stay's raw Stays record, so a sync skips parsing what did not change.
-- NULL for rows written before this version: the next sync parses them once and fills it in.
-- The same release computes content_hash more cheaply, so that first sync also rewrites each
-- stored stay once (same values, new hash); after it, an unchanged feed writes nothing.
ALTER TABLE pipeline.reservations ADD COLUMN source_fingerprint text;
