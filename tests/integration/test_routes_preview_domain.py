"""Routes under the gateway's preview domain are refused: the gateway serves those hosts as previews.

`loader_worker/src/preview.js` answers every host below PLUGYARD_PREVIEW_DOMAIN before it looks at
routes, so such a route could never be served. The API says so with a 422 problem.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from plugyard.app import create_app
from plugyard.routes import patterns
from plugyard.settings import Settings
from tests.integration.test_api import assert_problem

Client = AsyncTestClient[Any]
DEFAULT = "preview.plugyard.localhost"


async def _tenant(client: Client, admin_token: str, slug: str) -> dict[str, Any]:
    admin = {"authorization": f"Bearer {admin_token}"}
    assert (
        await client.post("/v1/tenants", json={"slug": slug, "name": "R"}, headers=admin)
    ).status_code == 201
    created = await client.post(f"/v1/tenants/{slug}/tokens", json={"name": "t"}, headers=admin)
    headers = {"authorization": f"Bearer {created.json()['token']}"}
    base = f"/v1/tenants/{slug}/namespaces"
    assert (await client.post(base, json={"name": "prod"}, headers=headers)).status_code == 201
    assert (await client.post(f"{base}/prod/plugins", json={"name": "p"}, headers=headers)).status_code == 201
    return {"headers": headers, "ns": f"{base}/prod"}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize(
    "pattern",
    [
        f"0123456789abcdef0123456789abcdef.{DEFAULT}/*",
        f"*.{DEFAULT}/*",
        f"*.team.{DEFAULT}/api/*",
        f"Shop.{DEFAULT.upper()}/",
    ],
)
async def test_a_route_under_the_preview_domain_is_422_naming_it(
    client: Client, admin_token: str, unique: str, pattern: str
) -> None:
    tenant = await _tenant(client, admin_token, f"rp-{unique}")
    response = await client.post(
        f"{tenant['ns']}/routes", json={"pattern": pattern, "plugin": "p"}, headers=tenant["headers"]
    )
    body = assert_problem(response, 422, "route-in-preview-domain")
    assert body["errors"][0]["field"] == "pattern"
    assert body["preview_domain"] == DEFAULT
    assert DEFAULT in body["detail"]
    # Refused before any work: nothing stored, nothing deployed.
    assert (await client.get(f"{tenant['ns']}/routes", headers=tenant["headers"])).json() == []
    assert (await client.get(f"{tenant['ns']}/deployments", headers=tenant["headers"])).json() == []


async def test_the_preview_domain_itself_and_wider_wildcards_are_routable(
    client: Client, admin_token: str, unique: str
) -> None:
    """The domain's own host and a wildcard above it also match hosts the gateway routes."""
    tenant = await _tenant(client, admin_token, f"rq-{unique}")
    # Unique labels: hosts are claimed across tenants and the session's tests share a database.
    for pattern in (f"{DEFAULT}/{unique}/*", f"*.u{unique}.plugyard.localhost/*"):
        response = await client.post(
            f"{tenant['ns']}/routes", json={"pattern": pattern, "plugin": "p"}, headers=tenant["headers"]
        )
        assert response.status_code == 201, response.text


async def test_the_configured_preview_domain_is_the_one_refused(
    settings: Settings, admin_token: str, unique: str
) -> None:
    domain = f"pv-{unique}.example.test"
    custom = msgspec.structs.replace(settings, preview_domain=domain)
    async with AsyncTestClient(create_app(custom)) as client:
        tenant = await _tenant(client, admin_token, f"rc-{unique}")
        refused = await client.post(
            f"{tenant['ns']}/routes",
            json={"pattern": f"a.{domain}/*", "plugin": "p"},
            headers=tenant["headers"],
        )
        assert assert_problem(refused, 422, "route-in-preview-domain")["preview_domain"] == domain
        # The default domain is an ordinary host when previews live elsewhere.
        allowed = await client.post(
            f"{tenant['ns']}/routes",
            json={"pattern": f"u{unique}.{DEFAULT}/*", "plugin": "p"},
            headers=tenant["headers"],
        )
        assert allowed.status_code == 201, allowed.text


@pytest.mark.parametrize(
    ("pattern", "under"),
    [
        ("a.pv.test/*", True),
        ("*.pv.test/*", True),
        ("*.x.pv.test/*", True),
        ("pv.test/*", False),
        ("*.test.x/*", False),
        ("apv.test/*", False),
        ("a.pv.test.evil/*", False),
    ],
)
def test_under_domain(pattern: str, under: bool) -> None:
    assert patterns.under_domain(patterns.parse(pattern), "PV.test.") is under
