-- Append-only metrics ingest (docs/metrics.md, "Storage"): a batch's aggregate rows are COPYed
-- as they come into metrics_deltas, in the batch's transaction; compaction folds many batches'
-- deltas at once into metrics_minutes, usage_days and usage_day_versions, set-wise. Reads see
-- compacted and not-yet-compacted rows alike.
--
-- No key, no index and no foreign key: an append costs what a bare COPY costs. The table stays
-- small (compaction empties it; the ingest applies back-pressure when its backlog grows), so
-- reads scan it. Rows of a tenant deleted meanwhile are dropped by the compaction.
-- latency_1 .. latency_14 are the histogram buckets of metrics_minutes.latency, one column each
-- (ints COPY cheaper than arrays; the compaction sums them column by column).
CREATE TABLE metrics_deltas (
    tenant_id                uuid NOT NULL,
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
    latency_1 bigint NOT NULL, latency_2 bigint NOT NULL, latency_3 bigint NOT NULL,
    latency_4 bigint NOT NULL, latency_5 bigint NOT NULL, latency_6 bigint NOT NULL,
    latency_7 bigint NOT NULL, latency_8 bigint NOT NULL, latency_9 bigint NOT NULL,
    latency_10 bigint NOT NULL, latency_11 bigint NOT NULL, latency_12 bigint NOT NULL,
    latency_13 bigint NOT NULL, latency_14 bigint NOT NULL
);

-- The compaction updates each minute row once per pass: room on the page lets the update be a
-- HOT update (no index entry for the new row version).
ALTER TABLE metrics_minutes SET (fillfactor = 70);
