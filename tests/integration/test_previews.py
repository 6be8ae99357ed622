"""Preview URLs: any stored version before activation, never touching live traffic."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from plugyard.gateway.process import GatewayProcess
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant, check, plugin_code, via_gateway

pytestmark = pytest.mark.e2e
PROBLEM = "https://plugyard.dev/problems/"
VERSIONS = "/namespaces/prod/plugins/p/versions"


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def test_any_version_gets_a_preview_url_that_leaves_live_traffic_alone(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = Tenant(http, admin_token, f"prev-{unique}")
    host = f"prev.{unique}.test"
    t.plugin_with_route(namespace="prod", plugin="p", code=plugin_code("live v1"), pattern=f"{host}/*")
    # Version 2 is stored but not active.
    t.post(VERSIONS, {"modules": [{"name": "index.js", "content": plugin_code("draft v2")}]}, 201)
    deployments_before = t.get("/namespaces/prod/deployments")

    preview = t.post(VERSIONS + "/2/preview", {}, 201)
    assert preview["version"] == 2
    assert preview["host"].endswith(".preview.plugyard.localhost")
    assert preview["url"] == f"http://{preview['host']}:{gateway.port}/"
    assert preview["gateways"] == 1
    served = via_gateway(gateway.url, preview["host"], "/any/path")
    assert (served.status_code, served.text) == (200, "draft v2")
    assert served.headers["x-plugyard-preview"] == "1"
    assert served.headers["x-plugyard-version"] == preview["hash"][:12]

    live = via_gateway(gateway.url, host)
    assert (live.text, live.headers.get("x-plugyard-preview")) == ("live v1", None)
    # Issuing a preview is not a deployment.
    assert t.get("/namespaces/prod/deployments") == deployments_before
    assert t.get("/namespaces/prod/plugins/p")["active_version"] == 1

    # The active version can be previewed too; each call gets its own URL.
    again = t.post(VERSIONS + "/1/preview", {}, 201)
    assert again["host"] != preview["host"]
    assert via_gateway(gateway.url, again["host"]).text == "live v1"
    # Activating later does not change what the v2 preview serves.
    t.put("/namespaces/prod/plugins/p/active-version", {"version": 2})
    assert via_gateway(gateway.url, host).text == "draft v2"
    assert via_gateway(gateway.url, again["host"]).text == "live v1"


def test_previews_are_per_tenant_and_per_version(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    a = Tenant(http, admin_token, f"pa-{unique}")
    b = Tenant(http, admin_token, f"pb-{unique}")
    a.post("/namespaces", {"name": "prod"}, 201)
    a.post("/namespaces/prod/plugins", {"name": "p"}, 201)
    a.post(VERSIONS, {"modules": [{"name": "index.js", "content": plugin_code("a")}]}, 201)
    other = http.post(a.url(VERSIONS + "/1/preview"), headers=b.headers)
    assert other.status_code == 404
    missing = check(http.post(a.url(VERSIONS + "/7/preview"), headers=a.headers), 404)
    assert missing["type"] == PROBLEM + "version-not-found"
    unknown = via_gateway(gateway.url, "0" * 32 + ".preview.plugyard.localhost")
    assert (unknown.status_code, unknown.json()["type"]) == (404, PROBLEM + "no-preview")
