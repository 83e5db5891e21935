-- Tenant management (issue #18 part 1, docs/ARCHITECTURE.md §25).
--
-- `last_used_at`: when a key last authenticated a request, written at most
-- once a minute per key by each API process (not a write per request).
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

-- Writing `last_used_at` must not make every API process's key cache drop
-- and re-read the key: V12's trigger now fires only on what the caches hold
-- (the hash, the tenant, the revocation), plus inserts and deletes.
DROP TRIGGER api_keys_notify ON api_keys;
CREATE TRIGGER api_keys_notify AFTER INSERT OR DELETE OR UPDATE OF key_hash, tenant_id, revoked_at
    ON api_keys FOR EACH ROW EXECUTE FUNCTION hookfleet_notify_api_key();
