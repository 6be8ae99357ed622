"""Two control-plane processes on one database: both serve, one reconciles, the other takes over."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from plugyard.deployments.reconciler import RECONCILE_LOCK_CLASS, lock_key
from plugyard.gateway.process import GatewayProcess
from tests.integration import deploy_helpers
from tests.integration.deploy_helpers import Replica, held, wait_until
from tests.integration.helpers import Tenant, plugin_code, via_gateway

_LEADERS = """
SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid
"""
_CANDIDATES = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'plugyard-reconciler pid=%'"

own_database = deploy_helpers.own_database
own_gateway = deploy_helpers.own_gateway


@pytest.fixture
def replicas(own_database: str, own_gateway: GatewayProcess, admin_token: str) -> Iterator[list[Replica]]:
    pair = [Replica(own_database, own_gateway, admin_token, f"replica-{i}") for i in (1, 2)]
    for cp in pair:
        cp.start()
    yield pair
    for cp in pair:
        cp.stop()


def leaders(database_url: str, gateway: GatewayProcess) -> list[int]:
    """Process ids (reported in application_name) holding the reconcile lock."""

    async def query() -> list[int]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(_LEADERS, RECONCILE_LOCK_CLASS, lock_key([gateway.url]) & 0xFFFFFFFF)
            candidates = await conn.fetchval(_CANDIDATES)
        finally:
            await conn.close()
        assert candidates >= 1
        return [int(r["application_name"].rsplit("=", 1)[1]) for r in rows]

    return asyncio.run(query())


def test_both_serve_one_reconciles_and_the_other_takes_over(
    replicas: list[Replica], own_gateway: GatewayProcess, own_database: str, admin_token: str, unique: str
) -> None:
    first, second = replicas
    # Both serve the API: a tenant made through one is visible through the other.
    tenant = Tenant(httpx.Client(base_url=first.url, timeout=30), admin_token, f"rep-{unique}")
    tenant.plugin_with_route(
        namespace="prod", plugin="p", code=plugin_code("one"), pattern=f"r{unique}.test/*"
    )
    other = httpx.get(f"{second.url}/v1/tenants/{tenant.slug}/namespaces", headers=tenant.headers, timeout=10)
    assert other.status_code == 200
    assert [n["name"] for n in other.json()] == ["prod"]

    # Exactly one process holds the reconcile lock.
    wait_until(lambda: len(leaders(own_database, own_gateway)) == 1, timeout_s=5)
    (pid,) = leaders(own_database, own_gateway)
    leader, standby = (first, second) if first.owns(pid) else (second, first)
    assert leader.owns(pid)
    assert not standby.owns(pid)
    # ...and stays the only one for a while (the standby keeps trying every 0.3 s).
    for _ in range(5):
        assert leaders(own_database, own_gateway) == [pid]

    # Crash the leader: no shutdown hook, PostgreSQL frees the lock with its connection.
    leader.kill()
    # PostgreSQL may still list the dead leader's lock for a moment: wait for a different holder.
    wait_until(lambda: len(now := leaders(own_database, own_gateway)) == 1 and now != [pid], timeout_s=10)
    (new_pid,) = leaders(own_database, own_gateway)
    assert standby.owns(new_pid)

    # The survivor reconciles: a wiped gateway comes back without anyone asking.
    key = f"{tenant.slug}/prod"
    revision = held(own_gateway).namespaces[key]
    own_gateway.stop()
    shutil.rmtree(own_gateway.storage_dir)
    own_gateway.start()
    wait_until(lambda: held(own_gateway).namespaces.get(key) == revision, timeout_s=5)
    assert via_gateway(own_gateway.url, f"r{unique}.test").text == "one"
    # ...and still serves the API.
    assert httpx.get(f"{standby.url}/healthz", timeout=5).status_code == 200


def test_sigterm_finishes_in_flight_requests_and_leaves_no_half_written_deployment(
    own_database: str, own_gateway: GatewayProcess, admin_token: str, unique: str
) -> None:
    cp = Replica(own_database, own_gateway, admin_token, "graceful")
    cp.start()
    outcomes: dict[str, object] = {}
    try:
        tenant = Tenant(httpx.Client(base_url=cp.url, timeout=30), admin_token, f"gr-{unique}")
        tenant.plugin_with_route(
            namespace="prod", plugin="p", code=plugin_code("x"), pattern=f"g0{unique}.test/*"
        )

        def create(pattern: str) -> None:
            try:
                with httpx.Client(base_url=cp.url, timeout=30) as http:
                    response = http.post(
                        tenant.url("/namespaces/prod/routes"),
                        json={"pattern": pattern, "plugin": "p"},
                        headers=tenant.headers,
                    )
                outcomes[pattern] = response.status_code
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                # Refused, or reset while still queued in the listen backlog: never handled
                # (checked against the database below).
                outcomes[pattern] = type(exc).__name__
            except httpx.HTTPError as exc:
                outcomes[pattern] = exc

        patterns = [f"g{i}x{unique}.test/*" for i in range(1, 41)]
        threads = [threading.Thread(target=create, args=(p,)) for p in patterns]
        for t in threads:
            t.start()
        wait_until(lambda: len(outcomes) >= 3, timeout_s=20, interval_s=0.005)
        assert cp.proc is not None
        os.kill(cp.proc.pid, signal.SIGTERM)  # the main process only, as systemd's KillMode=mixed
        for t in threads:
            t.join(timeout=30)
        assert cp.proc.wait(timeout=30) == 0
    finally:
        cp.stop()
    created = {p for p, o in outcomes.items() if o == 201}
    odd = {p: o for p, o in outcomes.items() if o != 201 and not isinstance(o, str)}
    assert not odd, odd
    assert len(created) >= 3

    async def check_database() -> None:
        conn = await asyncpg.connect(own_database)
        try:
            revisions = [
                r["revision"] for r in await conn.fetch("SELECT revision FROM deployments ORDER BY revision")
            ]
            routes = {r["pattern"] for r in await conn.fetch("SELECT pattern FROM routes")}
            unpushed = await conn.fetchval(
                "SELECT count(*) FROM deployments d "
                "WHERE NOT EXISTS (SELECT 1 FROM pushes p WHERE p.deployment_id = d.id)"
            )
            others = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        # Every request the server took was finished and answered: the routes stored are exactly
        # the answered ones, each one whole deployment with its push rows; nothing else was left.
        assert routes == {f"g0{unique}.test/*"} | created
        assert revisions == list(range(1, len(revisions) + 1))
        assert unpushed == 0
        assert others == 0, "the pool (or the reconciler's lock connection) was not closed"

    asyncio.run(check_database())
