"""The API in process (Litestar's AsyncTestClient) against real PostgreSQL and the real gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from plugyard.app import create_app
from plugyard.settings import Settings

Client = AsyncTestClient[Any]


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    # The app opens its own pool: AsyncTestClient runs the app's lifespan in its own portal loop.
    async with AsyncTestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
async def tenant(client: Client, admin_token: str, unique: str) -> dict[str, Any]:
    admin = {"authorization": f"Bearer {admin_token}"}
    slug = f"api-{unique}"
    assert (
        await client.post("/v1/tenants", json={"slug": slug, "name": "API"}, headers=admin)
    ).status_code == 201
    token = (await client.post(f"/v1/tenants/{slug}/tokens", json={"name": "t"}, headers=admin)).json()[
        "token"
    ]
    headers = {"authorization": f"Bearer {token}"}
    base = f"/v1/tenants/{slug}/namespaces"
    assert (await client.post(base, json={"name": "prod"}, headers=headers)).status_code == 201
    assert (await client.post(f"{base}/prod/plugins", json={"name": "p"}, headers=headers)).status_code == 201
    return {"slug": slug, "headers": headers, "ns": f"{base}/prod"}


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == f"https://plugyard.dev/problems/{slug}"
    assert body["title"]
    return body


async def test_requests_without_a_valid_token_are_401_problems(client: Client) -> None:
    assert_problem(await client.get("/v1/tenants"), 401, "missing-token")
    assert_problem(
        await client.get("/v1/tenants", headers={"authorization": "Bearer nope"}), 401, "invalid-token"
    )
    assert_problem(
        await client.get("/v1/tenants", headers={"authorization": "Basic abc"}), 401, "missing-token"
    )


async def test_openapi_schema_is_served(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert schema["info"]["title"] == "Plugyard control plane"
    assert "/v1/tenants/{tenant}/namespaces/{namespace}/plugins/{plugin}/versions" in schema["paths"]


async def test_unknown_path_is_a_problem(client: Client) -> None:
    assert_problem(await client.get("/v1/nothing-here"), 404, "not-found")


async def test_malformed_json_is_400_and_stores_nothing(client: Client, tenant: dict[str, Any]) -> None:
    response = await client.post(
        f"{tenant['ns']}/plugins",
        content=b'{"name": "x",',
        headers={**tenant["headers"], "content-type": "application/json"},
    )
    assert_problem(response, 400, "malformed-body")
    names = [
        p["name"] for p in (await client.get(f"{tenant['ns']}/plugins", headers=tenant["headers"])).json()
    ]
    assert names == ["p"]


async def test_unknown_field_is_named(client: Client, tenant: dict[str, Any]) -> None:
    response = await client.post(
        f"{tenant['ns']}/plugins", json={"name": "x", "colour": "red"}, headers=tenant["headers"]
    )
    body = assert_problem(response, 422, "invalid-input")
    assert "colour" in body["detail"]
    names = [
        p["name"] for p in (await client.get(f"{tenant['ns']}/plugins", headers=tenant["headers"])).json()
    ]
    assert names == ["p"]


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("https://shop.test/*", "scheme"),
        ("shop.test", "path"),
        ("shop.test/a*b", "'*' may only end the path"),
        ("*/*", "not a hostname"),
        ("sh*p.test/*", "not a hostname"),
        ("*.test/*", "two labels"),
        ("shop.test:8080/*", "port"),
    ],
)
async def test_bad_route_patterns_are_422_naming_the_field(
    client: Client, tenant: dict[str, Any], pattern: str, words: str
) -> None:
    response = await client.post(
        f"{tenant['ns']}/routes", json={"pattern": pattern, "plugin": "p"}, headers=tenant["headers"]
    )
    body = assert_problem(response, 422, "invalid-route-pattern")
    assert body["errors"][0]["field"] == "pattern"
    assert words in body["detail"]
    assert (await client.get(f"{tenant['ns']}/routes", headers=tenant["headers"])).json() == []
    assert (await client.get(f"{tenant['ns']}/deployments", headers=tenant["headers"])).json() == []


@pytest.mark.parametrize(
    ("version", "field"),
    [
        ({"modules": [{"name": "index.js", "content": ""}]}, "modules[0].content"),
        ({"modules": []}, "modules"),
        ({"modules": [{"name": "../evil.js", "content": "x"}]}, "modules[0].name"),
        ({"modules": [{"name": "/abs.js", "content": "x"}]}, "modules[0].name"),
        ({"modules": [{"name": "a.js", "content": "x", "type": "exe"}]}, "modules[0].type"),
        ({"modules": [{"name": "a.js", "content": "x"}], "main_module": "b.js"}, "main_module"),
        (
            {"modules": [{"name": "a.js", "content": "x"}], "compatibility_date": "yesterday"},
            "compatibility_date",
        ),
        (
            {"modules": [{"name": "a.js", "content": "x"}, {"name": "a.js", "content": "y"}]},
            "modules[1].name",
        ),
        (
            {
                "modules": [
                    {"name": "d.json", "content": "{nope", "type": "json"},
                    {"name": "a.js", "content": "x"},
                ],
                "main_module": "a.js",
            },
            "modules[0].content",
        ),
    ],
)
async def test_bad_versions_are_4xx_naming_the_field_and_store_nothing(
    client: Client, tenant: dict[str, Any], version: dict[str, Any], field: str
) -> None:
    response = await client.post(
        f"{tenant['ns']}/plugins/p/versions", json=version, headers=tenant["headers"]
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert any(field == e["field"] for e in body["errors"]), body
    assert (await client.get(f"{tenant['ns']}/plugins/p/versions", headers=tenant["headers"])).json() == []


async def test_oversized_bundle_is_413(client: Client, tenant: dict[str, Any]) -> None:
    big = "//" + "x" * (1024 * 1024)
    response = await client.post(
        f"{tenant['ns']}/plugins/p/versions",
        json={"modules": [{"name": "index.js", "content": big}]},
        headers=tenant["headers"],
    )
    assert_problem(response, 413, "payload-too-large")
    assert (await client.get(f"{tenant['ns']}/plugins/p/versions", headers=tenant["headers"])).json() == []


async def test_duplicate_names_are_409(client: Client, tenant: dict[str, Any], admin_token: str) -> None:
    admin = {"authorization": f"Bearer {admin_token}"}
    again = await client.post("/v1/tenants", json={"slug": tenant["slug"], "name": "again"}, headers=admin)
    assert_problem(again, 409, "tenant-exists")
    dup = await client.post(f"{tenant['ns']}/plugins", json={"name": "p"}, headers=tenant["headers"])
    assert_problem(dup, 409, "plugin-exists")


async def test_activating_a_missing_version_is_404(client: Client, tenant: dict[str, Any]) -> None:
    response = await client.put(
        f"{tenant['ns']}/plugins/p/active-version", json={"version": 7}, headers=tenant["headers"]
    )
    assert_problem(response, 404, "version-not-found")


async def test_page_size_is_bounded(client: Client, tenant: dict[str, Any]) -> None:
    response = await client.get(
        f"/v1/tenants/{tenant['slug']}/namespaces?limit=100000", headers=tenant["headers"]
    )
    body = assert_problem(response, 422, "invalid-input")
    assert body["errors"][0]["field"] == "limit"


async def test_every_response_carries_a_request_id(client: Client) -> None:
    response = await client.get("/healthz", headers={"x-request-id": "abcdef0123456789"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abcdef0123456789"
    assert (await client.get("/healthz")).headers["x-request-id"]


async def test_token_create_and_revoke_through_the_api_are_audited(
    client: Client, tenant: dict[str, Any], admin_token: str
) -> None:
    slug = tenant["slug"]
    admin = {"authorization": f"Bearer {admin_token}"}
    created = await client.post(f"/v1/tenants/{slug}/tokens", json={"name": "ci"}, headers=tenant["headers"])
    assert created.status_code == 201, created.text
    token = created.json()
    revoked = await client.delete(f"/v1/tenants/{slug}/tokens/{token['id']}", headers=admin)
    assert revoked.status_code == 204, revoked.text
    log = (await client.get(f"/v1/tenants/{slug}/audit-log?subject=token:ci", headers=admin)).json()
    entries = {e["action"]: e for e in log}
    assert set(entries) == {"token.created", "token.revoked"}
    assert entries["token.created"]["actor"].startswith("token:")  # the tenant token that made it
    assert entries["token.revoked"]["actor"] == "admin"
    assert entries["token.revoked"]["details"]["token_id"] == token["id"]
    assert token["token"] not in str(log)  # the secret never reaches the audit log
    # Revoking a token that is not this tenant's writes nothing.
    missing = await client.delete(
        f"/v1/tenants/{slug}/tokens/00000000-0000-0000-0000-000000000000", headers=admin
    )
    assert missing.status_code == 404
    again = (await client.get(f"/v1/tenants/{slug}/audit-log?subject=token:ci", headers=admin)).json()
    assert len(again) == 2
