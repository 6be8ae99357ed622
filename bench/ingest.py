"""Metrics ingest throughput (events/s) next to a raw COPY floor, in the same run.

    python -m bench.ingest [--batches 200] [--rows 500] [--logs 50] [--concurrency 4] [--rounds 1]
                           [--json]

Uses DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres) to create and drop
throwaway databases: one migrated template, and a fresh clone of it for every timed run, so
each run starts on empty tables whatever ran before it. An event is one aggregate row (tenant,
namespace, plugin, version, variant, minute) or one log entry, as a gateway sends them. Three
figures:

- http:    signed batches POSTed to a real `plugyard serve` (granian) by `concurrency` senders:
           signature check, decoding, one transaction per group of waiting batches (batch ids,
           COPY of minute deltas and logs), and the server's own compaction (deltas folded into
           minute rows and usage, logs trimmed);
- service: the same batches through `IngestService` in-process (no HTTP), same concurrency,
           with a `Compactor` running alongside as the server runs it;
- floor:   `copy_records_to_table` of the same rows and log entries into plain tables without
           keys or indexes, same concurrency: what PostgreSQL takes at best.

The ingest appends and compaction folds in later (docs/metrics.md, "Storage"), so the clock of
http and service stops only once compaction has caught up: no delta left, every batch's
requests in the minute rows and in a metrics query's totals (checked after the clock stops;
a mismatch fails the run). `compaction_tail_s` is how long that took after the last batch was
answered.

With `--rounds N` the three run back to back N times, the order rotated each round; the JSON
holds every round and the medians (events/s of each, and the median of the per-round ratios to
the floor). Each run also records the CPU seconds used while its clock ran (from /proc): this
process (the client; for `service` the service and compactor themselves), the `plugyard serve`
process tree (http only), and the PostgreSQL backends connected to the run's database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec

from plugyard import db, log, signing
from plugyard.metrics.compaction import Compactor
from plugyard.metrics.repository import LOG_COLUMNS
from plugyard.metrics.schemas import INGEST_PATH, N_BUCKETS
from plugyard.metrics.service import IngestService, MetricsService, decode_batch
from plugyard.settings import PROJECT_ROOT, DatabaseSettings, MetricsSettings
from plugyard.tenants.schemas import TenantRow

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TENANTS = 10
PLUGINS = 50
# The columns of metrics_minutes the floor COPYs (the shape the ingest stored before deltas).
FLOOR_COLUMNS = (
    "tenant_id", "namespace", "plugin", "version", "variant", "minute", "requests", "s2xx", "s3xx",
    "s4xx", "s5xx", "failures", "outcome_ok", "outcome_exception", "outcome_exceeded_cpu",
    "outcome_exceeded_memory", "outcome_canceled", "outcome_other", "latency",
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, float, bytes]]:
    """pid -> (parent pid, utime+stime in seconds, cmdline) of every process /proc shows."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:  # gone meanwhile
            continue
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, cmdline)
    return table


class CpuMeter:
    """CPU seconds used between `start()` and `stop()`: this process, a server's process tree,
    and the PostgreSQL backends connected to one database (matched by the database name their
    process title shows). A backend that exits before `stop()` is not counted; the runs keep
    their connections open until the clock has stopped, so none does."""

    def __init__(self, database: str, server_pid: int | None = None) -> None:
        self._title = f" {database} ".encode()
        self._server_pid = server_pid
        self._start: tuple[float, dict[int, float], dict[int, float]] | None = None
        self.seconds: dict[str, float] = {}

    def _sample(self) -> tuple[float, dict[int, float], dict[int, float]]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        table = _proc_table()
        backends = {
            pid: cpu
            for pid, (_, cpu, cmdline) in table.items()
            if cmdline.startswith(b"postgres:") and self._title in cmdline
        }
        server: dict[int, float] = {}
        if self._server_pid is not None:
            children: dict[int, list[int]] = {}
            for pid, (ppid, _, _) in table.items():
                children.setdefault(ppid, []).append(pid)
            todo = [self._server_pid]
            while todo:
                pid = todo.pop()
                if pid in table:
                    server[pid] = table[pid][1]
                    todo += children.get(pid, [])
        return usage.ru_utime + usage.ru_stime, server, backends

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> None:
        assert self._start is not None, "stop() before start()"
        own0, server0, pg0 = self._start
        own1, server1, pg1 = self._sample()

        def used(before: dict[int, float], after: dict[int, float]) -> float:
            return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())

        self.seconds = {"client": round(own1 - own0, 2), "postgres": round(used(pg0, pg1), 2)}
        if self._server_pid is not None:
            self.seconds["server"] = round(used(server0, server1), 2)


