-- 005: a sync that got an empty or collapsed feed says so where the admin looks.
-- Such a sync is not a failure (Stays answered and nothing is lost or flagged), but stays booked or
-- changed meanwhile cannot be seen, so admin.attention lists it as sync_failing with the reason.

ALTER TABLE pipeline.reconciliation_logs ADD COLUMN feed_suspect text;  -- why the feed was not trusted; NULL when it was

