"""Vars and secrets: namespace and plugin scope, write-only, encrypted at rest, never logged."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from plugyard.app import create_app
from plugyard.gateway.process import GatewayProcess
from plugyard.settings import Settings
from tests.conftest import OUTPUT, ControlPlane
from tests.integration.helpers import Tenant, via_gateway

pytestmark = pytest.mark.e2e
PROBLEM = "https://plugyard.dev/problems/"
ENV_CODE = """\
export default {
  async fetch(request, env) {
    const { GREETING, REGION, API_KEY, SHARED } = env;
    return Response.json({ GREETING, REGION, API_KEY, SHARED });
  },
};
"""


class Recording:
    """An httpx client that keeps every response body, to search them all for the secret."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.bodies: list[str] = []
        client.event_hooks["response"] = [self._keep]

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        self.bodies.append(response.text + str(response.headers))


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def test_a_secret_reaches_the_plugin_but_no_response_log_or_table_row(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, database_url: str, unique: str
) -> None:
    recording = Recording(http)
    value = "sk_live_" + secrets.token_hex(12)
    shared = "shared_" + secrets.token_hex(12)
    t = Tenant(http, admin_token, f"vault-{unique}")
    host = f"vault.{unique}.test"
    t.post("/namespaces", {"name": "prod", "vars": {"REGION": "eu"}}, 201)
    t.plugin_with_route(
        namespace="prod", plugin="p", code=ENV_CODE, pattern=f"{host}/*", vars_={"GREETING": "hi"}
    )
    ns_secret = t.put("/namespaces/prod/secrets/SHARED", {"value": shared})
    assert ns_secret["secret"]["scope"] == "namespace"
    changed = t.put("/namespaces/prod/plugins/p/secrets/API_KEY", {"value": value})
    assert changed["secret"]["name"] == "API_KEY"
    assert changed["secret"]["scope"] == "plugin"
    assert changed["deployment"]["pushes"][0]["status"] == "succeeded"
    assert changed["deployment"]["reason"] == "secret API_KEY of prod/p set"
    served = via_gateway(gateway.url, host).json()
    assert served == {"GREETING": "hi", "REGION": "eu", "API_KEY": value, "SHARED": shared}

    # A new value is a new deployment with a fresh isolate, and no new version.
    rotated = value + "_2"
    second = t.put("/namespaces/prod/plugins/p/secrets/API_KEY", {"value": rotated})
    assert second["deployment"]["revision"] == changed["deployment"]["revision"] + 1
    plugin = t.get("/namespaces/prod/plugins/p")
    assert plugin["active_version"] == 1
    assert [v["number"] for v in t.get("/namespaces/prod/plugins/p/versions")] == [1]
    assert via_gateway(gateway.url, host).json()["API_KEY"] == rotated
    state = second["deployment"]["state"]["plugins"]["p"]
    assert set(state["secret_refs"]) == {"API_KEY", "SHARED"}
    assert state["env_hash"] != changed["deployment"]["state"]["plugins"]["p"]["env_hash"]

    # Namespace vars deploy too; a plugin's own var of the same name wins.
    patched = t.http.patch(
        t.url("/namespaces/prod"), json={"vars": {"REGION": "us", "GREETING": "ns"}}, headers=t.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["namespace"]["vars"] == {"REGION": "us", "GREETING": "ns"}
    assert via_gateway(gateway.url, host).json()["REGION"] == "us"
    assert via_gateway(gateway.url, host).json()["GREETING"] == "hi"

    # Every read the API offers: names only.
    listed = t.get("/namespaces/prod/plugins/p/secrets")
    assert [(s["name"], s["scope"]) for s in listed] == [("API_KEY", "plugin")]
    assert [s["name"] for s in t.get("/namespaces/prod/secrets")] == ["SHARED"]
    for path in [
        "",
        "/namespaces",
        "/namespaces/prod",
        "/namespaces/prod/plugins",
        "/namespaces/prod/plugins/p",
        "/namespaces/prod/deployments",
        "/namespaces/prod/deployments/1",
    ]:
        t.get(path)
    preview = t.post("/namespaces/prod/plugins/p/versions/1/preview", {}, 201)
    assert via_gateway(gateway.url, preview["host"]).json()["API_KEY"] == rotated

    deleted = http.delete(t.url("/namespaces/prod/plugins/p/secrets/API_KEY"), headers=t.headers)
    assert deleted.status_code == 200, deleted.text
    assert "API_KEY" not in via_gateway(gateway.url, host).json()
    missing = http.delete(t.url("/namespaces/prod/plugins/p/secrets/API_KEY"), headers=t.headers)
    assert (missing.status_code, missing.json()["type"]) == (404, PROBLEM + "secret-not-found")

    for body in recording.bodies:
        assert value not in body
        assert shared not in body
    log = (OUTPUT / "control-plane-session.log").read_text()
    assert f'"tenant": "vault-{unique}"' in log  # the right log, and it is written
    assert "secret_set" in log
    assert value not in log
    assert rotated not in log
    assert shared not in log
    assert value not in (OUTPUT / "workerd-session.log").read_text(errors="replace")

    async def stored() -> list[bytes]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch("SELECT ciphertext FROM secrets")
            states = await conn.fetch("SELECT state::text AS s FROM deployments")
        finally:
            await conn.close()
        return [r["ciphertext"] for r in rows] + [r["s"].encode() for r in states]

    import asyncio

    for blob in asyncio.run(stored()):
        assert value.encode() not in blob
        assert shared.encode() not in blob


def test_other_tenants_and_bad_names_get_problems(http: httpx.Client, admin_token: str, unique: str) -> None:
    a = Tenant(http, admin_token, f"sa-{unique}")
    b = Tenant(http, admin_token, f"sb-{unique}")
    a.post("/namespaces", {"name": "prod"}, 201)
    a.post("/namespaces/prod/plugins", {"name": "p"}, 201)
    base = f"/v1/tenants/{a.slug}/namespaces/prod"
    for method, path in [
        ("GET", f"{base}/secrets"),
        ("PUT", f"{base}/secrets/X"),
        ("GET", f"{base}/plugins/p/secrets"),
        ("PUT", f"{base}/plugins/p/secrets/X"),
        ("DELETE", f"{base}/plugins/p/secrets/X"),
    ]:
        response = http.request(
            method, path, json={"value": "v"} if method == "PUT" else None, headers=b.headers
        )
        assert response.status_code == 404, (method, path, response.text)
    bad = http.put(f"{base}/plugins/p/secrets/not-a-name", json={"value": "v"}, headers=a.headers)
    assert bad.status_code == 422, bad.text
    assert bad.json()["errors"][0]["field"] == "name"
    extra = http.put(f"{base}/plugins/p/secrets/OK", json={"value": "v", "x": 1}, headers=a.headers)
    assert extra.status_code == 422


@pytest.fixture
async def keyed_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
async def keyless_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(msgspec.structs.replace(settings, secrets_key=None))) as client:
        yield client


