"""Behaviour the control-plane performance pass must keep (docs/benchmarks.md).

Requests resolve token, tenant and namespace in one query; "last used" is written at most once
a minute per token; validation verdicts are cached per tenant and content hash; routes are
paginated; a page of deployments reads its pushes in one query; the server process keeps its
startup heap out of the garbage collector. Each test fails if the shortcut changed what a caller
sees.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from plugyard import db
from plugyard.app import create_app
from plugyard.settings import GatewaySettings, Settings
from plugyard.tenants.service import digest, new_token
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant, check, plugin_code

pytestmark = pytest.mark.e2e
PROBLEM = "https://plugyard.dev/problems/"


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def _problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == PROBLEM + slug


def _last_used(http: httpx.Client, admin: dict[str, str], slug: str, token_id: str) -> str | None:
    tokens = check(http.get(f"/v1/tenants/{slug}/tokens", headers=admin))
    used: str | None = next(t for t in tokens if t["id"] == token_id)["last_used_at"]
    return used


def _sql(database_url: str, query: str, *args: Any) -> None:
    async def go() -> None:
        conn = await db.connect(database_url)
        try:
            await conn.execute(query, *args)
        finally:
            await conn.close()

    asyncio.run(go())


def test_last_used_is_listed_after_use_and_written_at_most_once_a_minute(
    http: httpx.Client, admin_token: str, unique: str, database_url: str, settings: Settings
) -> None:
    admin = {"authorization": f"Bearer {admin_token}"}
    t = Tenant(http, admin_token, f"used-{unique}")
    created = check(http.post(t.url("/tokens"), json={"name": "ci"}, headers=admin), 201)
    token_id, auth = created["id"], {"authorization": f"Bearer {created['token']}"}
    assert _last_used(http, admin, t.slug, token_id) is None

    before = datetime.now(UTC)
    check(http.get(t.url(), headers=auth))
    first = _last_used(http, admin, t.slug, token_id)
    assert first is not None
    assert abs(datetime.fromisoformat(first) - before) < timedelta(seconds=30)
    # More use within the minute writes nothing: the listed time stays the same.
    for _ in range(3):
        check(http.get(t.url("/namespaces"), headers=auth))
    assert _last_used(http, admin, t.slug, token_id) == first

    # Once the stored time is over a minute old, the next request writes it again. (A second
    # app stands for a restarted process or another replica: this process remembers its write.)
    _sql(
        database_url,
        "UPDATE api_tokens SET last_used_at = now() - interval '5 minutes' WHERE id = $1::uuid",
        token_id,
    )
    stale = _last_used(http, admin, t.slug, token_id)
    with TestClient(create_app(settings)) as other:
        assert other.get(t.url(), headers=auth).status_code == 200
    fresh = _last_used(http, admin, t.slug, token_id)
    assert stale is not None
    assert fresh is not None
    assert datetime.fromisoformat(fresh) - datetime.fromisoformat(stale) > timedelta(minutes=4)


def test_a_revoked_token_is_refused_on_the_very_next_request(
    http: httpx.Client, admin_token: str, unique: str
) -> None:
    t = Tenant(http, admin_token, f"revoke-{unique}")
    t.post("/namespaces", {"name": "prod"}, 201)
    created = t.post("/tokens", {"name": "short-lived"}, 201)
    auth = {"authorization": f"Bearer {created['token']}"}
    paths = [t.url(), t.url("/namespaces/prod/plugins"), t.url("/tokens")]
    for path in paths:
        check(http.get(path, headers=auth))
    check(http.delete(t.url(f"/tokens/{created['id']}"), headers=t.headers), 204)
    for path in paths:
        _problem(http.get(path, headers=auth), 401, "invalid-token")
    check(http.get(t.url("/namespaces/prod/plugins"), headers=t.headers))


def test_one_query_resolution_keeps_404_not_403(
    http: httpx.Client, admin_token: str, unique: str, database_url: str
) -> None:
    a = Tenant(http, admin_token, f"res-a-{unique}")
    b = Tenant(http, admin_token, f"res-b-{unique}")
    b.post("/namespaces", {"name": "prod"}, 201)
    b.post("/namespaces/prod/plugins", {"name": "p"}, 201)
    # Tenant A cannot tell B's tenant, namespace or plugin from ones that do not exist.
    for path in ["", "/namespaces", "/namespaces/prod", "/namespaces/prod/plugins/p", "/tokens"]:
        _problem(http.get(b.url(path), headers=a.headers), 404, "tenant-not-found")
        _problem(http.get(f"/v1/tenants/nope-{unique}{path}", headers=a.headers), 404, "tenant-not-found")
    _problem(http.get(a.url("/namespaces/prod/plugins"), headers=a.headers), 404, "namespace-not-found")
    _problem(http.get(b.url("/namespaces/nope/plugins"), headers=b.headers), 404, "namespace-not-found")
    _problem(http.get(b.url("/namespaces/prod/plugins/nope"), headers=b.headers), 404, "plugin-not-found")
    assert [p["name"] for p in b.get("/namespaces/prod/plugins")] == ["p"]

    # The configured admin token (no token row) and an admin token stored in the database
    # (tenant_id NULL) both see every tenant, and still get 404 for what does not exist.
    stored_admin = new_token()
    _sql(
        database_url,
        "INSERT INTO api_tokens (tenant_id, name, prefix, token_hash) VALUES (NULL, $1, $2, $3)",
        f"admin {unique}",
        stored_admin[:10],
        digest(stored_admin),
    )
    for token in (admin_token, stored_admin):
        admin = {"authorization": f"Bearer {token}"}
        assert [p["name"] for p in check(http.get(b.url("/namespaces/prod/plugins"), headers=admin))] == ["p"]
        assert check(http.get(b.url(), headers=admin))["slug"] == b.slug
        _problem(http.get(b.url("/namespaces/nope/plugins"), headers=admin), 404, "namespace-not-found")
        _problem(http.get(f"/v1/tenants/nope-{unique}/namespaces", headers=admin), 404, "tenant-not-found")
    _problem(http.get(b.url(), headers={"authorization": "Bearer pyd_nope"}), 401, "invalid-token")
    _problem(http.get(b.url()), 401, "missing-token")


@pytest.fixture
def with_gateway(settings: Settings) -> Iterator[TestClient[Any]]:
    """An app in this process (so its validation cache is this process's) on the real gateway."""
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def no_gateway(settings: Settings) -> Iterator[TestClient[Any]]:
    """The same database with no gateway, in this process: only cached verdicts let an upload in."""
    lonely = msgspec.structs.replace(
        settings, gateway=GatewaySettings(urls=(), secret=settings.gateway.secret)
    )
    with TestClient(create_app(lonely)) as client:
        yield client


def test_validation_verdicts_are_reused_per_tenant_and_hash_only(
    http: httpx.Client,
    admin_token: str,
    unique: str,
    with_gateway: TestClient[Any],
    no_gateway: TestClient[Any],
) -> None:
    t = Tenant(http, admin_token, f"vcache-{unique}")
    u = Tenant(http, admin_token, f"vcache-u-{unique}")
    for tenant in (t, u):
        tenant.post("/namespaces", {"name": "prod"}, 201)
        for name in ("a", "b"):
            tenant.post("/namespaces/prod/plugins", {"name": name}, 201)
    good = {"modules": [{"name": "index.js", "content": plugin_code(f"same code {unique}")}]}
    published = with_gateway.post(t.url("/namespaces/prod/plugins/a/versions"), json=good, headers=t.headers)
    assert published.status_code == 201, published.text
    first = published.json()["version"]

    # This process (a real gateway behind it) accepted that hash for tenant T: another plugin of T
    # stores it without a gateway. Tenant U uploading the same code gets no shortcut, nor does T
    # with any other hash.
    again = no_gateway.post(t.url("/namespaces/prod/plugins/b/versions"), json=good, headers=t.headers)
    assert again.status_code == 201, again.text
    assert again.json()["version"]["hash"] == first["hash"]
    other_tenant = no_gateway.post(u.url("/namespaces/prod/plugins/a/versions"), json=good, headers=u.headers)
    assert other_tenant.status_code == 503, other_tenant.text
    assert other_tenant.json()["type"] == PROBLEM + "validation-unavailable"
    changed = {"modules": [{"name": "index.js", "content": plugin_code(f"other code {unique}")}]}
    new_hash = no_gateway.post(t.url("/namespaces/prod/plugins/b/versions"), json=changed, headers=t.headers)
    assert new_hash.status_code == 503, new_hash.text
    assert u.get("/namespaces/prod/plugins/a/versions") == []

    # A broken bundle is still refused after good ones were cached, and never cached itself.
    broken = {
        "modules": [{"name": "index.js", "content": "export default { fetch() { return new Response('x' }"}]
    }
    for _ in range(2):
        response = with_gateway.post(
            t.url("/namespaces/prod/plugins/a/versions"), json=broken, headers=t.headers
        )
        _problem(response, 422, "bundle-rejected")
    assert [v["number"] for v in t.get("/namespaces/prod/plugins/a/versions")] == [1]


def test_routes_are_paginated_by_pattern(http: httpx.Client, admin_token: str, unique: str) -> None:
    t = Tenant(http, admin_token, f"routes-{unique}")
    t.post("/namespaces", {"name": "prod"}, 201)
    t.post("/namespaces/prod/plugins", {"name": "p"}, 201)
    t.post(
        "/namespaces/prod/plugins/p/versions",
        {"modules": [{"name": "index.js", "content": plugin_code("r")}]},
        201,
    )
    patterns = [f"{host}.{unique}.test/*" for host in ("c", "a", "d", "b")]
    for pattern in patterns:
        t.post("/namespaces/prod/routes", {"pattern": pattern, "plugin": "p"}, 201)
    ordered = sorted(patterns)
    assert [r["pattern"] for r in t.get("/namespaces/prod/routes")] == ordered
    first = t.get("/namespaces/prod/routes?limit=3")
    assert [r["pattern"] for r in first] == ordered[:3]
    rest = t.get(f"/namespaces/prod/routes?limit=3&after={first[-1]['pattern']}")
    assert [r["pattern"] for r in rest] == ordered[3:]
    assert t.get(f"/namespaces/prod/routes?after={ordered[-1]}") == []
    for bad in ("limit=0", "limit=201", "after=" + "x" * 301):
        response = http.get(t.url(f"/namespaces/prod/routes?{bad}"), headers=t.headers)
        _problem(response, 422, "invalid-input")
        assert response.json()["errors"][0]["field"] == bad.partition("=")[0]


def test_a_page_of_deployments_carries_each_ones_own_pushes(
    http: httpx.Client, admin_token: str, unique: str
) -> None:
    t = Tenant(http, admin_token, f"deps-{unique}")
    t.post("/namespaces", {"name": "prod"}, 201)
    t.post("/namespaces/prod/plugins", {"name": "p"}, 201)
    for i in range(3):
        body = {"modules": [{"name": "index.js", "content": plugin_code(f"v{i}")}], "activate": True}
        published = t.post("/namespaces/prod/plugins/p/versions", body, 201)
        assert [p["status"] for p in published["deployment"]["pushes"]] == ["succeeded"]
    listed = t.get("/namespaces/prod/deployments")
    assert [d["revision"] for d in listed] == [3, 2, 1]
    for deployment in listed:
        assert deployment == t.get(f"/namespaces/prod/deployments/{deployment['revision']}")
        assert len(deployment["pushes"]) == 1
    assert t.get("/namespaces/prod/deployments?limit=2&before=3") == listed[1:]


def test_the_server_entry_point_freezes_the_startup_heap_for_the_collector() -> None:
    # In a child process: importing plugyard.asgi tunes the collector of the process importing it.
    code = "import gc, plugyard.asgi; print(gc.get_freeze_count(), *gc.get_threshold())"
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "PLUGYARD_LOG_FORMAT": "json",
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    frozen, young, *_ = (int(n) for n in done.stdout.split())
    # The modules and the app (~90k objects) are frozen; young collections run less often.
    assert frozen > 20_000
    assert young > 700
