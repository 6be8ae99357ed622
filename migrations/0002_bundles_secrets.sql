-- Bundles and secrets: per-version limits, namespace variables, encrypted secrets.

-- Per-version isolate limits ({"cpu_ms": int, "subrequests": int}, either may be absent);
-- part of the content hash, pushed to the gateway as the loader's `limits`.
ALTER TABLE plugin_versions ADD COLUMN limits jsonb;

-- Plain variables every plugin of the namespace sees (a plugin's own vars win on a clash).
ALTER TABLE namespaces ADD COLUMN vars jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Secrets of a namespace (plugin_id IS NULL) or of one plugin, encrypted with AES-256-GCM under
-- PLUGYARD_SECRETS_KEY: ciphertext = 12-byte nonce || ciphertext || tag, with the row's tenant,
-- scope and name as associated data. A row is never updated in place: setting a secret inserts a
-- new row and marks the previous one replaced, so a deployment snapshot can reference the exact
-- value it was recorded with (by row id) without ever holding plaintext.
CREATE TABLE secrets (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace_id  uuid NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    plugin_id     uuid REFERENCES plugins (id) ON DELETE CASCADE,
    name          text NOT NULL,
    key_id        text NOT NULL,
    ciphertext    bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    replaced_at   timestamptz
);
CREATE INDEX secrets_tenant_idx ON secrets (tenant_id);
CREATE INDEX secrets_namespace_idx ON secrets (namespace_id);
-- At most one current value per (scope, name); plugin_id NULL is the namespace scope.
CREATE UNIQUE INDEX secrets_current_idx
    ON secrets (namespace_id, coalesce(plugin_id, '00000000-0000-0000-0000-000000000000'::uuid), name)
    WHERE replaced_at IS NULL;
