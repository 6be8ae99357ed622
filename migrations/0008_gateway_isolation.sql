-- Gateway isolation (docs/operations.md, "Gateway pool"): namespace egress policies and
-- quarantined plugin versions.

-- A namespace's egress policy, pushed to gateways: {"allow": ["api.example.com",
-- "*.example.org", "127.0.0.1:8080"], "methods": ["GET"] | null}. An empty allowlist (the
-- default) denies every outbound fetch and connect() of the namespace's plugins.
ALTER TABLE namespaces ADD COLUMN egress jsonb NOT NULL DEFAULT '{"allow": [], "methods": null}'::jsonb;

-- A version a gateway found hanging its process (an endless loop): not routed until a new version
-- is activated or the tenant releases it. At most one open quarantine per version.
CREATE TABLE quarantines (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace_id uuid NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    plugin_id    uuid NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
    version_id   uuid NOT NULL REFERENCES plugin_versions (id) ON DELETE CASCADE,
    reason       text NOT NULL,
    reported_by  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz,
    released_by  text
);
CREATE INDEX quarantines_tenant_idx ON quarantines (tenant_id);
CREATE UNIQUE INDEX quarantines_open_idx ON quarantines (version_id) WHERE released_at IS NULL;
