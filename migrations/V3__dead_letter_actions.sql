-- Who replayed, purged or recovered which dead letter, and when (dlq replay|purge,
-- POST /api/v1/dead-letters/replay|purge, POST /api/v1/webhooks/{id}/recover).
CREATE TABLE dead_letter_actions (
    id           bigserial PRIMARY KEY,
    -- replay: sent back to hookfleet.deliveries; purge: removed; discard: removed
    -- because the delivery had succeeded or been re-sent since; recover: re-sent
    -- from the stored event by /recover
    action       text NOT NULL CHECK (action IN ('replay', 'purge', 'discard', 'recover')),
    delivery_id  text NOT NULL,
    event_id     text NOT NULL,
    endpoint_id  text NOT NULL,
    tenant_id    text,
    event_type   text NOT NULL,
    actor        text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letter_actions_delivery ON dead_letter_actions (delivery_id);
CREATE INDEX dead_letter_actions_at ON dead_letter_actions (at);
