"""The reconciler: every gateway ends up holding each namespace's latest revision.

Each pass (every PLUGYARD_RETRY_INTERVAL_S seconds, on the one replica that holds the advisory
lock) it
1. asks every gateway for its signed health (`namespaces`: key → held revision, `epochs`:
   key → the namespace id it was pushed with);
2. retries the pushes that failed or never ran (what `retry_open_pushes` used to do alone):
   after their backoff, or at once for a gateway that was unreachable on the previous pass and
   answers now (it came back: waiting out a backoff grown during its outage only delays it);
3. compares with each namespace's latest deployment and re-pushes what a gateway misses, holds
   at a lower revision or holds for another incarnation (after it lost its storage, after a
   failed push, after the gateway list grew);
4. rebases a namespace a gateway holds at a HIGHER revision of the same incarnation. That only
   happens when the database went back in time (restored from a backup): the gateway would
   refuse every lower revision as stale, so the latest deployment is recorded again as
   revision held+1 (reason `reconciled`, actor `plugyard-reconciler`) and pushed. A namespace
   re-created under the same name has a new id, so its pushes carry a new epoch and the
   gateway replaces the old incarnation whatever the revisions (docs/gateway-protocol.md).

Gateways are asked before the database is read: a deployment committed in between is then
newer in the database, never wrongly "ahead" on a gateway.

A push that failed is left to the retry step and its backoff; drift is re-pushed only where
the last push to that gateway had succeeded (the gateway lost it since) or never existed.

Leadership: a session advisory lock held on a dedicated connection (application_name
`plugyard-reconciler pid=<pid>`, visible in pg_stat_activity). It stays with one replica while
that replica lives; when its process dies PostgreSQL drops the connection and the lock, and
another replica takes it on its next pass. Every replica serves the API either way. The lock
is keyed by the set of gateway URLs (`lock_key`): replicas configured alike (the normal case)
share one leader; a control plane pointed at other gateways reconciles those on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import zlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
import structlog

from plugyard import db
from plugyard.deployments.repository import DeploymentRepository
from plugyard.deployments.schemas import DeploymentRow
from plugyard.deployments.service import DeploymentService, Publisher, retry_due_pushes
from plugyard.gateway.client import GatewayHealth
from plugyard.namespaces.repository import NamespaceRepository

log = structlog.get_logger(__name__)

RECONCILE_LOCK_CLASS = 0x706C7567  # "plug"; the second key is the gateway set's hash
APPLICATION_NAME = "plugyard-reconciler"
ACTOR = "plugyard-reconciler"
# A deployment this young is still being pushed by the request that recorded it.
SETTLE_S = 1.0
# Drift pushes in flight at once (each holds a pooled connection) and their time per pass.
PUSH_CONCURRENCY = 4
PASS_BUDGET_S = 5.0


class Drift(msgspec.Struct, frozen=True, kw_only=True):
    """How one gateway differs from the desired state (namespace keys `tenant/namespace`)."""

    missing: list[str] = []
    behind: list[str] = []
    other_epoch: list[str] = []
    ahead: dict[str, int] = {}

    @property
    def to_push(self) -> list[str]:
        """Namespaces the gateway must be sent the latest deployment of."""
        return [*self.missing, *self.behind, *self.other_epoch]


class PassReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one reconcile pass did."""

    retried: int = 0
    pushed: int = 0
    rebased: int = 0
    unreachable: list[str] = []


