"""The reconciler restores a gateway that lost its storage, and heals a database gone back in time.

A real control plane (`plugyard serve`) on a database of its own pushes to a private workerd;
the tests wipe the gateway's storage, or delete deployments, and watch it converge.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from plugyard.gateway.process import GatewayProcess
from tests.integration import deploy_helpers
from tests.integration.deploy_helpers import Replica, held, wait_until
from tests.integration.helpers import Tenant, plugin_code, via_gateway

NAMESPACES = ("alpha", "beta", "gamma", "delta")

own_database = deploy_helpers.own_database
own_gateway = deploy_helpers.own_gateway


@pytest.fixture
def replica(own_database: str, own_gateway: GatewayProcess, admin_token: str) -> Iterator[Replica]:
    cp = Replica(own_database, own_gateway, admin_token, "reconciler")
    cp.start()
    yield cp
    cp.stop()


def _populate(replica: Replica, admin_token: str, unique: str) -> tuple[Tenant, dict[str, int]]:
    """One tenant, four namespaces (one with two revisions more), each serving its own text."""
    http = httpx.Client(base_url=replica.url, timeout=30)
    tenant = Tenant(http, admin_token, f"rec-{unique}")
    for ns in NAMESPACES:
        tenant.plugin_with_route(
            namespace=ns, plugin="p", code=plugin_code(f"{ns} v1"), pattern=f"{ns}.rec{unique}.test/*"
        )
    tenant.post(
        "/namespaces/alpha/plugins/p/versions",
        {"modules": [{"name": "index.js", "content": plugin_code("alpha v2")}], "activate": True},
        201,
    )
    revisions = {ns: tenant.get(f"/namespaces/{ns}/deployments")[0]["revision"] for ns in NAMESPACES}
    return tenant, revisions


def test_a_wiped_gateway_is_restored_within_seconds(
    replica: Replica, own_gateway: GatewayProcess, admin_token: str, unique: str
) -> None:
    tenant, revisions = _populate(replica, admin_token, unique)
    expected = {f"{tenant.slug}/{ns}": rev for ns, rev in revisions.items()}
    assert held(own_gateway).namespaces == expected

    own_gateway.stop()
    shutil.rmtree(own_gateway.storage_dir)
    assert not own_gateway.storage_dir.exists()
    started = time.monotonic()
    # It starts empty; the reconciler may refill it even before `start` returns.
    own_gateway.start()

    # No manual step: the control plane notices the empty gateway and re-pushes everything.
    wait_until(lambda: held(own_gateway).namespaces == expected, timeout_s=5)
    took = time.monotonic() - started
    print(f"\nreconciler restored {len(expected)} namespaces in {took:.2f} s")
    assert took < 5
    assert via_gateway(own_gateway.url, f"alpha.rec{unique}.test").text == "alpha v2"
    for ns in NAMESPACES[1:]:
        assert via_gateway(own_gateway.url, f"{ns}.rec{unique}.test").text == f"{ns} v1"


async def test_a_gateway_ahead_of_a_restored_database_is_rebased(
    replica: Replica, own_gateway: GatewayProcess, own_database: str, admin_token: str, unique: str
) -> None:
    tenant, revisions = _populate(replica, admin_token, unique)
    key = f"{tenant.slug}/alpha"
    top = revisions["alpha"]
    # The database goes back in time (as after restoring a backup): its last deployment is gone,
    # while the gateway still serves it.
    conn = await asyncpg.connect(own_database)
    try:
        await conn.execute(
            "DELETE FROM deployments WHERE revision = $1 AND namespace_id = "
            "(SELECT n.id FROM namespaces n JOIN tenants t ON t.id = n.tenant_id "
            "WHERE t.slug = $2 AND n.name = 'alpha')",
            top,
            tenant.slug,
        )
    finally:
        await conn.close()

    # The reconciler records the database's latest state again above the gateway's revision.
    wait_until(lambda: held(own_gateway).namespaces.get(key) == top + 1, timeout_s=10)
    history = tenant.get("/namespaces/alpha/deployments")
    assert history[0]["revision"] == top + 1
    assert (history[0]["reason"], history[0]["actor"]) == ("reconciled", "plugyard-reconciler")
    assert history[0]["pushes"][0]["status"] == "succeeded"
    # It serves what the restored database says (version 2's deployment was the one lost).
    assert via_gateway(own_gateway.url, f"alpha.rec{unique}.test").text == "alpha v1"
    # Publishing goes on from there, and the gateway takes it.
    tenant.post(
        "/namespaces/alpha/plugins/p/versions",
        {"modules": [{"name": "index.js", "content": plugin_code("alpha v3")}], "activate": True},
        201,
    )
    assert via_gateway(own_gateway.url, f"alpha.rec{unique}.test").text == "alpha v3"


async def test_a_recreated_namespace_replaces_the_old_incarnation(
    replica: Replica, own_gateway: GatewayProcess, own_database: str, admin_token: str, unique: str
) -> None:
    tenant, revisions = _populate(replica, admin_token, unique)
    assert revisions["alpha"] >= 3
    conn = await asyncpg.connect(own_database)
    try:
        await conn.execute(
            "DELETE FROM namespaces WHERE name = 'alpha' AND tenant_id = (SELECT id FROM tenants WHERE slug = $1)",
            tenant.slug,
        )
    finally:
        await conn.close()
    # Same name, new id (epoch): its revision 1 replaces the gateway's higher revision at once.
    route = tenant.plugin_with_route(
        namespace="alpha", plugin="p", code=plugin_code("alpha reborn"), pattern=f"alpha.rec{unique}.test/*"
    )
    assert route["deployment"]["pushes"][0]["status"] == "succeeded", route
    assert route["deployment"]["revision"] < revisions["alpha"]
    assert via_gateway(own_gateway.url, f"alpha.rec{unique}.test").text == "alpha reborn"
