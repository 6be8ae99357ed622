"""Shortcuts of the second control-plane performance pass (docs/benchmarks.md, "Profiling notes").

A request on a plugin resolves token, tenant, namespace and plugin in one statement; the log
trim of the ingest computes each plugin's cutoff once (a materialized CTE), so it stays an index
range delete once plugins hold their full quota. Each test fails if the shortcut changed what a
caller sees or stopped applying.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar.testing import TestClient

from plugyard.app import create_app
from plugyard.metrics.delta_repository import _TRIM_TOUCHED_LOGS, DeltaRepository
from plugyard.metrics.repository import MetricsRepository
from plugyard.settings import DatabaseSettings, Settings
from tests.integration.helpers import plugin_code

pytestmark = pytest.mark.e2e
PROBLEM = "https://plugyard.dev/problems/"


@pytest.fixture
def one_connection_app(settings: Settings) -> Iterator[tuple[TestClient[Any], list[str]]]:
    """An in-process app on a single pooled connection whose statements are recorded."""
    single = msgspec.structs.replace(
        settings,
        database=DatabaseSettings(url=settings.database.url, pool_min=1, pool_max=1),
        metrics=msgspec.structs.replace(settings.metrics, rollup=False),
        guardrail_interval_s=0,
    )
    statements: list[str] = []
    with TestClient(create_app(single)) as client:

        async def record() -> None:
            async with client.app.state.pool.acquire() as conn:
                conn.add_query_logger(lambda r: statements.append(r.query))

        client.blocking_portal.call(record)
        yield client, statements


def _statements(client: TestClient[Any], statements: list[str], method: str, path: str, **kw: Any) -> int:
    """How many statements the request ran (the fewest over 3 tries: no background loop interferes)."""
    counts = []
    for _ in range(3):
        statements.clear()
        response = client.request(method, path, **kw)
        assert response.status_code < 400, response.text
        counts.append(len(statements))
    return min(counts)


def test_a_plugin_request_resolves_token_tenant_namespace_and_plugin_in_one_statement(
    one_connection_app: tuple[TestClient[Any], list[str]], admin_token: str, unique: str
) -> None:
    client, statements = one_connection_app
    admin = {"authorization": f"Bearer {admin_token}"}
    slug = f"one-{unique}"
    assert client.post("/v1/tenants", json={"slug": slug, "name": slug}, headers=admin).status_code == 201
    token = client.post(f"/v1/tenants/{slug}/tokens", json={"name": "t"}, headers=admin).json()["token"]
    auth = {"authorization": f"Bearer {token}"}
    base = f"/v1/tenants/{slug}/namespaces/prod/plugins"
    assert (
        client.post(f"/v1/tenants/{slug}/namespaces", json={"name": "prod"}, headers=auth).status_code == 201
    )
    assert client.post(base, json={"name": "p", "vars": {"A": "1"}}, headers=auth).status_code == 201
    version = {"modules": [{"name": "index.js", "content": plugin_code(f"one {unique}")}], "activate": True}
    published = client.post(f"{base}/p/versions", json=version, headers=auth)
    assert published.status_code == 201, published.text

    # The folded plugin is the same answer the plugin query gives: active version included.
    plugin = client.get(f"{base}/p", headers=auth).json()
    assert (plugin["name"], plugin["vars"], plugin["active_version"]) == ("p", {"A": "1"}, 1)
    assert plugin["active_version_hash"] == published.json()["version"]["hash"]
    assert _statements(client, statements, "GET", f"{base}/p", headers=auth) == 1
    # Admin tokens (the configured one: no token row) take the same single statement.
    assert client.get(f"{base}/p", headers=admin).json() == plugin
    assert _statements(client, statements, "GET", f"{base}/p", headers=admin) == 1
    # Versions of the plugin: the resolution and the page, nothing else.
    assert _statements(client, statements, "GET", f"{base}/p/versions", headers=auth) == 2

    # Misses answer as before: 404 plugin-not-found on every plugin route, tenant-not-found across tenants.
    for path in ("/nope", "/nope/versions", "/nope/versions/1"):
        response = client.get(base + path, headers=auth)
        assert response.status_code == 404, response.text
        assert response.json()["type"] == PROBLEM + "plugin-not-found"
    other = f"two-{unique}"
    assert client.post("/v1/tenants", json={"slug": other, "name": other}, headers=admin).status_code == 201
    other_token = client.post(f"/v1/tenants/{other}/tokens", json={"name": "t"}, headers=admin).json()[
        "token"
    ]
    response = client.get(f"{base}/p", headers={"authorization": f"Bearer {other_token}"})
    assert response.status_code == 404
    assert response.json()["type"] == PROBLEM + "tenant-not-found"

    # A change is seen on the very next request (nothing is cached).
    assert client.patch(f"{base}/p", json={"vars": {"A": "2"}}, headers=auth).status_code == 200
    assert client.get(f"{base}/p", headers=auth).json()["vars"] == {"A": "2"}


async def test_log_trim_keeps_the_newest_per_plugin_with_a_materialized_cutoff(
    pool: asyncpg.Pool, unique: str
) -> None:
    keep, batches, per_batch = 5, 4, 3
    async with pool.acquire() as conn:
        tenant_id = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id", f"trim-{unique}"
        )
        repo, deltas = MetricsRepository(conn), DeltaRepository(conn)
        plugins = [(tenant_id, "prod", f"p{i}") for i in range(3)]
        start = datetime.now(UTC) - timedelta(minutes=5)
        n = 0
        for _ in range(batches):
            records = []
            for _, namespace, plugin in plugins:
                for _ in range(per_batch):
                    at = start + timedelta(milliseconds=n)
                    records.append(
                        (tenant_id, namespace, plugin, "v", at, "log", "info", f"{plugin} {n}", None)
                    )
                    n += 1
            async with conn.transaction():
                mark = await deltas.log_mark()
                await repo.copy_logs(records)
                await deltas.trim_logs_since(mark, keep)  # as a compaction pass does
        for _, namespace, plugin in plugins:
            kept = await conn.fetch(
                "SELECT message FROM plugin_logs WHERE tenant_id = $1 AND namespace = $2 AND plugin = $3 "
                "ORDER BY id",
                tenant_id,
                namespace,
                plugin,
            )
            written = [f"{plugin} {i}" for i in range(n) if _owner(i, per_batch, len(plugins)) == plugin]
            assert [r["message"] for r in kept] == written[-keep:]
        # Inlined, the planner may re-run the cutoff subquery for every log row it joins: seconds
        # per batch once the plugins are full. The cutoff must be computed once, as a CTE.
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + _TRIM_TOUCHED_LOGS, 0, keep))
        assert "CTE cutoff" in plan, plan


def _owner(i: int, per_batch: int, n_plugins: int) -> str:
    """Which plugin wrote log number `i` (each batch writes `per_batch` per plugin, in order)."""
    return f"p{(i % (per_batch * n_plugins)) // per_batch}"