def lock_key(gateways: Sequence[str]) -> int:
    """The second advisory-lock key: a signed 32-bit hash of the sorted gateway URLs."""
    value = zlib.crc32("\n".join(sorted(gateways)).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def namespace_key(row: Any) -> str:
    """`tenant/namespace`, the gateway's key for a latest-deployment row."""
    return f"{row['tenant_slug']}/{row['namespace_name']}"


def drift(desired: Sequence[Any], health: GatewayHealth) -> Drift:
    """Compare the latest deployments with what one gateway holds.

    Args:
        desired: rows of `DeploymentRepository.latest_per_namespace`.
        health: the gateway's signed health.
    """
    missing: list[str] = []
    behind: list[str] = []
    other: list[str] = []
    ahead: dict[str, int] = {}
    for row in desired:
        key = namespace_key(row)
        held = health.namespaces.get(key)
        epoch = health.epochs.get(key)
        if held is None:
            missing.append(key)
        elif epoch is not None and epoch != str(row["namespace_id"]):
            other.append(key)
        elif held < row["revision"]:
            behind.append(key)
        elif held > row["revision"]:
            ahead[key] = held
    return Drift(missing=missing, behind=behind, other_epoch=other, ahead=ahead)


async def _healths(publisher: Publisher) -> dict[str, GatewayHealth | BaseException]:
    answers = await asyncio.gather(
        *(publisher.client.health(gw) for gw in publisher.gateways), return_exceptions=True
    )
    return dict(zip(publisher.gateways, answers, strict=True))


async def reconcile_once(
    pool: db.Pool,
    publisher: Publisher,
    *,
    settle_s: float = SETTLE_S,
    concurrency: int = PUSH_CONCURRENCY,
    budget_s: float = PASS_BUDGET_S,
    was_unreachable: Sequence[str] = (),
) -> PassReport:
    """One pass (the caller holds the leadership). Never raises for an unreachable gateway.

    Drift pushes run `concurrency` at a time (one pooled connection each) for at most
    `budget_s`; what is left waits for the next pass, so retries (first in every pass) stay
    timely even while a large gateway is being refilled. `was_unreachable`: the gateways the
    previous pass could not reach; those that answer now get their failed pushes at once.
    """
    healths = await _healths(publisher)
    recovered = [gw for gw in was_unreachable if gw in healths and not isinstance(healths[gw], BaseException)]
    async with pool.acquire() as conn:
        retried = await retry_due_pushes(conn, publisher, recovered=recovered)
        desired = await DeploymentRepository(conn).latest_per_namespace()
    by_key = {namespace_key(row): row for row in desired}
    now = time.time()
    deadline = time.monotonic() + budget_s
    unreachable: list[str] = []
    ahead: dict[str, int] = {}
    work: list[tuple[str, Any]] = []
    for gateway, health in healths.items():
        if isinstance(health, BaseException):
            unreachable.append(gateway)
            log.warning("gateway_unreachable", gateway=gateway, error=f"{type(health).__name__}: {health}")
            continue
        found = drift(desired, health)
        work += [
            (gateway, by_key[key])
            for key in found.to_push
            if now - by_key[key]["created_at"].timestamp() >= settle_s
        ]
        for key, held in found.ahead.items():
            ahead[key] = max(held, ahead.get(key, 0))
    pushed = await _push_all(pool, publisher, work, concurrency=concurrency, deadline=deadline)
    rebased = 0
    async with pool.acquire() as conn:
        service = DeploymentService(conn, publisher)
        for key, held in ahead.items():
            if await _rebase(conn, service, by_key[key], held, publisher.gateways):
                rebased += 1
    return PassReport(retried=retried, pushed=pushed, rebased=rebased, unreachable=unreachable)


async def _push_all(
    pool: db.Pool,
    publisher: Publisher,
    work: list[tuple[str, Any]],
    *,
    concurrency: int,
    deadline: float,
) -> int:
    """Push each (gateway, latest deployment row); returns how many were sent."""
    queue = list(reversed(work))
    sent: list[str] = []

    async def worker() -> None:
        async with pool.acquire() as conn:
            repo = DeploymentRepository(conn)
            service = DeploymentService(conn, publisher)
            while queue and time.monotonic() < deadline:
                gateway, row = queue.pop()
                deployment = _deployment(row)
                last = {p.gateway: p.status for p in await repo.pushes(deployment.id)}.get(gateway)
                if last in {"pending", "failed"}:
                    continue  # the retry step owns it (with its backoff)
                await repo.ensure_pushes(deployment.id, [gateway])
                await service.push(deployment, [gateway])
                sent.append(f"{namespace_key(row)} -> {gateway}")

    # Leave at least half of the pool to the API's requests.
    workers = min(concurrency, len(work), max(1, pool.get_max_size() // 2))
    await asyncio.gather(*(worker() for _ in range(workers)))
    if sent:
        log.info("gateways_reconciled", pushed=len(sent), left=len(queue), first=sent[:10])
    return len(sent)


def _deployment(row: Any) -> DeploymentRow:
    return DeploymentRow(**{name: row[name] for name in DeploymentRow.__struct_fields__})


async def _rebase(
    conn: asyncpg.Connection, service: DeploymentService, row: Any, held: int, gateways: Sequence[str]
) -> bool:
    """Record the latest deployment again above `held` and push it (see the module docstring)."""
    repo = DeploymentRepository(conn)
    async with conn.transaction():
        await NamespaceRepository(conn).lock(row["tenant_id"], row["namespace_id"])
        revision = await repo.next_revision(row["tenant_id"], row["namespace_id"])
        if revision - 1 > held:
            return False  # a newer deployment was recorded meanwhile: the normal path pushes it
        latest = await repo.get(row["tenant_id"], row["namespace_id"], revision - 1)
        if latest is None:
            return False
        deployment = await repo.insert(
            row["tenant_id"], row["namespace_id"], held + 1, "reconciled", ACTOR, latest.state
        )
        await repo.insert_pushes(deployment.id, gateways)
    log.warning(
        "namespace_rebased",
        namespace=namespace_key(row),
        database_revision=latest.revision,
        gateway_revision=held,
        revision=deployment.revision,
        detail="a gateway held a higher revision than the database (restored from a backup?)",
    )
    await service.push(deployment)
    return True


class Reconciler:
    """The background task: lead (advisory lock), then reconcile every `interval_s` seconds."""

    def __init__(self, pool: db.Pool, publisher: Publisher, database_url: str, *, interval_s: float) -> None:
        """Describe the task; `run` it in a task, `close` on shutdown."""
        self._pool = pool
        self._publisher = publisher
        self._url = database_url
        self.interval_s = interval_s
        self._key = lock_key(publisher.gateways)
        self._lock_conn: asyncpg.Connection | None = None
        self.leader = False
        self.last_pass: PassReport | None = None

    async def _lead(self) -> bool:
        """Take or keep the lock; False when another replica holds it or the database is away."""
        if self._lock_conn is None or self._lock_conn.is_closed():
            self.leader = False
            self._lock_conn = await asyncpg.connect(
                self._url, server_settings={"application_name": f"{APPLICATION_NAME} pid={os.getpid()}"}
            )
        if self.leader:
            await self._lock_conn.fetchval("SELECT 1")  # raises if the connection (and lock) is gone
            return True
        self.leader = bool(
            await self._lock_conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", RECONCILE_LOCK_CLASS, self._key
            )
        )
        if self.leader:
            log.info("reconciler_leading", pid=os.getpid())
        return self.leader

    async def run(self) -> None:
        """Loop until cancelled; survives database and gateway outages."""
        while True:
            try:
                if await self._lead():
                    previous = self.last_pass.unreachable if self.last_pass else ()
                    self.last_pass = await reconcile_once(
                        self._pool, self._publisher, was_unreachable=previous
                    )
            except asyncio.CancelledError:
                raise
            except db.UNAVAILABLE_ERRORS:
                log.warning("reconciler_database_unavailable", exc_info=True)
                await self._drop_lock_conn()
            except Exception:
                log.exception("reconcile_failed")
            await asyncio.sleep(self.interval_s)

    async def _drop_lock_conn(self) -> None:
        self.leader = False
        if self._lock_conn is not None:
            self._lock_conn.terminate()
            self._lock_conn = None

    async def close(self) -> None:
        """Give the lock back at once (the next replica need not wait for a dead connection)."""
        if self._lock_conn is not None and not self._lock_conn.is_closed():
            with contextlib.suppress(*db.UNAVAILABLE_ERRORS):
                if self.leader:
                    await self._lock_conn.execute(
                        "SELECT pg_advisory_unlock($1, $2)", RECONCILE_LOCK_CLASS, self._key
                    )
                await self._lock_conn.close(timeout=2)
        self._lock_conn = None
        self.leader = False
