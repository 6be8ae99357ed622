-- Plugyard: tenants, tokens, namespaces, plugins, versions, routes, deployments and pushes.
-- Every table that holds tenant data carries tenant_id so every query can filter by it.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Tokens are stored as SHA-256 digests; the plaintext is shown once at creation.
-- tenant_id IS NULL marks an admin token.
CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    prefix      text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_tokens_tenant_idx ON api_tokens (tenant_id);

CREATE TABLE namespaces (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE plugins (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace_id       uuid NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    name               text NOT NULL,
    vars               jsonb NOT NULL DEFAULT '{}'::jsonb,
    active_version_id  uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace_id, name)
);
CREATE INDEX plugins_tenant_idx ON plugins (tenant_id);

-- Versions are immutable and content-addressed: hash = SHA-256 of modules + settings.
CREATE TABLE plugin_versions (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plugin_id            uuid NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
    number               integer NOT NULL,
    hash                 text NOT NULL,
    main_module          text NOT NULL,
    modules              jsonb NOT NULL,
    compatibility_date   text NOT NULL,
    compatibility_flags  text[] NOT NULL DEFAULT '{}',
    size_bytes           integer NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (plugin_id, hash),
    UNIQUE (plugin_id, number)
);
CREATE INDEX plugin_versions_tenant_idx ON plugin_versions (tenant_id);

ALTER TABLE plugins
    ADD CONSTRAINT plugins_active_version_fk
    FOREIGN KEY (active_version_id) REFERENCES plugin_versions (id) ON DELETE SET NULL;

-- A route pattern is globally unique; host/host_suffix/wildcard are derived from it so the
-- cross-tenant host-overlap check is plain SQL.
CREATE TABLE routes (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace_id  uuid NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    plugin_id     uuid NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
    pattern       text NOT NULL UNIQUE,
    host          text NOT NULL,
    host_suffix   text NOT NULL,
    wildcard      boolean NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routes_namespace_idx ON routes (namespace_id);
CREATE INDEX routes_tenant_idx ON routes (tenant_id);
CREATE INDEX routes_host_suffix_idx ON routes (host_suffix);
-- Finds the routes below a wildcard host: reverse('a.acme.test') LIKE reverse('acme.test') || '.%'.
CREATE INDEX routes_host_suffix_rev_idx ON routes (reverse(host_suffix) text_pattern_ops);

-- A deployment is a numbered snapshot of what a namespace serves (without module code: the
-- versions are immutable and referenced by id).
CREATE TABLE deployments (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace_id  uuid NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    revision      integer NOT NULL,
    reason        text NOT NULL,
    actor         text NOT NULL,
    state         jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace_id, revision)
);
CREATE INDEX deployments_tenant_idx ON deployments (tenant_id);

-- One row per (deployment, gateway): recorded as pending in the deployment's transaction, so
-- a control plane that dies before pushing leaves work the retry loop finds.
CREATE TABLE pushes (
    deployment_id  uuid NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    gateway        text NOT NULL,
    status         text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'superseded')),
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, gateway)
);
CREATE INDEX pushes_open_idx ON pushes (status) WHERE status IN ('pending', 'failed');
