"""SQL of the append-only ingest: minute deltas appended per batch, folded in by compaction.

The ingest COPYs a batch's aggregate rows into one of two delta tables (no key, no index), the
one `metrics_delta_turn` names, in the batch's transaction. A compaction pass turns the ingest
to the other table, then moves every delta of the one it left into `metrics_minutes`,
`usage_days` and `usage_day_versions` in one statement and empties it with TRUNCATE (DELETE if
a reader holds it; migrations/0011 and 0012, docs/metrics.md "Storage"). Reads add the
not-yet-compacted deltas of both tables (the view `metrics_deltas`) to the compacted rows
(`PENDING_MINUTES`, used by repository.py and the experiments' traffic read).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from plugyard.metrics.schemas import N_BUCKETS

_KEY = "namespace, plugin, version, variant"
_SUM_NAMES = (
    "requests",
    "s2xx",
    "s3xx",
    "s4xx",
    "s5xx",
    "failures",
    "outcome_ok",
    "outcome_exception",
    "outcome_exceeded_cpu",
    "outcome_exceeded_memory",
    "outcome_canceled",
    "outcome_other",
)
_SUMS = ", ".join(_SUM_NAMES)
_LATENCY_NAMES = tuple(f"latency_{i}" for i in range(1, N_BUCKETS + 1))
DELTA_COLUMNS = ("tenant_id", *_KEY.split(", "), "minute", *_SUM_NAMES, *_LATENCY_NAMES)
_SUMMED = ", ".join(f"sum({c})::bigint AS {c}" for c in _SUM_NAMES)
_LATENCY_SUMMED = "ARRAY[" + ", ".join(f"sum({c})::bigint" for c in _LATENCY_NAMES) + "] AS latency"

# The deltas of one tenant in [$2, $3) with the query filters ($4-$7) of repository.py, summed
# per key and minute: what a read adds to the compacted minute rows.
PENDING_MINUTES = f"""
SELECT {_KEY}, minute, {_SUMMED}, {_LATENCY_SUMMED} FROM metrics_deltas
WHERE tenant_id = $1 AND ($4::text IS NULL OR namespace = $4) AND ($5::text IS NULL OR plugin = $5)
  AND ($6::text IS NULL OR version LIKE $6 || '%') AND ($7::text IS NULL OR variant = $7)
  AND minute >= $2 AND minute < $3
GROUP BY {_KEY}, minute
"""  # noqa: S608 (column names from constants; values are $n parameters)
# The same for the experiments' traffic read: one plugin's variants since a minute.
PENDING_TRAFFIC = f"""
SELECT variant, sum(requests)::bigint AS requests, sum(s5xx)::bigint AS s5xx, {_LATENCY_SUMMED}
FROM metrics_deltas
WHERE tenant_id = $1 AND namespace = $2 AND plugin = $3 AND variant = ANY($4::text[])
  AND minute >= date_trunc('minute', $5::timestamptz)
GROUP BY variant
"""  # noqa: S608 (column names from constants; values are $n parameters)

_ADD = ", ".join(f"{c} = m.{c} + excluded.{c}" for c in _SUM_NAMES)
_ADD_LATENCY = (
    "latency = ARRAY["
    + ", ".join(f"m.latency[{i}] + excluded.latency[{i}]" for i in range(1, N_BUCKETS + 1))
    + "]"
)
# The two tables the ingest appends to in turn (migrations/0012_metrics_delta_pair.sql); reads
# use the view `metrics_deltas` over both.
DELTA_TABLES = ("metrics_deltas_0", "metrics_deltas_1")


def _fold(source: str) -> str:
    """Deltas of `source` summed per key and added to minute rows, usage and versions seen.

    One upsert-add of each minute row however many batches touched it, the usage per
    tenant-day and the versions seen per day, in one statement (one snapshot). Deltas of
    tenants deleted since are dropped (checked per key, after summing). Returns the deltas read.
    """
    return f"""
