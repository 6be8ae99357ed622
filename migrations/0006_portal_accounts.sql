-- Portal accounts: users with passwords, per-tenant roles, invites, server-side sessions and
-- login throttling. Secrets (session ids, invite tokens) are stored as SHA-256 digests only.

CREATE TABLE portal_users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email          text NOT NULL UNIQUE CHECK (email = lower(email)),
    -- scrypt$N$r$p$salt$hash (base64); NULL until the first invite is accepted.
    password_hash  text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE portal_memberships (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES portal_users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX portal_memberships_user_idx ON portal_memberships (user_id);

-- One-time invite links: the token is shown once (CLI or portal) and stored as a digest.
CREATE TABLE portal_invites (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       text NOT NULL CHECK (email = lower(email)),
    role        text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    token_hash  bytea NOT NULL UNIQUE,
    invited_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX portal_invites_tenant_idx ON portal_invites (tenant_id);

-- Server-side sessions: the cookie holds a random id, the table its digest and the CSRF token.
CREATE TABLE portal_sessions (
    id_hash       bytea PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES portal_users (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX portal_sessions_user_idx ON portal_sessions (user_id);
CREATE INDEX portal_sessions_expiry_idx ON portal_sessions (expires_at);

-- Failed sign-ins, counted per email and per client address within a sliding window.
CREATE TABLE portal_login_failures (
    id         bigserial PRIMARY KEY,
    email      text NOT NULL,
    client     text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX portal_login_failures_email_idx ON portal_login_failures (email, at);
CREATE INDEX portal_login_failures_client_idx ON portal_login_failures (client, at);

-- "Last used" of API tokens, shown in the portal (updated at most once a minute per token).
ALTER TABLE api_tokens ADD COLUMN last_used_at timestamptz;
