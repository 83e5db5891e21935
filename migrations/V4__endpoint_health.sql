-- Circuit breaker state per endpoint, shared by every worker replica. A row
-- exists once the endpoint has failed; no row means closed and healthy.
CREATE TABLE endpoint_health (
    endpoint_id           text PRIMARY KEY REFERENCES endpoints(id) ON DELETE CASCADE,
    -- failures (connection errors, timeouts, 429, 5xx) since the last success
    consecutive_failures  integer NOT NULL DEFAULT 0,
    -- closed: consumed; open: not consumed until next_probe_at; half_open: one
    -- probe delivery is deciding (next_probe_at bounds how long it may take)
    circuit               text NOT NULL DEFAULT 'closed'
                          CHECK (circuit IN ('closed', 'open', 'half_open')),
    opened_at             timestamptz,
    next_probe_at         timestamptz,
    -- the current open period; doubles while probes keep failing
    cooldown_seconds      integer NOT NULL DEFAULT 0,
    -- first failure of the current streak (auto-disable counts from it)
    failing_since         timestamptz,
    last_success_at       timestamptz
);

-- Workers follow circuit changes through the registry: announce them (only the
-- transitions, not every failure count).
CREATE FUNCTION hookfleet_notify_circuit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.circuit IS DISTINCT FROM NEW.circuit THEN
        PERFORM pg_notify('hookfleet_config', 'endpoint_health');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER endpoint_health_notify AFTER INSERT OR UPDATE ON endpoint_health
    FOR EACH ROW EXECUTE FUNCTION hookfleet_notify_circuit();

-- Re-enabling an endpoint (after an auto-disable, a 410 or a pause) starts it
-- with a clean slate: closed circuit, no failure streak.
CREATE FUNCTION hookfleet_reset_health() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM endpoint_health WHERE endpoint_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER endpoints_reenabled_reset_health AFTER UPDATE OF is_active ON endpoints
    FOR EACH ROW WHEN (NEW.is_active AND NOT OLD.is_active)
    EXECUTE FUNCTION hookfleet_reset_health();
