-- Dead letters kept in PostgreSQL. Workers (and `endpoint delete`) still
-- publish to the queue `hookfleet.dead`, as the wire contract says; every
-- worker runs a keeper that moves what arrives there into this table in
-- batches and acks only after the commit. So the queue stays short, and
-- listing, filtering, replay and purge cost O(the matching rows) through the
-- indexes below instead of a scan of the whole queue, and one caller's action
-- never holds another's dead letters.
CREATE TABLE dead_letters (
    -- Cursor pages and replays go in this order (oldest kept first).
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- From the message's headers; '' when a header was missing.
    delivery_id     text NOT NULL,
    event_id        text NOT NULL,
    endpoint_id     text NOT NULL,
    tenant_id       text,
    event_type      text NOT NULL,
    -- Attempts made before it was dead-lettered (x-attempts).
    attempts        bigint NOT NULL DEFAULT 0,
    last_error      text,
    -- x-dead-at, else when the keeper took it.
    dead_at         timestamptz NOT NULL,
    -- x-received-at: when the router stored the event (ms); /recover filters on it.
    received_at_ms  bigint,
    -- The message body, only when the event is not stored under its tenant and
    -- id (a message without x-delivery-id, say). Otherwise the payload is the
    -- stored event: events (scope, id) = (coalesce(tenant_id, ''), event_id).
    body            bytea,
    kept_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_tenant ON dead_letters (tenant_id, id);
CREATE INDEX dead_letters_endpoint ON dead_letters (endpoint_id, id);
CREATE INDEX dead_letters_delivery ON dead_letters (delivery_id);
-- A message the keeper stored but could not ack (it died in between) comes
-- back with the same headers: the same delivery and x-dead-at is one dead
-- letter, kept once. (A delivery that dies again after a replay has a new
-- x-dead-at, and is a new dead letter.)
CREATE UNIQUE INDEX dead_letters_once ON dead_letters (delivery_id, dead_at) WHERE delivery_id <> '';

-- Replays run in the background; this row is their progress and their
-- cancel switch. `scope` is the tenant that asked ('' for the admin and the
-- CLI): a tenant sees and cancels only its own.
CREATE TABLE dead_letter_replays (
    id           text PRIMARY KEY,
    scope        text NOT NULL,
    filter       jsonb NOT NULL,
    rate         double precision,
    actor        text NOT NULL,
    -- running, then done, cancelled or failed; interrupted when the process
    -- running it went away (every dead letter not yet replayed is still kept).
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'done', 'cancelled', 'failed', 'interrupted')),
    cancel       boolean NOT NULL DEFAULT false,
    matched      bigint NOT NULL DEFAULT 0,
    replayed     bigint NOT NULL DEFAULT 0,
    discarded    bigint NOT NULL DEFAULT 0,
    skipped      bigint NOT NULL DEFAULT 0,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX dead_letter_replays_scope ON dead_letter_replays (scope, created_at DESC);
