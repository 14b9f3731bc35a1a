-- 004: a cheap fingerprint of each stay's raw Stays record, so a sync skips parsing what did not change.
-- NULL for rows written before this version: the next sync parses them once and fills it in
-- (without touching updated_at, since nothing about the stay changed).
ALTER TABLE pipeline.reservations ADD COLUMN source_fingerprint text;