def make_batches(n: int, rows: int, logs: int, seed: int = 7) -> list[dict[str, Any]]:
    """Batches like a busy gateway's: each flush updates the current minute of many plugins."""
    rng = random.Random(seed)
    start_minute = (int(time.time()) // 60 - 30) * 60
    out = []
    for b in range(n):
        minute = start_minute + (b // 20) * 60  # 20 flushes per minute: most rows are upserts
        batch_rows = []
        for r in range(rows):
            tenant, plugin = r % TENANTS, (r // TENANTS) % PLUGINS
            variant = f"v{r // (TENANTS * PLUGINS)}"
            latency = [0] * N_BUCKETS
            requests = rng.randint(1, 50)
            for _ in range(requests):
                latency[rng.randint(0, N_BUCKETS - 1)] += 1
            batch_rows.append(
                {
                    "tenant": f"bench-{tenant}",
                    "namespace": "prod",
                    "plugin": f"p{plugin}",
                    "version": f"{plugin:064x}",
                    "variant": variant,
                    "minute": minute,
                    "requests": requests,
                    "s2xx": requests,
                    "latency": latency,
                    "outcomes": {"ok": requests},
                }
            )
        batch_logs = [
            {
                "tenant": f"bench-{i % TENANTS}",
                "namespace": "prod",
                "plugin": f"p{i % PLUGINS}",
                "version": f"{i % PLUGINS:064x}",
                "at": minute * 1000 + i,
                "kind": "log",
                "level": "log",
                "message": f"handled request {b}-{i}",
            }
            for i in range(logs)
        ]
        out.append(
            {
                "batch_id": str(uuid.uuid4()),
                "gateway": "bench",
                "sealed_at": int(time.time() * 1000),
                "rows": batch_rows,
                "logs": batch_logs,
            }
        )
    return out


async def _gather_limited(concurrency: int, jobs: list[Any]) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(job: Any) -> None:
        async with sem:
            await job

    await asyncio.gather(*(one(j) for j in jobs))


def _requests(batches: list[dict[str, Any]]) -> int:
    return sum(r["requests"] for b in batches for r in b["rows"])


async def _caught_up(conn: asyncpg.Connection) -> None:
    """Returns once no delta is left to compact (polled)."""
    while True:
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM metrics_deltas)"):
            return
        await asyncio.sleep(0.005)


async def check_totals(conn: asyncpg.Connection, expected: int) -> None:
    """Every request in the minute rows, and in the totals metrics queries answer (all tenants)."""
    stored = await conn.fetchval("SELECT coalesce(sum(requests), 0) FROM metrics_minutes")
    assert stored == expected, f"minute rows hold {stored} requests, batches sent {expected}"
    answered = 0
    for row in await conn.fetch("SELECT id, slug, name, created_at FROM tenants"):
        tenant = TenantRow(**row)
        now = datetime.now(UTC)
        answer = await MetricsService(conn).query(
            tenant,
            start=now - timedelta(hours=2),
            end=now + timedelta(minutes=1),
            step="minute",
            group_by=(),
            filters=(None, None, None, None),
        )
        answered += answer.totals.requests
    assert answered == expected, f"metrics queries answer {answered} requests, batches sent {expected}"


async def bench_service(
    pool: asyncpg.Pool, secret: str, bodies: list[bytes], concurrency: int, meter: CpuMeter | None = None
) -> tuple[float, float]:
    """Seconds until every batch is stored and compacted, and the compaction's tail of that."""
    settings = MetricsSettings()
    compactor = Compactor(settings)
    compacting = asyncio.create_task(compactor.run(pool))

    async def ingest(body: bytes) -> None:
        headers = signing.sign(secret, method="POST", path=INGEST_PATH, body=body)
        batch = decode_batch(secret, headers, INGEST_PATH, body)
        async with pool.acquire() as conn:
            await compactor.make_room(conn)  # the back-pressure IngestQueue applies
            result = await IngestService(conn, settings, compactor).ingest(batch)
        assert result.status == "stored"

    try:
        if meter:
            meter.start()
        started = time.perf_counter()
        await _gather_limited(concurrency, [ingest(b) for b in bodies])
        answered = time.perf_counter()
        async with pool.acquire() as conn:
            await _caught_up(conn)
        done = time.perf_counter()
        if meter:
            meter.stop()
    finally:
        compacting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await compacting
    return done - started, done - answered


async def bench_http(
    url: str,
    database_url: str,
    secret: str,
    bodies: list[bytes],
    concurrency: int,
    meter: CpuMeter | None = None,
) -> tuple[float, float]:
    """Seconds until every batch is answered and the server's compaction has caught up."""
    conn = await asyncpg.connect(database_url)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:

            async def post(body: bytes) -> None:
                headers = signing.sign(secret, method="POST", path=INGEST_PATH, body=body)
                response = await http.post(INGEST_PATH, content=body, headers=headers)
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "stored", response.text

            if meter:
                meter.start()
            started = time.perf_counter()
            await _gather_limited(concurrency, [post(b) for b in bodies])
            answered = time.perf_counter()
            await _caught_up(conn)
            done = time.perf_counter()
            if meter:
                meter.stop()
            return done - started, done - answered
    finally:
        await conn.close()


async def bench_floor(
    pool: asyncpg.Pool, batches: list[dict[str, Any]], concurrency: int, meter: CpuMeter | None = None
) -> float:
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE floor_rows (LIKE metrics_minutes)")
        await conn.execute(
            "CREATE TABLE floor_logs (tenant_id uuid, namespace text, plugin text, version text, "
            "at timestamptz, kind text, level text, message text, stack text)"
        )
    tenant_id = uuid.uuid4()
    prepared = []
    for batch in batches:
        rows = [
            (
                tenant_id,
                r["namespace"],
                r["plugin"],
                r["version"],
                r["variant"],
                _ts(r["minute"]),
                r["requests"],
                r["s2xx"],
                0,
                0,
                0,
                0,
                r["requests"],
                0,
                0,
                0,
                0,
                0,
                r["latency"],
            )
            for r in batch["rows"]
        ]
        logs = [
            (
                tenant_id,
                e["namespace"],
                e["plugin"],
                e["version"],
                _ts(e["at"] / 1000),
                "log",
                "log",
                e["message"],
                None,
            )
            for e in batch["logs"]
        ]
        prepared.append((rows, logs))

    async def copy(rows: list[tuple[Any, ...]], logs: list[tuple[Any, ...]]) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table("floor_rows", records=rows, columns=FLOOR_COLUMNS)
            if logs:
                await conn.copy_records_to_table("floor_logs", records=logs, columns=LOG_COLUMNS)

    if meter:
        meter.start()
    started = time.perf_counter()
    await _gather_limited(concurrency, [copy(r, lg) for r, lg in prepared])
    seconds = time.perf_counter() - started
    if meter:
        meter.stop()
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT coalesce(sum(requests), 0) FROM floor_rows")
        logged = await conn.fetchval("SELECT count(*) FROM floor_logs")
    assert stored == _requests(batches), f"floor holds {stored} requests, batches had {_requests(batches)}"
    assert logged == sum(len(b["logs"]) for b in batches), f"floor holds {logged} log entries"
    return seconds


def _ts(seconds: float) -> Any:
    return datetime.fromtimestamp(seconds, UTC)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _start_control_plane(database_url: str, secret: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PLUGYARD_GATEWAY_SECRET": secret,
        "PLUGYARD_PORT": str(port),
        "PLUGYARD_ADMIN_TOKEN": "pyd_admin_" + secrets.token_urlsafe(16),
        "PLUGYARD_LOG_LEVEL": "warning",
        "PLUGYARD_DB_POOL_MAX": "10",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugyard", "serve", "--no-migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the control plane did not start")


TARGETS = ("floor_copy", "service", "http")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _run_one(
    target: str, admin: asyncpg.Connection, server: str, template: str, database: str, args: Any
) -> dict[str, Any]:
    """One timed run of `target` on a fresh clone of the migrated template; its totals checked."""
    await admin.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
    url = _with_database(server, database)
    secret = secrets.token_hex(16)
    batches = make_batches(args.batches, args.rows, args.logs)  # fresh batch ids every run
    bodies = [msgspec.json.encode(b) for b in batches]
    tail: float | None = None
    try:
        if target == "http":
            proc, api = _start_control_plane(url, secret)
            try:
                meter = CpuMeter(database, server_pid=proc.pid)
                seconds, tail = await bench_http(api, url, secret, bodies, args.concurrency, meter)
                conn = await asyncpg.connect(url)
                try:
                    await check_totals(conn, _requests(batches))
                finally:
                    await conn.close()
            finally:
                _stop(proc)
        else:
            pool = await db.create_pool(
                DatabaseSettings(url=url, pool_min=args.concurrency, pool_max=args.concurrency)
            )
            meter = CpuMeter(database)
            try:
                if target == "floor_copy":
                    seconds = await bench_floor(pool, batches, args.concurrency, meter)
                else:
                    seconds, tail = await bench_service(pool, secret, bodies, args.concurrency, meter)
                    async with pool.acquire() as conn:
                        await check_totals(conn, _requests(batches))
            finally:
                await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    events = args.batches * (args.rows + args.logs)
    result: dict[str, Any] = {
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds),
        "cpu_s": meter.seconds,
    }
    if tail is not None:
        result["compaction_tail_s"] = round(tail, 3)
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """`args.rounds` rounds of the three targets, order rotated each round; every round and medians."""
    server = os.environ.get("DATABASE_URL", DEFAULT_SERVER_URL)
    name = f"plugyard_bench_ingest_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await db.connect(_with_database(server, name))
        try:
            await db.migrate(conn, PROJECT_ROOT / "migrations")
            await conn.executemany(
                "INSERT INTO tenants (slug, name) VALUES ($1, $1)",
                [(f"bench-{i}",) for i in range(TENANTS)],
            )
        finally:
            await conn.close()
        rounds: list[dict[str, Any]] = []
        for r in range(max(1, args.rounds)):
            # Rotate the order each round so no target always runs right after the same neighbour.
            order = list(TARGETS[r % len(TARGETS) :] + TARGETS[: r % len(TARGETS)])
            one: dict[str, Any] = {"order": order}
            for target in order:
                one[target] = await _run_one(target, admin, server, name, f"{name}_r{r}_{target}", args)
            floor = one["floor_copy"]["events_per_s"]
            one["ratio"] = {t: round(one[t]["events_per_s"] / floor, 3) for t in TARGETS[1:]}
            rounds.append(one)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    results: dict[str, Any] = {
        "batches": args.batches,
        "rows_per_batch": args.rows,
        "logs_per_batch": args.logs,
        "concurrency": args.concurrency,
        "events": args.batches * (args.rows + args.logs),
        "rounds": len(rounds),
        "per_round": rounds,
    }
    for target in TARGETS:
        runs = [one[target] for one in rounds]
        results[target] = {
            key: round(statistics.median(run[key] for run in runs), 3)
            for key in ("seconds", "events_per_s", "compaction_tail_s")
            if key in runs[0]
        }
        results[target]["events_per_s"] = round(results[target]["events_per_s"])
        results[target]["cpu_s"] = {
            key: round(statistics.median(run["cpu_s"][key] for run in runs), 2) for key in runs[0]["cpu_s"]
        }
        if target != "floor_copy":
            results[target]["ratio"] = round(statistics.median(one["ratio"][target] for one in rounds), 3)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rows", type=int, default=500, help="aggregate rows per batch")
    parser.add_argument("--logs", type=int, default=50, help="log entries per batch")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the three, order rotated")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args(argv)
    log.configure(log_format="console", level="warning")
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps(results))
        return 0
    print(
        f"metrics ingest: {args.batches} batches x ({args.rows} rows + {args.logs} logs), "
        f"concurrency {args.concurrency}, {results['events']} events, {results['rounds']} round(s)"
    )
    for n, one in enumerate(results["per_round"], 1):
        print(
            f"  round {n} ({', '.join(one['order'])}): "
            + ", ".join(f"{t} {one[t]['events_per_s']} events/s" for t in TARGETS)
            + f"; service {one['ratio']['service']:.2f}x, http {one['ratio']['http']:.2f}x"
        )
    print("  medians:")
    for label in TARGETS:
        r = results[label]
        tail = (
            f"  (compaction caught up {r['compaction_tail_s']:.2f} s after the last answer)"
            if "compaction_tail_s" in r
            else ""
        )
        ratio = f"{100 * r['ratio']:5.1f}% of floor" if "ratio" in r else "  floor       "
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_s"].items())
        print(
            f"  {label:<11} {r['events_per_s']:>9} events/s  {r['seconds']:>7.2f} s  {ratio}  "
            f"CPU s: {cpu}{tail}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
