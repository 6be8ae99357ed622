"""Cross-tenant matrix: every route that takes tenant-owned ids, called by tenant B on A's ids.

The routes come from the real app's route table. `ROUTES` says, for each one, whether it takes
tenant-owned ids (then it is in the matrix) or why not; a route missing from the table fails
`test_every_route_is_classified`, so a new endpoint cannot ship without being covered here.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from plugyard.app import create_app
from plugyard.settings import Settings
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant, plugin_code
from tests.integration.portal_helpers import Portal, cli_invite, signed_in
from tests.security.figures import record

pytestmark = pytest.mark.e2e

TENANT = "tenant"  # the route takes tenant-owned ids: it is in the matrix
_PARAM = re.compile(r"\{(\w+):(\w+)\}")
_API = "/v1/tenants/{tenant:str}"
_NS = _API + "/namespaces/{namespace:str}"
_PL = _NS + "/plugins/{plugin:str}"
_T = "/t/{tenant:str}"
_TNS = _T + "/ns/{namespace:str}"

# Route path -> TENANT, or the reason it holds no tenant-owned ids.
ROUTES: dict[str, str] = {
    "/healthz": "liveness, no ids",
    "/metrics": "platform Prometheus exposition, admin-only aggregate",
    "/v1/tenants": "admin-only list/create (tests/integration/test_api.py)",
    "/v1/templates": "the shared template catalog",
    "/v1/templates/{name:str}": "the shared template catalog",
    "/v1/ingest/experiments": "gateway-signed ingest, no tenant token accepted",
    "/v1/ingest/metrics": "gateway-signed ingest, no tenant token accepted",
    "/v1/gateway/quarantines": "gateway-signed report, no tenant token accepted",
    "/v1/gateways": "admin-only gateway health, no tenant ids (403 for tenants: tests/faults/test_gateway_killed.py)",
    "/invite/{token:str}": "a secret invite token is the only key",
    "/": "portal home of the signed-in user",
    "/login": "portal sign-in",
    "/logout": "portal sign-out",
    "/switch": "portal tenant switcher (lists the user's own tenants)",
    "/static/portal/{file_path:path}": "static assets",
    "/schema": "OpenAPI document",
    "/schema/{path:str}": "OpenAPI document",
    "/schema/openapi.json": "OpenAPI document",
    "/schema/scalar": "OpenAPI document",
}
for _path in (
    _API,
    _API + "/tokens",
    _API + "/tokens/{token_id:uuid}",
    _API + "/namespaces",
    _API + "/audit-log",
    _API + "/live-versions",
    _API + "/quarantines",
    _API + "/metrics",
    _API + "/metrics/egress",
    _API + "/usage",
    _NS,
    _NS + "/egress",
    _NS + "/plugins",
    _NS + "/secrets",
    _NS + "/secrets/{name:str}",
    _NS + "/routes",
    _NS + "/routes/{route_id:uuid}",
    _NS + "/deployments",
    _NS + "/deployments/{revision:int}",
    _NS + "/experiments",
    _NS + "/experiments/{key:str}",
    _NS + "/experiments/{key:str}/assignment",
    _NS + "/experiments/{key:str}/kill",
    _NS + "/experiments/{key:str}/pause",
    _NS + "/experiments/{key:str}/preview-tokens",
    _NS + "/experiments/{key:str}/results",
    _NS + "/experiments/{key:str}/resume",
    _NS + "/experiments/{key:str}/start",
    _NS + "/experiments/{key:str}/stop",
    _NS + "/experiment-holdout",
    _PL,
    _PL + "/active-version",
    _PL + "/versions",
    _PL + "/versions/{number:int}",
    _PL + "/versions/{number:int}/diff/{other:int}",
    _PL + "/versions/{number:int}/preview",
    _PL + "/versions/{number:int}/release",
    _PL + "/versions/upload",
    _PL + "/versions/from-template",
    _PL + "/secrets",
    _PL + "/secrets/{name:str}",
    _PL + "/status",
    _PL + "/logs",
    _T,
    _T + "/namespaces",
    _T + "/audit",
    _T + "/deployments",
    _T + "/metrics",
    _T + "/tokens",
    _T + "/tokens/{token_id:uuid}/revoke",
    _T + "/members",
    _T + "/members/invite",
    _T + "/members/{user_id:uuid}/remove",
    _T + "/members/{user_id:uuid}/role",
    _T + "/invites/{invite_id:uuid}/revoke",
    _TNS,
    _TNS + "/experiments",
    _TNS + "/experiments/{key:str}",
    _TNS + "/experiments/{key:str}/{action:str}",
    _TNS + "/routes",
    _TNS + "/routes/check",
    _TNS + "/routes/{route_id:uuid}/delete",
    _TNS + "/plugins",
    _TNS + "/secrets",
    _TNS + "/secrets/{name:str}/delete",
    _TNS + "/vars",
    _TNS + "/egress",
    _TNS + "/p/{plugin:str}",
    _TNS + "/p/{plugin:str}/secrets",
    _TNS + "/p/{plugin:str}/secrets/{name:str}/delete",
    _TNS + "/p/{plugin:str}/v/{number:int}/release",
    _TNS + "/p/{plugin:str}/logs",
    _TNS + "/p/{plugin:str}/diff",
    _TNS + "/p/{plugin:str}/vars",
    _TNS + "/p/{plugin:str}/upload",
    _TNS + "/p/{plugin:str}/template",
    _TNS + "/p/{plugin:str}/v/{number:int}",
    _TNS + "/p/{plugin:str}/v/{number:int}/activate",
    _TNS + "/p/{plugin:str}/v/{number:int}/preview",
):
    ROUTES[_path] = TENANT

# Required query parameters and non-JSON bodies, so that the call is well formed and only the
# tenant boundary can refuse it.
QUERY: dict[str, dict[str, str]] = {
    _NS + "/experiments/{key:str}/assignment": {"visitor": "v1"},
    _TNS + "/p/{plugin:str}/diff": {"from": "1", "to": "2"},
    _TNS + "/p/{plugin:str}/template": {"name": "hello"},
}
MULTIPART = {_PL + "/versions/upload", _TNS + "/p/{plugin:str}/upload"}
_FILES = [("files", ("index.js", plugin_code("b").encode(), "text/javascript"))]

# Ids that are globally unique (uuids): B also tries them under its own tenant and namespace.
GLOBAL_IDS = {"token_id", "route_id", "user_id", "invite_id"}


def app_routes(settings: Settings) -> list[tuple[str, str]]:
    """(method, path) of every handler in the real app, HEAD/OPTIONS aside."""
    app = create_app(settings)
    found = set()
    for route in app.routes:
        for method in getattr(route, "methods", set()) - {"HEAD", "OPTIONS"}:
            found.add((method, route.path))
    return sorted(found)


def fill(path: str, values: dict[str, str]) -> str:
    return _PARAM.sub(lambda m: values[m.group(1)], path)


def test_every_route_is_classified(settings: Settings) -> None:
    paths = {path for _, path in app_routes(settings)}
    unclassified = sorted(paths - ROUTES.keys())
    assert not unclassified, f"add these routes to ROUTES in {__file__}: {unclassified}"
    stale = sorted(ROUTES.keys() - paths)
    assert not stale, f"ROUTES lists routes the app no longer has: {stale}"


def _tenant_a(http: httpx.Client, admin_token: str, unique: str) -> tuple[Tenant, dict[str, str]]:
    """Tenant A with one resource of every kind, made through the public API."""
    a = Tenant(http, admin_token, f"xa-{unique}")
    a.plugin_with_route(
        namespace="prod", plugin="p", code=plugin_code("a"), pattern=f"a-{unique}.matrix.test/*"
    )
    a.post(
        "/namespaces/prod/plugins/p/versions",
        {"modules": [{"name": "index.js", "content": plugin_code("a2")}]},
        201,
    )
    route = a.post(
        "/namespaces/prod/routes", {"pattern": f"a-{unique}.matrix.test/*", "plugin": "p"}, (201, 409)
    )
    routes = a.get("/namespaces/prod/routes")
    route_id = route["id"] if route and "id" in route else routes[0]["id"]
    a.put("/namespaces/prod/secrets/SECRET", {"value": "a-namespace-secret"})
    a.put("/namespaces/prod/plugins/p/secrets/SECRET", {"value": "a-plugin-secret"})
    a.post(
        "/namespaces/prod/experiments",
        {"key": "exp", "plugin": "p", "variants": [{"name": "a", "version": 1}, {"name": "b", "version": 2}]},
        201,
    )
    token = a.post("/tokens", {"name": "second"}, 201)
    values = {
        "tenant": a.slug,
        "namespace": "prod",
        "plugin": "p",
        "number": "1",
        "other": "2",
        "name": "SECRET",
        "route_id": str(route_id),
        "token_id": token["id"],
        "key": "exp",
        "revision": "1",
        "action": "start",
        # The portal's member/invite ids: tenant A's lookup fails before the id is read; a fresh
        # uuid stands in (B's own tenant is tried with it too).
        "user_id": str(uuid.uuid4()),
        "invite_id": str(uuid.uuid4()),
    }
    return a, values


def _a_is_intact(http: httpx.Client, a: Tenant, values: dict[str, str]) -> None:
    """Nothing B tried changed A: every resource is still there, as A left it."""
    assert a.get("")["slug"] == a.slug
    assert a.get("/namespaces/prod/plugins/p")["name"] == "p"
    assert any(r["id"] == values["route_id"] for r in a.get("/namespaces/prod/routes"))
    assert [s["name"] for s in a.get("/namespaces/prod/secrets")] == ["SECRET"]
    assert a.get("/namespaces/prod/experiments/exp")["state"] in {"draft", "created"}
    tokens = a.get("/tokens")
    items = tokens["items"] if isinstance(tokens, dict) else tokens
    assert all(t["revoked_at"] is None for t in items if t["name"] != "revoked")


def _is_404_problem(response: httpx.Response) -> bool:
    return response.status_code == 404 and response.headers.get("content-type", "").startswith(
        "application/problem+json"
    )


def test_tenant_b_gets_404_on_every_api_route_with_a_ids(
    control_plane: ControlPlane, settings: Settings, admin_token: str, unique: str
) -> None:
    with httpx.Client(base_url=control_plane.url, timeout=30) as http:
        a, values = _tenant_a(http, admin_token, unique)
        b = Tenant(http, admin_token, f"xb-{unique}")
        b.post("/namespaces", {"name": "prod"}, 201)  # same namespace name: only ids differ
        calls, leaks = 0, []
        for method, path in app_routes(settings):
            if ROUTES[path] != TENANT or not path.startswith("/v1/"):
                continue
            targets = [fill(path, values)]
            if GLOBAL_IDS & {name for name, _ in _PARAM.findall(path)}:
                targets.append(fill(path, {**values, "tenant": b.slug}))
            if method == "GET":
                # Control: A's own token reads the same ids, so B's 404s are not missing data.
                own = http.get(targets[0], headers=a.headers, params=QUERY.get(path))
                assert own.status_code == 200, f"GET {targets[0]} as A: {own.status_code} {own.text[:200]}"
            for url in targets:
                body: dict[str, Any] = {"files": _FILES} if path in MULTIPART else {"json": {}}
                answer = http.request(method, url, headers=b.headers, params=QUERY.get(path), **body)
                calls += 1
                if not _is_404_problem(answer):
                    leaks.append(f"{method} {url}: {answer.status_code} {answer.text[:200]}")
        record("cross_tenant_api", calls=calls, failures=len(leaks))
        assert calls >= 50, calls
        assert not leaks, "\n".join(leaks)
        _a_is_intact(http, a, values)


@pytest.mark.parametrize("role", ["owner", "editor", "viewer"])
def test_tenant_b_portal_sessions_get_404_on_a_pages(
    control_plane: ControlPlane,
    settings: Settings,
    database_url: str,
    admin_token: str,
    unique: str,
    role: str,
) -> None:
    with httpx.Client(base_url=control_plane.url, timeout=30) as http:
        a, values = _tenant_a(http, admin_token, f"{unique}{role[0]}")
        b_slug = f"xpb-{unique}{role[0]}"
        owner = signed_in(control_plane.url, database_url, b_slug, f"o-{unique}@example.com")
        session: Portal = owner
        if role != "owner":
            session = Portal(control_plane.url)
            answer = session.accept(cli_invite(database_url, b_slug, f"{role}-{unique}@example.com", role))
            assert answer.status_code == 303, answer.text
        calls, leaks = 0, []
        for method, path in app_routes(settings):
            if ROUTES[path] != TENANT or not path.startswith("/t/"):
                continue
            url = fill(path, values)
            query = QUERY.get(path)
            if method == "GET":
                answer = session.http.get(url, params=query)
            else:
                answer = session.post(url, params=query, files=_FILES if path in MULTIPART else None)
            calls += 1
            if answer.status_code != 404:
                leaks.append(f"{method} {url}: {answer.status_code} {answer.text[:200]}")
        record(f"cross_tenant_portal_{role}", calls=calls, failures=len(leaks))
        assert calls >= 25, calls
        assert not leaks, "\n".join(leaks)
        _a_is_intact(http, a, values)


def test_every_api_route_refuses_missing_and_tampered_tokens(
    control_plane: ControlPlane, settings: Settings, admin_token: str, unique: str
) -> None:
    with httpx.Client(base_url=control_plane.url, timeout=30) as http:
        a, values = _tenant_a(http, admin_token, unique)
        tampered = a.token[:-2] + ("AA" if not a.token.endswith("AA") else "BB")
        revoked = a.post("/tokens", {"name": "revoked"}, 201)
        http.delete(a.url(f"/tokens/{revoked['id']}"), headers=a.headers)
        calls, leaks = 0, []
        for method, path in app_routes(settings):
            if ROUTES[path] != TENANT or not path.startswith("/v1/"):
                continue
            for token in (None, tampered, revoked["token"]):
                headers = {} if token is None else {"authorization": f"Bearer {token}"}
                body: dict[str, Any] = {"files": _FILES} if path in MULTIPART else {"json": {}}
                answer = http.request(
                    method, fill(path, values), headers=headers, params=QUERY.get(path), **body
                )
                calls += 1
                if answer.status_code != 401:
                    leaks.append(f"{method} {path} token={token is not None}: {answer.status_code}")
        record("auth_required_api", calls=calls, failures=len(leaks))
        assert not leaks, "\n".join(leaks)
        _a_is_intact(http, a, values)
