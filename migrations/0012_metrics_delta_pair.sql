-- Two delta tables used in turn (docs/metrics.md, "Storage"): the ingest appends to the one
-- metrics_delta_turn names; a compaction pass first points the ingest at the other table, then
-- folds the one it left and empties it with TRUNCATE under an ACCESS EXCLUSIVE lock (no DELETE
-- of each row, no dead rows left to vacuum). If the lock is not granted within a short timeout
-- (a long read holds the table), the pass deletes what it folded instead, as 0011 did.
-- Reads go through the view metrics_deltas: both tables, whichever holds a delta.
ALTER TABLE metrics_deltas RENAME TO metrics_deltas_0;
CREATE TABLE metrics_deltas_1 (LIKE metrics_deltas_0 INCLUDING ALL);

CREATE TABLE metrics_delta_turn (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    active  smallint NOT NULL CHECK (active IN (0, 1))
);
INSERT INTO metrics_delta_turn (active) VALUES (0);

CREATE VIEW metrics_deltas AS
    SELECT * FROM metrics_deltas_0
    UNION ALL
    SELECT * FROM metrics_deltas_1;
