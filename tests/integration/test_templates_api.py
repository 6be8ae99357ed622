"""The templates API over HTTP against the real control plane and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from plugyard.templates.catalog import TEMPLATES_DIR, folder_hash
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant, check

pytestmark = pytest.mark.e2e

FROM_TEMPLATE = "/namespaces/web/plugins/site/versions/from-template"


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


@pytest.fixture
def tenant(http: httpx.Client, admin_token: str, unique: str) -> Tenant:
    t = Tenant(http, admin_token, f"tapi-{unique}")
    t.post("/namespaces", {"name": "web"}, 201)
    t.post("/namespaces/web/plugins", {"name": "site"}, 201)
    return t


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    if field is not None:
        assert [e["field"] for e in body["errors"]] == [field], body
    return body


def test_the_catalog_lists_every_template_with_its_parameter_schema(
    http: httpx.Client, tenant: Tenant
) -> None:
    listed = check(http.get("/v1/templates", headers=tenant.headers), 200)
    names = [t["name"] for t in listed]
    assert names == sorted(p.name for p in TEMPLATES_DIR.iterdir() if p.is_dir())
    redirects = next(t for t in listed if t["name"] == "redirects")
    assert redirects["hash"] == folder_hash(TEMPLATES_DIR / "redirects")
    status = redirects["parameters"]["status"]
    assert status["type"] == "integer"
    assert status["default"] == 301
    assert status["choices"] == [301, 302, 303, 307, 308]
    assert status["description"]
    assert redirects["parameters"]["rules"]["required"] is True
    assert "default" not in redirects["parameters"]["rules"]
    assert redirects["example"]["status"] == 308

    one = check(http.get("/v1/templates/maintenance", headers=tenant.headers), 200)
    assert one["parameters"]["retry_after_seconds"] == {
        "type": "integer",
        "description": "the Retry-After header in seconds; 0 leaves it out",
        "default": 3600,
        "minimum": 0,
        "maximum": 604800,
    }
    assert_problem(http.get("/v1/templates/nope", headers=tenant.headers), 404)
    assert_problem(http.get("/v1/templates"), 401)


def test_a_version_from_a_template_records_provenance_and_is_content_addressed(tenant: Tenant) -> None:
    template = tenant.http.get("/v1/templates/maintenance", headers=tenant.headers).json()
    first = tenant.post(FROM_TEMPLATE, {"template": "maintenance", "parameters": {"title": "Back soon"}}, 201)
    version = first["version"]
    assert first["created"] is True
    assert first["deployment"] is None  # not activated
    assert version["number"] == 1
    assert version["modules"] == ["index.js"]
    assert version["provenance"] == {
        "template": "maintenance",
        "template_hash": template["hash"],
        "parameters": {
            "title": "Back soon",
            "message": "We are making some improvements and will be back shortly.",
            "retry_after_seconds": 3600,
        },
    }
    assert len(template["hash"]) == 64

    # Same template and parameters: the same bundle, so the same version (200, not a new one).
    again = tenant.post(FROM_TEMPLATE, {"template": "maintenance", "parameters": {"title": "Back soon"}}, 200)
    assert again["created"] is False
    assert again["version"]["hash"] == version["hash"]

    # Defaults given explicitly render the same module: still the same version.
    explicit = {"title": "Back soon", "retry_after_seconds": 3600}
    assert (
        tenant.post(FROM_TEMPLATE, {"template": "maintenance", "parameters": explicit}, 200)["created"]
        is False
    )

    # The stored version shows its provenance; a plain upload has none.
    stored = tenant.get("/namespaces/web/plugins/site/versions/1")
    assert stored["provenance"] == version["provenance"]
    activated = tenant.post(
        FROM_TEMPLATE, {"template": "maintenance", "parameters": {"title": "Later"}, "activate": True}, 201
    )
    assert activated["version"]["number"] == 2
    assert activated["deployment"]["pushes"][0]["status"] == "succeeded"
    assert tenant.get("/namespaces/web/plugins/site")["active_version"] == 2
    upload = tenant.post(
        "/namespaces/web/plugins/site/versions",
        {
            "modules": [
                {"name": "index.js", "content": "export default { fetch() { return new Response('x') } }"}
            ]
        },
        201,
    )
    assert upload["version"]["provenance"] is None


@pytest.mark.parametrize(
    ("template", "parameters", "field"),
    [
        ("maintenance", {"colour": "red"}, "parameters.colour"),
        ("maintenance", {"retry_after_seconds": "60"}, "parameters.retry_after_seconds"),
        ("maintenance", {"retry_after_seconds": True}, "parameters.retry_after_seconds"),
        ("maintenance", {"retry_after_seconds": 604801}, "parameters.retry_after_seconds"),
        ("maintenance", {"title": ""}, "parameters.title"),
        ("maintenance", {"title": "x" * 201}, "parameters.title"),
        ("redirects", {}, "parameters.rules"),
        ("redirects", {"rules": {}}, "parameters.rules"),
        ("redirects", {"rules": {"no-slash": "/x"}}, "parameters.rules.no-slash"),
        ("redirects", {"rules": {"/a": "javascript:alert(1)"}}, "parameters.rules./a"),
        ("redirects", {"rules": {"/a": "/b"}, "status": 200}, "parameters.status"),
        ("html-banner", {"banner_text": "hi", "background": "red; x: y"}, "parameters.background"),
        ("html-banner", {"banner_text": "hi", "position": "middle"}, "parameters.position"),
        ("html-banner", {"banner_text": "hi", "link_url": "ftp://x"}, "parameters.link_url"),
        ("access-gate", {"allow_cidrs": ["10.0.0.0/8", "10.0.0.0/255.0.0.0"]}, "parameters.allow_cidrs[1]"),
        ("access-gate", {"deny_cidrs": "10.0.0.0/8"}, "parameters.deny_cidrs"),
        ("access-gate", {"required_header": "bad header"}, "parameters.required_header"),
        ("security-headers", {"custom_headers": {"x-a": "line\r\nbreak"}}, "parameters.custom_headers.x-a"),
        ("json-api-proxy", {"origin": "https://api.example.com/path"}, "parameters.origin"),
        ("json-api-proxy", {"origin": "https://user@api.example.com"}, "parameters.origin"),
        (
            "json-api-proxy",
            {"origin": "https://a.test", "allowed_methods": ["GET", "TRACE"]},
            "parameters.allowed_methods[1]",
        ),
    ],
)
def test_bad_parameters_are_422_naming_the_parameter_and_store_nothing(
    tenant: Tenant, template: str, parameters: dict[str, Any], field: str
) -> None:
    response = tenant.http.post(
        tenant.url(FROM_TEMPLATE),
        json={"template": template, "parameters": parameters, "activate": True},
        headers=tenant.headers,
    )
    body = assert_problem(response, 422, field)
    assert body["type"] == "https://plugyard.dev/problems/invalid-input"
    assert tenant.get("/namespaces/web/plugins/site/versions") == []
    assert tenant.get("/namespaces/web/deployments") == []


def test_unknown_templates_and_malformed_bodies_are_refused(tenant: Tenant) -> None:
    url = tenant.url(FROM_TEMPLATE)
    unknown = tenant.http.post(url, json={"template": "nope"}, headers=tenant.headers)
    assert (
        assert_problem(unknown, 422, "template")["type"] == "https://plugyard.dev/problems/unknown-template"
    )
    extra = tenant.http.post(url, json={"template": "maintenance", "params": {}}, headers=tenant.headers)
    assert_problem(extra, 422, "params")
    not_a_map = tenant.http.post(
        url, json={"template": "maintenance", "parameters": []}, headers=tenant.headers
    )
    assert_problem(not_a_map, 422, "parameters")
    missing_plugin = tenant.http.post(
        tenant.url("/namespaces/web/plugins/ghost/versions/from-template"),
        json={"template": "maintenance"},
        headers=tenant.headers,
    )
    assert_problem(missing_plugin, 404)
    assert tenant.get("/namespaces/web/plugins/site/versions") == []


def test_another_tenant_cannot_create_versions_in_my_plugin(
    http: httpx.Client, admin_token: str, tenant: Tenant, unique: str
) -> None:
    other = Tenant(http, admin_token, f"tother-{unique}")
    response = http.post(tenant.url(FROM_TEMPLATE), json={"template": "maintenance"}, headers=other.headers)
    assert_problem(response, 404)
    assert tenant.get("/namespaces/web/plugins/site/versions") == []