WITH {source}, sums AS (
  SELECT tenant_id, {_KEY}, minute, {_SUMMED}, {_LATENCY_SUMMED}, count(*) AS n
  FROM moved GROUP BY tenant_id, {_KEY}, minute
), known AS (
  SELECT * FROM sums s WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = s.tenant_id)
), minutes AS (
  INSERT INTO metrics_minutes AS m (tenant_id, {_KEY}, minute, {_SUMS}, latency)
  SELECT tenant_id, {_KEY}, minute, {_SUMS}, latency FROM known
  ORDER BY tenant_id, minute, {_KEY}
  ON CONFLICT (tenant_id, minute, {_KEY}) DO UPDATE SET {_ADD}, {_ADD_LATENCY}
), days AS (
  INSERT INTO usage_days AS u (tenant_id, day, requests, errors)
  SELECT tenant_id, (minute AT TIME ZONE 'UTC')::date, sum(requests)::bigint, sum(s5xx)::bigint
  FROM known GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (tenant_id, day)
  DO UPDATE SET requests = u.requests + excluded.requests, errors = u.errors + excluded.errors
), versions AS (
  INSERT INTO usage_day_versions (tenant_id, day, namespace, plugin, version)
  SELECT DISTINCT tenant_id, (minute AT TIME ZONE 'UTC')::date, namespace, plugin, version
  FROM known WHERE requests > 0 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT DO NOTHING
)
SELECT coalesce(sum(n), 0)::bigint FROM sums
"""  # noqa: S608 (table and column names from constants; no values)


# With the table locked exclusively: read it whole (then TRUNCATE it). A plain scan, nothing
# written per delta.
_FOLD_LOCKED = tuple(_fold(f"moved AS (SELECT * FROM {t})") for t in DELTA_TABLES)  # noqa: S608
# Without the lock: delete what this snapshot sees and fold exactly that (a delta committed
# meanwhile stays for the next pass).
_FOLD_DELETING = tuple(_fold(f"moved AS (DELETE FROM {t} RETURNING *)") for t in DELTA_TABLES)  # noqa: S608
_LOCK_TABLE = tuple(f"LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE" for t in DELTA_TABLES)
_TRUNCATE = tuple(f"TRUNCATE {t}" for t in DELTA_TABLES)
# How long a pass waits for the exclusive lock on the table it folds: in-flight appends that
# chose it before the turn changed take a few ms; a longer wait means a read holds it, and
# readers queue behind a waiting TRUNCATE, so the pass falls back to DELETE instead.
TRUNCATE_LOCK_TIMEOUT = "50ms"
_SET_LOCK_TIMEOUT = f"SET LOCAL lock_timeout = '{TRUNCATE_LOCK_TIMEOUT}'"
_RESET_LOCK_TIMEOUT = "SET LOCAL lock_timeout TO DEFAULT"
# The ingest's side: appends go to the other table from the next transaction on. Under the
# compaction lock, so passes of several replicas do not turn it twice in a row.
_TURN = """
WITH held AS (SELECT pg_advisory_xact_lock($1))
UPDATE metrics_delta_turn SET active = 1 - active FROM held RETURNING active
"""
# The table a pass folds: the one the ingest does not append to now.
_IDLE = "SELECT 1 - active FROM metrics_delta_turn"
# The pass holds up to `max_pending_rows` deltas in memory (hash aggregate): with the default
# 4 MB they spill to temporary files. Nobody waits for a pass's commit, and losing it in a crash
# loses nothing: the transaction goes whole (its deltas are back), and any later synchronous
# commit flushes it first (one WAL).
_FOLD_SETTINGS = "SET LOCAL work_mem = '64MB'; SET LOCAL synchronous_commit = off"
_LOG_MARK = "SELECT coalesce(max(id), 0) FROM plugin_logs"
# Plugins with log entries above the mark (appended since the last pass), trimmed to the
# newest $2 entries each: one cutoff id per plugin (an index scan from the newest entry), then an
# index range delete below it. MATERIALIZED: inlined, the planner may re-run the cutoff subquery
# once per log row it joins (a hash join over the whole table: seconds per pass once plugins hold
# their full quota, until ANALYZE runs).
_TRIM_TOUCHED_LOGS = """
WITH touched AS MATERIALIZED (
  SELECT DISTINCT tenant_id, namespace, plugin FROM plugin_logs WHERE id > $1
), cutoff AS MATERIALIZED (
  SELECT p.tenant_id, p.namespace, p.plugin,
         (SELECT x.id FROM plugin_logs x
          WHERE x.tenant_id = p.tenant_id AND x.namespace = p.namespace AND x.plugin = p.plugin
          ORDER BY x.id DESC OFFSET $2 LIMIT 1) AS id
  FROM touched p
)
DELETE FROM plugin_logs l USING cutoff c
WHERE c.id IS NOT NULL AND l.tenant_id = c.tenant_id AND l.namespace = c.namespace
  AND l.plugin = c.plugin AND l.id <= c.id
"""
_LOCK = "SELECT pg_advisory_xact_lock($1)"


class DeltaRepository:
    """Minute deltas: append, compact; and the lazy log trim that runs with the compaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def append(self, table: int, records: Sequence[tuple[Any, ...]]) -> None:
        """COPY delta rows (`DELTA_COLUMNS` order) into delta table `table` (the turn's)."""
        await self._conn.copy_records_to_table(DELTA_TABLES[table], records=records, columns=DELTA_COLUMNS)

    async def lock(self, key: int) -> None:
        """Wait for a transaction-scoped advisory lock (one compaction at a time)."""
        await self._conn.execute(_LOCK, key)

    async def turn(self, key: int) -> int:
        """Point the ingest at the other delta table (own transaction, under lock `key`); returns it."""
        return int(await self._conn.fetchval(_TURN, key))

    async def idle_table(self) -> int:
        """The delta table the ingest does not append to now."""
        return int(await self._conn.fetchval(_IDLE))

    async def compact(self, table: int) -> tuple[int, bool]:
        """Fold every delta of `table` into minute rows and usage, and empty it (in a transaction).

        TRUNCATE under an exclusive lock when granted within `TRUNCATE_LOCK_TIMEOUT`, else
        DELETE of exactly the deltas folded. Returns the deltas moved and whether it truncated.
        """
        await self._conn.execute(_FOLD_SETTINGS)
        try:
            async with self._conn.transaction():  # a savepoint: a timeout undoes only the lock
                await self._conn.execute(_SET_LOCK_TIMEOUT)
                await self._conn.execute(_LOCK_TABLE[table])
        except asyncpg.LockNotAvailableError:
            return int(await self._conn.fetchval(_FOLD_DELETING[table])), False
        await self._conn.execute(_RESET_LOCK_TIMEOUT)
        moved = int(await self._conn.fetchval(_FOLD_LOCKED[table]))
        if moved:
            await self._conn.execute(_TRUNCATE[table])
        return moved, True

    async def compact_all(self) -> int:
        """Fold the deltas of both tables, deleting them (no table lock; in a transaction)."""
        await self._conn.execute(_FOLD_SETTINGS)
        return sum([int(await self._conn.fetchval(sql)) for sql in _FOLD_DELETING])

    async def log_mark(self) -> int:
        """The newest log entry id (0 when there is none)."""
        return int(await self._conn.fetchval(_LOG_MARK))

    async def trim_logs_since(self, mark: int, keep: int) -> None:
        """Keep the newest `keep` entries of each plugin with an entry above `mark`."""
        await self._conn.execute(_TRIM_TOUCHED_LOGS, mark, keep)
