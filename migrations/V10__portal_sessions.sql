-- Tenant portal sign-ins, checked on every portal request (one primary-key
-- lookup), and the portal links already used (a link opens one session).
-- Rows are pruned once past their expiry (at each sign-in).

CREATE TABLE portal_sessions (
    -- The id the signed session cookie carries.
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    -- The API key the session was opened with, or the key that issued the
    -- portal link it was opened from; NULL for links the admin key issued.
    -- Revoking the key ends the session.
    key_id      text REFERENCES api_keys(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    -- Set by sign-out or by revoking key_id.
    ended_at    timestamptz
);
CREATE INDEX portal_sessions_key ON portal_sessions (key_id) WHERE ended_at IS NULL;
CREATE INDEX portal_sessions_expires ON portal_sessions (expires_at);

CREATE TABLE portal_links_used (
    -- The link's id (its signed nonce).
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    used_at     timestamptz NOT NULL DEFAULT now(),
    -- The link's own expiry: after it the row is not needed to refuse it.
    expires_at  timestamptz NOT NULL
);
CREATE INDEX portal_links_used_expires ON portal_links_used (expires_at);
