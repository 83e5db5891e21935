-- hookfleet schema. Postgres is the source of truth for configuration (tenants,
-- endpoints, event types) and the record of what happened (events, deliveries,
-- attempts). Configuration changes are announced with NOTIFY hookfleet_config.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    tenant_id   text REFERENCES tenants(id) ON DELETE CASCADE,
    key_hash    text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE event_types (
    name         text PRIMARY KEY,
    description  text NOT NULL DEFAULT '',
    schema       jsonb NOT NULL DEFAULT '{"type":"object"}',
    example      jsonb NOT NULL DEFAULT '{}',
    deprecated   boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE endpoints (
    id               text PRIMARY KEY,
    tenant_id        text REFERENCES tenants(id) ON DELETE CASCADE,
    url              text NOT NULL,
    description      text NOT NULL DEFAULT '',
    -- subscribed event types; '{*}' means every type
    event_types      text[] NOT NULL DEFAULT '{*}',
    is_active        boolean NOT NULL DEFAULT true,
    -- [{"secret": "whsec_...", "expires_at": null | RFC 3339}]; every unexpired one signs
    secrets          jsonb NOT NULL,
    headers          jsonb NOT NULL DEFAULT '{}',
    metadata         jsonb NOT NULL DEFAULT '{}',
    rate_limit       integer,
    disabled_reason  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoints_tenant ON endpoints (tenant_id);

CREATE TABLE events (
    id           text PRIMARY KEY,
    tenant_id    text,
    type         text NOT NULL,
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_received_at ON events (received_at);

CREATE TABLE deliveries (
    id               text PRIMARY KEY,
    event_id         text NOT NULL,
    endpoint_id      text NOT NULL,
    tenant_id        text,
    event_type       text NOT NULL,
    -- pending: queued or waiting for a retry; succeeded; failed: attempts exhausted
    -- (in hookfleet.dead); dead: its endpoint was deleted before it could be sent
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'succeeded', 'failed', 'dead')),
    attempt_count    integer NOT NULL DEFAULT 0,
    last_attempt_at  timestamptz,
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- a redelivered event never creates a second delivery for the same endpoint
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX deliveries_endpoint_created ON deliveries (endpoint_id, id DESC);

CREATE TABLE delivery_attempts (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id           text NOT NULL,
    attempt               integer NOT NULL,
    -- succeeded | failed
    status                text NOT NULL,
    response_status_code  integer,
    error                 text,
    response_excerpt      text,
    latency_ms            integer NOT NULL,
    attempted_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt);

-- Router and workers keep an in-memory registry of endpoints and event types; any
-- change wakes them up.
CREATE FUNCTION hookfleet_notify_config() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hookfleet_config', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER endpoints_notify AFTER INSERT OR UPDATE OR DELETE ON endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION hookfleet_notify_config();
CREATE TRIGGER event_types_notify AFTER INSERT OR UPDATE OR DELETE ON event_types
    FOR EACH STATEMENT EXECUTE FUNCTION hookfleet_notify_config();
