-- Did a configured channel take each guest stay's current code? (admin.reservations, admin.attention,
-- admin.day_board.) "Current" is the newest announcement (code.active, code.changed, code.backup_issued)
-- of the stay's current code that was not skipped as superseded: after a move, the guest's new times.
--   not_configured: no delivery channel is switched on (pipeline.setting('delivery.channels') is empty)
--   delivered:      at least one configured channel took it (delivered_at: the first that did)
--   failed:         every configured channel gave up on it (retries spent) or is stopped
--   pending:        nothing to deliver yet, or on its way
--   (NULL):         the stay is cancelled or gone from Stays and has no live code: nothing to give anyone
CREATE OR REPLACE VIEW pipeline.stay_delivery AS
WITH configured AS (
    SELECT string_to_array(NULLIF(pipeline.setting('delivery.channels'), ''), ',') AS channels
)
SELECT r.reservation_id,
       CASE
           WHEN cfg.channels IS NULL THEN 'not_configured'
           WHEN r.status <> 'confirmed' AND c.code_id IS NULL THEN NULL
           WHEN latest.delivered_at IS NOT NULL THEN 'delivered'
           WHEN latest.given_up THEN 'failed'
           ELSE 'pending'
       END AS delivery_state,
       latest.delivered_at,
       latest.event_type AS delivered_event
FROM pipeline.reservations r
CROSS JOIN configured cfg
LEFT JOIN pipeline.current_access_codes c ON c.reservation_id = r.reservation_id
LEFT JOIN LATERAL (
    SELECT min(o.event_type) AS event_type, min(o.delivered_at) AS delivered_at,
           bool_and(o.state = 'dead' OR ch.stopped_at IS NOT NULL) AS given_up
    FROM pipeline.delivery_outbox o
    LEFT JOIN pipeline.delivery_channels ch ON ch.channel = o.channel
    WHERE o.event_id = (SELECT e.event_id FROM pipeline.delivery_outbox e
                        WHERE (e.code_id = c.code_id  -- the current code's, or the stay's backup code's
                               OR (e.code_id IS NULL AND e.reservation_id = r.reservation_id
                                   AND e.event_type = 'code.backup_issued'))
                          AND e.channel = ANY(cfg.channels) AND e.state <> 'skipped'
                          AND e.event_type IN ('code.active', 'code.changed', 'code.backup_issued')
                        ORDER BY e.outbox_id DESC LIMIT 1)
      AND o.channel = ANY(cfg.channels) AND o.state <> 'skipped'
) latest ON true
WHERE r.kind = 'guest';
