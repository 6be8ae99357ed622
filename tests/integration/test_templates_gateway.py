"""Every template, rendered with its manifest's example parameters, behaves as documented in workerd.

Each template is created through the real control plane (`versions/from-template`), routed, and
exercised through the real gateway. A template folder without a check here fails the suite.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from plugyard.gateway.process import GatewayProcess
from plugyard.templates.catalog import TEMPLATES_DIR, load_catalog
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant, via_gateway

pytestmark = pytest.mark.e2e

CATALOG = load_catalog()
FOLDERS = sorted(p.name for p in TEMPLATES_DIR.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def serve_template(
    tenant: Tenant, template: str, parameters: dict[str, Any], host: str, plugin: str = "site"
) -> dict[str, Any]:
    """Create a plugin from a template (activated) and route `host` to it; returns the publish answer."""
    tenant.post("/namespaces", {"name": "web"}, (201, 409))
    tenant.post("/namespaces/web/plugins", {"name": plugin}, 201)
    published: dict[str, Any] = tenant.post(
        f"/namespaces/web/plugins/{plugin}/versions/from-template",
        {"template": template, "parameters": parameters, "activate": True},
        201,
    )
    assert published["deployment"]["pushes"][0]["status"] == "succeeded"
    tenant.post("/namespaces/web/routes", {"pattern": f"{host}/*", "plugin": plugin}, 201)
    return published


def check_redirects(gw: str, host: str) -> None:
    moved = via_gateway(gw, host, "/old-pricing", params={"ref": "mail"})
    assert moved.status_code == 308
    assert moved.headers["location"] == f"http://{host}/pricing?ref=mail"
    blog = via_gateway(gw, host, "/blog/2024/spring", params={"page": "2"})
    assert blog.status_code == 308
    assert blog.headers["location"] == "https://blog.example.com/2024/spring?page=2"
    missing = via_gateway(gw, host, "/elsewhere")
    assert missing.status_code == 404
    assert missing.text == "No redirect rule matches this path.\n"


def check_security_headers(gw: str, host: str) -> None:
    example = CATALOG.get("security-headers").manifest.example
    page = via_gateway(gw, host, "/any/path")
    assert page.status_code == 200
    assert page.text == example["body"]
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    assert page.headers["content-security-policy"] == example["content_security_policy"]
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    assert page.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert page.headers["permissions-policy"] == "camera=(), microphone=(), geolocation=()"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-served-by"] == "plugyard"
    assert page.headers["x-robots-tag"] == "noindex"
    posted = httpx.post(gw + "/", headers={"host": host}, timeout=10)
    assert posted.status_code == 405
    assert posted.headers["allow"] == "GET, HEAD"


def check_html_banner(gw: str, host: str) -> None:
    template = CATALOG.get("html-banner")
    page_html = template.manifest.parameters["page_html"].default
    banner = (
        '<div id="plugyard-banner" role="region" aria-label="Announcement" style="background: #b91c1c; '
        'color: #ffffff; padding: 0.75rem 1rem; text-align: center; font: 16px/1.4 system-ui, sans-serif">'
        'Spring sale: 20% off everything until Sunday <a href="https://shop.example.com/sale" '
        'style="color: inherit">Shop the sale</a></div>'
    )
    page = via_gateway(gw, host, "/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "private, no-store"
    assert page.text == page_html.replace("<body>", "<body>" + banner, 1)


def check_maintenance(gw: str, host: str) -> None:
    html = via_gateway(gw, host, "/checkout", headers={"accept": "text/html,application/xhtml+xml"})
    assert html.status_code == 503
    assert html.headers["retry-after"] == "1800"
    assert html.headers["cache-control"] == "no-store"
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert (
        "<h1>Scheduled maintenance</h1>\n<p>The shop is being upgraded and will be back at 14:00 UTC.</p>"
        in (html.text)
    )
    problem = via_gateway(gw, host, "/api/cart", headers={"accept": "application/json"})
    assert problem.status_code == 503
    assert problem.headers["content-type"] == "application/problem+json"
    assert problem.json() == {
        "type": "https://plugyard.dev/problems/maintenance",
        "title": "Scheduled maintenance",
        "status": 503,
        "detail": "The shop is being upgraded and will be back at 14:00 UTC.",
    }
    plain = via_gateway(gw, host, "/", headers={"accept": "*/*"})
    assert plain.status_code == 503
    assert (
        plain.content
        == b"Scheduled maintenance\n\nThe shop is being upgraded and will be back at 14:00 UTC.\n"
    )


def check_access_gate(gw: str, host: str) -> None:
    def status(ip: str | None, team: str | None) -> int:
        headers = {}
        if ip is not None:
            headers["cf-connecting-ip"] = ip
        if team is not None:
            headers["x-team"] = team
        return via_gateway(gw, host, "/", headers=headers).status_code

    allowed = via_gateway(gw, host, "/", headers={"cf-connecting-ip": "10.1.2.3", "x-team": "blue"})
    assert allowed.status_code == 200
    assert allowed.text == "Welcome to the preview.\n"
    assert allowed.headers["cache-control"] == "private, no-store"
    denied = via_gateway(gw, host, "/", headers={"cf-connecting-ip": "10.66.1.1", "x-team": "blue"})
    assert denied.status_code == 403
    assert denied.text == "This preview is for the blue and green teams only.\n"
    assert status("2001:db8::7", "green") == 200
    assert status("2001:0db8:0:0:0:0:0:1", "blue") == 200
    assert status("::ffff:10.1.2.3", "blue") == 200  # IPv4-mapped counts as IPv4
    assert status("192.0.2.1", "blue") == 403  # outside allow_cidrs
    assert status("2001:db9::1", "blue") == 403
    assert status("10.1.2.3", None) == 403  # header rule
    assert status("10.1.2.3", "red") == 403
    assert status(None, "blue") == 403  # no address while allow_cidrs is set
    assert status("not-an-ip", "blue") == 403


def check_json_api_proxy(gw: str, host: str) -> None:
    cors = "https://shop.example.com"
    # No egress yet: the only host it may contact is unreachable, so the documented 502 answers.
    tried = via_gateway(gw, host, "/api/products", params={"page": "2"})
    assert tried.status_code == 502
    assert tried.headers["content-type"] == "application/problem+json"
    assert tried.headers["cache-control"] == "no-store"
    assert tried.headers["access-control-allow-origin"] == cors
    body = tried.json()
    assert body["type"] == "https://plugyard.dev/problems/upstream-unreachable"
    assert body["upstream"] == "https://api.example.com/v2/products?page=2"
    assert via_gateway(gw, host, "/api").json()["upstream"] == "https://api.example.com/v2"
    posted = httpx.post(gw + "/api/products", headers={"host": host}, content=b"{}", timeout=10)
    assert posted.status_code == 405
    assert posted.headers["allow"] == "GET, HEAD"
    assert posted.headers["cache-control"] == "no-store"
    for path in ("/apix", "/api@evil.test/x", "/other"):
        outside = via_gateway(gw, host, path)
        assert outside.status_code == 404, path
        assert outside.json()["type"] == "https://plugyard.dev/problems/not-proxied"


CHECKS: dict[str, Callable[[str, str], None]] = {
    "redirects": check_redirects,
    "security-headers": check_security_headers,
    "html-banner": check_html_banner,
    "maintenance": check_maintenance,
    "access-gate": check_access_gate,
    "json-api-proxy": check_json_api_proxy,
}


def test_every_template_folder_has_a_behaviour_check() -> None:
    assert len(FOLDERS) >= 6
    assert sorted(CHECKS) == FOLDERS


@pytest.mark.parametrize("name", FOLDERS)
def test_template_example_behaves_as_documented_through_the_gateway(
    name: str, http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    tenant = Tenant(http, admin_token, f"tpl-{unique}")
    host = f"{name}.{tenant.slug}.test"
    example = CATALOG.get(name).manifest.example
    published = serve_template(tenant, name, example, host)
    assert published["version"]["provenance"]["template"] == name
    CHECKS[name](gateway.url, host)


# Every character that could end a JavaScript string or an HTML script element, as data.
HOSTILE = "\"'`${globalThis.pwned = 1}</script>\n<script>alert(1)</script> \\u0041 \u2028 done"


def test_a_hostile_parameter_value_is_served_as_data(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    tenant = Tenant(http, admin_token, f"inject-{unique}")
    host = f"notice.{tenant.slug}.test"
    published = serve_template(
        tenant, "maintenance", {"title": "Notice", "message": HOSTILE, "retry_after_seconds": 0}, host
    )
    assert published["version"]["provenance"]["parameters"]["message"] == HOSTILE

    plain = via_gateway(gateway.url, host, "/", headers={"accept": "*/*"})
    assert plain.status_code == 503
    assert plain.content == ("Notice\n\n" + HOSTILE + "\n").encode()
    assert "retry-after" not in plain.headers

    html = via_gateway(gateway.url, host, "/", headers={"accept": "text/html"})
    escaped = (
        "&quot;&#39;`${globalThis.pwned = 1}&lt;/script&gt;\n&lt;script&gt;alert(1)&lt;/script&gt; "
        "\\u0041 \u2028 done"
    )
    assert f"<p>{escaped}</p>" in html.text

    problem = via_gateway(gateway.url, host, "/", headers={"accept": "application/json"})
    assert json.loads(problem.content)["detail"] == HOSTILE
