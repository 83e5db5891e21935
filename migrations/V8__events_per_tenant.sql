-- An event is identified by its tenant and its id together. Before V8 the key
-- was `id` alone: the first tenant to publish an id owned the row, and another
-- tenant's deliveries of the same id read (and resent) that tenant's payload.
-- `scope` is the tenant, or '' for events without one (tenant ids are never
-- empty), so the pair is a plain primary key. Deliveries find their event with
-- `e.scope = coalesce(d.tenant_id, '') AND e.id = d.event_id`: a delivery's
-- tenant is always its event's (the router routes a tenant's events only to
-- that tenant's endpoints).
ALTER TABLE events ADD COLUMN scope text GENERATED ALWAYS AS (coalesce(tenant_id, '')) STORED;
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (scope, id);

-- Rows written before V8 by one tenant under an id another tenant also used
-- were shared: they keep the first tenant's payload, now under that tenant's
-- scope only. The other tenant's deliveries of that id then find no event
-- (their detail shows no payload and resend answers 409) instead of showing
-- a foreign payload.
