"""Per-tenant fairness: a cap on distinct live versions (active + experiment variants)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from plugyard.app import create_app
from plugyard.settings import Settings
from tests.integration.helpers import plugin_code

PROBLEM = "https://plugyard.dev/problems/"


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(msgspec.structs.replace(settings, max_live_versions=2))) as c:
        yield c


async def _tenant(client: AsyncTestClient[Any], admin_token: str, slug: str) -> dict[str, str]:
    admin = {"authorization": f"Bearer {admin_token}"}
    assert (
        await client.post("/v1/tenants", json={"slug": slug, "name": slug}, headers=admin)
    ).status_code == 201
    token = (await client.post(f"/v1/tenants/{slug}/tokens", json={"name": "t"}, headers=admin)).json()[
        "token"
    ]
    auth = {"authorization": f"Bearer {token}"}
    assert (
        await client.post(f"/v1/tenants/{slug}/namespaces", json={"name": "prod"}, headers=auth)
    ).status_code == 201
    return auth


async def _publish(
    client: AsyncTestClient[Any], slug: str, auth: dict[str, str], plugin: str, text: str
) -> Any:
    base = f"/v1/tenants/{slug}/namespaces/prod/plugins"
    await client.post(base, json={"name": plugin}, headers=auth)
    body = {"modules": [{"name": "index.js", "content": plugin_code(text)}], "activate": True}
    return await client.post(f"{base}/{plugin}/versions", json=body, headers=auth)


async def test_the_cap_refuses_a_third_live_version_and_is_reported(
    client: AsyncTestClient[Any], settings: Settings, admin_token: str, unique: str
) -> None:
    slug = f"fair-{unique}"
    auth = await _tenant(client, admin_token, slug)
    assert (await _publish(client, slug, auth, "a", "a1")).status_code == 201
    assert (await _publish(client, slug, auth, "b", "b1")).status_code == 201
    # A new version of a live plugin replaces it: still 2 live, allowed.
    assert (await _publish(client, slug, auth, "a", "a2")).status_code == 201

    refused = await _publish(client, slug, auth, "c", "c1")
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"] == PROBLEM + "live-version-cap"
    assert (problem["live"], problem["limit"]) == (3, 2)
    # Nothing of the refused change was kept: c has no version, no deployment went out.
    versions = await client.get(f"/v1/tenants/{slug}/namespaces/prod/plugins/c/versions", headers=auth)
    assert versions.status_code == 200
    assert versions.json() == []

    live = (await client.get(f"/v1/tenants/{slug}/live-versions", headers=auth)).json()
    assert (live["live"], live["limit"]) == (2, 2)
    assert [(v["plugin"], v["version"]) for v in live["versions"]] == [("a", 2), ("b", 1)]

    # Over the cap (it was lowered): changes that make no version live still pass.
    async with AsyncTestClient(create_app(msgspec.structs.replace(settings, max_live_versions=1))) as lowered:
        changed = await lowered.patch(
            f"/v1/tenants/{slug}/namespaces/prod", json={"vars": {"A": "b"}}, headers=auth
        )
        assert changed.status_code == 200, changed.text
        again = await _publish(lowered, slug, auth, "a", "a3")
        assert again.status_code == 409, again.text

    # Another tenant's count is its own.
    other = f"fair-other-{unique}"
    other_auth = await _tenant(client, admin_token, other)
    assert (await _publish(client, other, other_auth, "a", "x")).status_code == 201
    assert (await client.get(f"/v1/tenants/{slug}/live-versions", headers=other_auth)).status_code == 404
