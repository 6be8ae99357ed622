-- Metrics and plugin logs reported by gateways (docs/metrics.md).
-- Rows are keyed by names (namespace, plugin) as the gateway knows them, so history survives
-- a deleted plugin; tenant_id is resolved from the tenant slug at ingest.

-- Every accepted batch, once: the primary key makes a replayed batch a no-op.
CREATE TABLE metrics_batches (
    batch_id          uuid PRIMARY KEY,
    gateway           text NOT NULL,
    sealed_at         timestamptz NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    rows              integer NOT NULL,
    logs              integer NOT NULL,
    requests          bigint NOT NULL,
    dropped_requests  bigint NOT NULL DEFAULT 0,
    dropped_logs      bigint NOT NULL DEFAULT 0,
    dropped_batches   bigint NOT NULL DEFAULT 0
);
CREATE INDEX metrics_batches_received_idx ON metrics_batches (received_at);
CREATE INDEX metrics_batches_gateway_idx ON metrics_batches (gateway, received_at);

-- latency: counts per bucket (<=1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000 ms,
-- overflow): 14 elements. outcome_*: tail outcomes, counted apart from the request counters.
CREATE TABLE metrics_minutes (
    tenant_id                uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace                text NOT NULL,
    plugin                   text NOT NULL,
    version                  text NOT NULL,
    variant                  text NOT NULL,
    minute                   timestamptz NOT NULL,
    requests                 bigint NOT NULL,
    s2xx                     bigint NOT NULL,
    s3xx                     bigint NOT NULL,
    s4xx                     bigint NOT NULL,
    s5xx                     bigint NOT NULL,
    failures                 bigint NOT NULL,
    outcome_ok               bigint NOT NULL,
    outcome_exception        bigint NOT NULL,
    outcome_exceeded_cpu     bigint NOT NULL,
    outcome_exceeded_memory  bigint NOT NULL,
    outcome_canceled         bigint NOT NULL,
    outcome_other            bigint NOT NULL,
    latency                  bigint[] NOT NULL CHECK (cardinality(latency) = 14),
    PRIMARY KEY (tenant_id, minute, namespace, plugin, version, variant)
);

-- The same shape at hour resolution: minute rows older than the minute retention move here.
CREATE TABLE metrics_hours (LIKE metrics_minutes INCLUDING ALL);
ALTER TABLE metrics_hours RENAME COLUMN minute TO hour;
ALTER TABLE metrics_hours
    ADD CONSTRAINT metrics_hours_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;

-- Usage per tenant per day (UTC), kept apart from the rollups so pruning never changes a bill.
CREATE TABLE usage_days (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day        date NOT NULL,
    requests   bigint NOT NULL,
    errors     bigint NOT NULL,
    PRIMARY KEY (tenant_id, day)
);
-- Distinct plugin versions that served at least one request that day (the Worker Loader's
-- billing unit on Cloudflare is the distinct Worker loaded).
CREATE TABLE usage_day_versions (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day        date NOT NULL,
    namespace  text NOT NULL,
    plugin     text NOT NULL,
    version    text NOT NULL,
    PRIMARY KEY (tenant_id, day, namespace, plugin, version)
);

-- The latest log lines and exceptions per plugin; the ingest keeps at most N per plugin.
CREATE TABLE plugin_logs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace  text NOT NULL,
    plugin     text NOT NULL,
    version    text NOT NULL,
    at         timestamptz NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('log', 'exception')),
    level      text NOT NULL,
    message    text NOT NULL,
    stack      text
);
CREATE INDEX plugin_logs_plugin_idx ON plugin_logs (tenant_id, namespace, plugin, id);
