-- Plugins' outbound requests (egress) per tenant, namespace, destination host and minute, as the
-- gateway's Outbound entrypoint decided them (docs/metrics.md, "Egress"). Rows arrive in the
-- optional `egress` member of the metrics batches and are upserted in the batch's transaction.
-- host is `host[:port]` as in the request URL, or `(other)` for the hosts beyond the gateway's
-- per-minute bound.
CREATE TABLE egress_minutes (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace  text NOT NULL,
    host       text NOT NULL,
    minute     timestamptz NOT NULL,
    allowed    bigint NOT NULL,
    blocked    bigint NOT NULL,
    PRIMARY KEY (tenant_id, minute, namespace, host)
);

-- The same at hour resolution (the metrics rollup moves minute rows here, then prunes).
CREATE TABLE egress_hours (LIKE egress_minutes INCLUDING ALL);
ALTER TABLE egress_hours RENAME COLUMN minute TO hour;
ALTER TABLE egress_hours
    ADD CONSTRAINT egress_hours_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;

-- Running totals per namespace, never pruned: the source of the Prometheus counter
-- plugyard_egress_requests_total (monotonic across control-plane processes and restarts).
CREATE TABLE egress_totals (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace  text NOT NULL,
    allowed    bigint NOT NULL,
    blocked    bigint NOT NULL,
    PRIMARY KEY (tenant_id, namespace)
);

-- Outbound requests a gateway reported as lost (its outbox overflowed), like dropped_requests.
ALTER TABLE metrics_batches ADD COLUMN dropped_egress bigint NOT NULL DEFAULT 0;