async def test_without_a_key_secrets_are_refused_and_their_pushes_fail(
    keyed_client: AsyncTestClient[Any], keyless_client: AsyncTestClient[Any], admin_token: str, unique: str
) -> None:
    admin = {"authorization": f"Bearer {admin_token}"}
    slug = f"nokey-{unique}"
    await keyed_client.post("/v1/tenants", json={"slug": slug, "name": slug}, headers=admin)
    token = (await keyed_client.post(f"/v1/tenants/{slug}/tokens", json={"name": "t"}, headers=admin)).json()
    auth = {"authorization": f"Bearer {token['token']}"}
    ns = f"/v1/tenants/{slug}/namespaces/prod"
    await keyed_client.post(f"/v1/tenants/{slug}/namespaces", json={"name": "prod"}, headers=auth)
    await keyed_client.post(f"{ns}/plugins", json={"name": "p"}, headers=auth)
    stored = await keyed_client.put(f"{ns}/secrets/TOKEN", json={"value": "v"}, headers=auth)
    assert stored.json()["deployment"]["pushes"][0]["status"] == "succeeded"

    refused = await keyless_client.put(f"{ns}/secrets/OTHER", json={"value": "v"}, headers=auth)
    assert refused.status_code == 503
    assert refused.json()["type"] == PROBLEM + "secrets-disabled"
    # A change that needs the stored secret is recorded, but its push fails visibly.
    changed = await keyless_client.patch(ns, json={"vars": {"A": "b"}}, headers=auth)
    assert changed.status_code == 200, changed.text
    push = changed.json()["deployment"]["pushes"][0]
    assert push["status"] == "failed"
    assert push["last_error"] == "secrets cannot be opened: PLUGYARD_SECRETS_KEY is not set"
