-- Every change to a tenant API key is announced on `hookfleet_keys`, with the
-- key's hash as the payload, so that the API processes' in-memory copy of the
-- live keys (crates/store/src/key_cache.rs) drops or adds it at once: a new
-- key, a revocation, a row deleted (a deleted tenant's keys go by cascade, and
-- row triggers fire for cascaded deletes too). A TRUNCATE names no key: it
-- sends `*`, and the copies reload everything.
CREATE FUNCTION hookfleet_notify_api_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('hookfleet_keys', OLD.key_hash);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('hookfleet_keys', NEW.key_hash);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION hookfleet_notify_api_key();

CREATE FUNCTION hookfleet_notify_api_keys_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hookfleet_keys', '*');
    RETURN NULL;
END $$;

CREATE TRIGGER api_keys_truncate_notify AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION hookfleet_notify_api_keys_truncated();
