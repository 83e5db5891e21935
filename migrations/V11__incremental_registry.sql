-- Issue #16: cost that grows with endpoints, not endpoints × workers.
--
-- 1. Each change to an endpoint (or its circuit) names the endpoint, so the
--    processes read that one row instead of reloading the whole table
--    (docs/ARCHITECTURE.md §21). Payload: `endpoint:<id>`. Event types keep the
--    statement-level `event_types` payload (the catalog is reloaded whole).
DROP TRIGGER endpoints_notify ON endpoints;

CREATE FUNCTION hookfleet_notify_endpoint() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('hookfleet_config', 'endpoint:' || OLD.id);
    ELSE
        PERFORM pg_notify('hookfleet_config', 'endpoint:' || NEW.id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER endpoints_notify AFTER INSERT OR UPDATE OR DELETE ON endpoints
    FOR EACH ROW EXECUTE FUNCTION hookfleet_notify_endpoint();

CREATE OR REPLACE FUNCTION hookfleet_notify_circuit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('hookfleet_config', 'endpoint:' || OLD.endpoint_id);
    ELSIF TG_OP = 'INSERT' OR OLD.circuit IS DISTINCT FROM NEW.circuit
          OR OLD.next_probe_at IS DISTINCT FROM NEW.next_probe_at THEN
        PERFORM pg_notify('hookfleet_config', 'endpoint:' || NEW.endpoint_id);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER endpoint_health_notify ON endpoint_health;
CREATE TRIGGER endpoint_health_notify AFTER INSERT OR UPDATE OR DELETE ON endpoint_health
    FOR EACH ROW EXECUTE FUNCTION hookfleet_notify_circuit();

-- 2. The live workers, for sharing the endpoint queues among them: each worker
--    renews its row every `worker.heartbeat`; one silent for
--    `worker.member_timeout` is gone. Rows of workers that stopped are deleted
--    by the worker on its way out, or by any worker once they are an hour old.
CREATE TABLE worker_members (
    id            text PRIMARY KEY,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);
