"""End to end over HTTP: a real control plane (granian) pushing to a real workerd gateway."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from plugyard.gateway.process import GatewayProcess
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant, check, plugin_code, via_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def test_publish_and_rollback_change_what_the_gateway_serves(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    acme = Tenant(http, admin_token, f"acme-{unique}")
    host = f"shop.{acme.slug}.test"
    route = acme.plugin_with_route(
        namespace="production", plugin="hello", code=plugin_code("v1"), pattern=f"{host}/*"
    )
    assert route["deployment"]["pushes"][0]["status"] == "succeeded"

    first = via_gateway(gateway.url, host, "/anything")
    assert first.status_code == 200
    assert first.text == "v1"

    published = acme.post(
        "/namespaces/production/plugins/hello/versions",
        {"modules": [{"name": "index.js", "content": plugin_code("v2")}], "activate": True},
        201,
    )
    assert published["version"]["number"] == 2
    assert published["deployment"]["pushes"][0]["status"] == "succeeded"
    assert via_gateway(gateway.url, host).text == "v2"

    rolled_back = acme.put("/namespaces/production/plugins/hello/active-version", {"version": 1})
    assert rolled_back["plugin"]["active_version"] == 1
    assert via_gateway(gateway.url, host).text == "v1"

    # Every serving change is a numbered deployment with its push recorded.
    history = acme.get("/namespaces/production/deployments")
    assert [d["revision"] for d in history] == [4, 3, 2, 1]
    assert all(d["pushes"][0]["status"] == "succeeded" for d in history)
    assert history[0]["reason"] == "activated hello v1"


def test_reuploading_the_same_bundle_is_idempotent(http: httpx.Client, admin_token: str, unique: str) -> None:
    t = Tenant(http, admin_token, f"idem-{unique}")
    t.post("/namespaces", {"name": "prod"}, 201)
    t.post("/namespaces/prod/plugins", {"name": "p"}, 201)
    body = {"modules": [{"name": "index.js", "content": plugin_code("same")}]}
    first = t.post("/namespaces/prod/plugins/p/versions", body, 201)
    again = t.post("/namespaces/prod/plugins/p/versions", body, 200)
    assert again["created"] is False
    assert again["version"]["hash"] == first["version"]["hash"]
    assert len(first["version"]["hash"]) == 64
    assert [v["number"] for v in t.get("/namespaces/prod/plugins/p/versions")] == [1]


def test_tenant_b_cannot_see_or_touch_tenant_a(http: httpx.Client, admin_token: str, unique: str) -> None:
    a = Tenant(http, admin_token, f"alpha-{unique}")
    b = Tenant(http, admin_token, f"beta-{unique}")
    a.plugin_with_route(
        namespace="production", plugin="hello", code=plugin_code("a"), pattern=f"a.{a.slug}.test/*"
    )
    route_id = a.get("/namespaces/production/routes")[0]["id"]
    base = f"/v1/tenants/{a.slug}"
    ns = f"{base}/namespaces/production"
    calls = [
        ("GET", base, None),
        ("GET", f"{base}/tokens", None),
        ("POST", f"{base}/tokens", {"name": "steal"}),
        ("GET", f"{base}/namespaces", None),
        ("POST", f"{base}/namespaces", {"name": "intruder"}),
        ("GET", ns, None),
        ("GET", f"{ns}/plugins", None),
        ("POST", f"{ns}/plugins", {"name": "evil"}),
        ("GET", f"{ns}/plugins/hello", None),
        ("PATCH", f"{ns}/plugins/hello", {"vars": {"X": "1"}}),
        ("DELETE", f"{ns}/plugins/hello", None),
        ("GET", f"{ns}/plugins/hello/versions", None),
        ("GET", f"{ns}/plugins/hello/versions/1", None),
        (
            "POST",
            f"{ns}/plugins/hello/versions",
            {"modules": [{"name": "i.js", "content": "x"}], "activate": True},
        ),
        ("PUT", f"{ns}/plugins/hello/active-version", {"version": 1}),
        ("GET", f"{ns}/routes", None),
        ("POST", f"{ns}/routes", {"pattern": f"b.{a.slug}.test/*", "plugin": "hello"}),
        ("DELETE", f"{ns}/routes/{route_id}", None),
        ("GET", f"{ns}/deployments", None),
        ("GET", f"{ns}/deployments/1", None),
    ]
    for method, path, body in calls:
        response = http.request(method, path, json=body, headers=b.headers)
        assert response.status_code == 404, f"{method} {path} -> {response.status_code} {response.text}"
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("tenant-not-found")
    # Nothing of A's changed.
    assert a.get("/namespaces/production/plugins/hello")["active_version"] == 1
    assert len(a.get("/namespaces/production/deployments")) == 2
    # B cannot create tenants either (admin only).
    refused = http.post("/v1/tenants", json={"slug": f"x-{unique}", "name": "x"}, headers=b.headers)
    assert refused.status_code == 403


def test_identical_code_in_two_tenants_gets_separate_isolates_with_their_own_env(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    code = "export default { fetch(request, env) { return new Response(env.WHO); } };"
    one = Tenant(http, admin_token, f"one-{unique}")
    two = Tenant(http, admin_token, f"two-{unique}")
    one.plugin_with_route(
        namespace="prod", plugin="same", code=code, pattern=f"x.{one.slug}.test/*", vars_={"WHO": "one"}
    )
    two.plugin_with_route(
        namespace="prod", plugin="same", code=code, pattern=f"x.{two.slug}.test/*", vars_={"WHO": "two"}
    )
    assert via_gateway(gateway.url, f"x.{one.slug}.test").text == "one"
    assert via_gateway(gateway.url, f"x.{two.slug}.test").text == "two"
    # Same bundle, same content hash: only the tenant (in the loader id) tells them apart.
    hash_one = one.get("/namespaces/prod/plugins/same")["active_version_hash"]
    assert hash_one == two.get("/namespaces/prod/plugins/same")["active_version_hash"]

    # Changing vars deploys without a new version, and the plugin sees the new value.
    changed = http.patch(
        one.url("/namespaces/prod/plugins/same"), json={"vars": {"WHO": "uno"}}, headers=one.headers
    )
    check(changed, 200)
    assert via_gateway(gateway.url, f"x.{one.slug}.test").text == "uno"
    assert via_gateway(gateway.url, f"x.{two.slug}.test").text == "two"


def test_a_throwing_plugin_is_a_502_problem_and_other_tenants_keep_serving(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    bad = Tenant(http, admin_token, f"bad-{unique}")
    good = Tenant(http, admin_token, f"good-{unique}")
    throwing = "export default { fetch() { throw new Error('secret internal detail'); } };"
    bad.plugin_with_route(namespace="prod", plugin="boom", code=throwing, pattern=f"boom.{bad.slug}.test/*")
    good.plugin_with_route(
        namespace="prod", plugin="ok", code=plugin_code("fine"), pattern=f"ok.{good.slug}.test/*"
    )
    for _ in range(3):
        failed = via_gateway(gateway.url, f"boom.{bad.slug}.test")
        assert failed.status_code == 502
        assert failed.headers["content-type"].startswith("application/problem+json")
        problem = failed.json()
        assert problem["type"].endswith("/plugin-failed")
        assert "secret internal detail" not in failed.text
        served = via_gateway(gateway.url, f"ok.{good.slug}.test")
        assert (served.status_code, served.text) == (200, "fine")


def test_no_route_and_no_active_version_are_problems(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    missing = via_gateway(gateway.url, f"nobody-{unique}.test")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/no-route")

    t = Tenant(http, admin_token, f"draft-{unique}")
    t.post("/namespaces", {"name": "prod"}, 201)
    t.post("/namespaces/prod/plugins", {"name": "draft"}, 201)
    t.post("/namespaces/prod/routes", {"pattern": f"d.{t.slug}.test/*", "plugin": "draft"}, 201)
    unpublished = via_gateway(gateway.url, f"d.{t.slug}.test")
    assert unpublished.status_code == 503
    assert unpublished.json()["type"].endswith("/no-active-version")


@pytest.mark.parametrize(
    ("claimed", "attempt"),
    [
        ("shop.{a}.test/*", "shop.{a}.test/other/*"),  # exact host, another path
        ("shop.{a}.test/*", "*.{a}.test/*"),  # wildcard covering A's host
        ("*.{a}.test/*", "deep.shop.{a}.test/*"),  # host under A's wildcard
        ("*.shop.{a}.test/*", "*.{a}.test/*"),  # wider wildcard
    ],
)
def test_a_host_belongs_to_one_tenant(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str, claimed: str, attempt: str
) -> None:
    a = Tenant(http, admin_token, f"owner-{unique}")
    b = Tenant(http, admin_token, f"thief-{unique}")
    pattern = claimed.format(a=a.slug)
    a.plugin_with_route(namespace="prod", plugin="site", code=plugin_code("owner"), pattern=pattern)
    sample_host = pattern.split("/")[0].replace("*", "www")
    b.post("/namespaces", {"name": "prod"}, 201)
    b.post("/namespaces/prod/plugins", {"name": "evil"}, 201)
    refused = http.post(
        b.url("/namespaces/prod/routes"),
        json={"pattern": attempt.format(a=a.slug), "plugin": "evil"},
        headers=b.headers,
    )
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/host-claimed")
    assert b.get("/namespaces/prod/routes") == []
    assert b.get("/namespaces/prod/deployments") == []
    served = via_gateway(gateway.url, sample_host, "/other/x")
    assert (served.status_code, served.text) == (200, "owner")


def test_the_same_tenant_may_add_more_specific_routes(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = Tenant(http, admin_token, f"spec-{unique}")
    host = f"www.{t.slug}.test"
    t.plugin_with_route(
        namespace="prod", plugin="site", code=plugin_code("site"), pattern=f"*.{t.slug}.test/*"
    )
    t.post("/namespaces/prod/plugins", {"name": "api"}, 201)
    t.post(
        "/namespaces/prod/plugins/api/versions",
        {"modules": [{"name": "index.js", "content": plugin_code("api")}], "activate": True},
        201,
    )
    t.post("/namespaces/prod/routes", {"pattern": f"{host}/api/*", "plugin": "api"}, 201)
    assert via_gateway(gateway.url, host, "/api/users").text == "api"
    assert via_gateway(gateway.url, host, "/about").text == "site"
    # Removing the specific route sends its traffic back to the wildcard.
    route = next(r for r in t.get("/namespaces/prod/routes") if r["plugin"] == "api")
    check(http.delete(t.url(f"/namespaces/prod/routes/{route['id']}"), headers=t.headers), 200)
    assert via_gateway(gateway.url, host, "/api/users").text == "site"


def test_revoked_token_stops_working_at_once(http: httpx.Client, admin_token: str, unique: str) -> None:
    t = Tenant(http, admin_token, f"rev-{unique}")
    extra = t.post("/tokens", {"name": "ci"}, 201)
    headers = {"authorization": f"Bearer {extra['token']}"}
    assert http.get(t.url(), headers=headers).status_code == 200
    listed = t.get("/tokens")
    assert all("token" not in item for item in listed)
    check(http.delete(t.url(f"/tokens/{extra['id']}"), headers=t.headers), 204)
    refused = http.get(t.url(), headers=headers)
    assert refused.status_code == 401
    assert refused.json()["type"].endswith("/invalid-token")
