"""Namespace egress policies, end to end: API → deployment → gateway Outbound → loopback servers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from plugyard.gateway.process import GatewayProcess
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant, via_gateway

pytestmark = pytest.mark.e2e
PROBLEM = "https://plugyard.dev/problems/"

# Fetches `?url=` (with `?method=`) or opens a TCP socket to `?tcp=`; 599 + the message if blocked.
PROBE = """\
import { connect } from "cloudflare:sockets";
export default {
  async fetch(request) {
    const q = new URL(request.url).searchParams;
    try {
      if (q.get("tcp")) {
        const socket = connect(q.get("tcp"));
        await socket.opened;
        return new Response("connected");
      }
      const res = await fetch(q.get("url"), { method: q.get("method") || "GET" });
      return new Response("fetched " + await res.text());
    } catch (error) {
      return new Response("blocked " + error.message, { status: 599 });
    }
  },
};
"""


class Target:
    """A loopback HTTP server that counts the requests it receives."""

    def __init__(self, name: str) -> None:
        target = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                target.hits += 1
                body = f"{name} {self.command}".encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def targets() -> Iterator[tuple[Target, Target]]:
    allowed, forbidden = Target("allowed"), Target("forbidden")
    yield allowed, forbidden
    allowed.close()
    forbidden.close()


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def _probe(gateway: GatewayProcess, host: str, **query: str) -> httpx.Response:
    return via_gateway(gateway.url, host, "/", params=query)


def test_deny_all_is_the_default_for_fetch_and_connect(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str, targets: tuple[Target, Target]
) -> None:
    allowed, _ = targets
    t = Tenant(http, admin_token, f"egress-deny-{unique}")
    host = f"deny.{unique}.test"
    t.plugin_with_route(namespace="prod", plugin="probe", code=PROBE, pattern=f"{host}/*")
    assert t.get("/namespaces/prod")["egress"] == {"allow": [], "methods": None}

    res = _probe(gateway, host, url=f"http://{allowed.address}/")
    assert res.status_code == 599, res.text
    assert f'host "{allowed.address}" is not allowed (deny all)' in res.text
    assert f"namespace egress-deny-{unique}/prod" in res.text
    assert _probe(gateway, host, tcp=allowed.address).status_code == 599
    assert allowed.hits == 0


def test_an_allowlist_reaches_only_the_listed_hosts_and_methods(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str, targets: tuple[Target, Target]
) -> None:
    allowed, forbidden = targets
    t = Tenant(http, admin_token, f"egress-allow-{unique}")
    host = f"allow.{unique}.test"
    t.plugin_with_route(namespace="prod", plugin="probe", code=PROBE, pattern=f"{host}/*")
    changed = t.put("/namespaces/prod/egress", {"allow": [allowed.address], "methods": ["GET"]})
    assert changed["namespace"]["egress"] == {"allow": [allowed.address], "methods": ["GET"]}
    assert changed["deployment"]["state"]["egress"] == {"allow": [allowed.address], "methods": ["GET"]}
    assert [p["status"] for p in changed["deployment"]["pushes"]] == ["succeeded"]

    ok = _probe(gateway, host, url=f"http://{allowed.address}/x")
    assert (ok.status_code, ok.text) == (200, "fetched allowed GET")
    denied = _probe(gateway, host, url=f"http://{forbidden.address}/x")
    assert denied.status_code == 599
    assert f"(allowlist {allowed.address})" in denied.text
    post = _probe(gateway, host, url=f"http://{allowed.address}/x", method="POST")
    assert post.status_code == 599
    assert "method POST" in post.text
    assert _probe(gateway, host, tcp=allowed.address).status_code == 599
    assert (allowed.hits, forbidden.hits) == (1, 0)

    # Back to deny-all: the loaded isolate follows the new policy at once.
    t.put("/namespaces/prod/egress", {"allow": []})
    assert _probe(gateway, host, url=f"http://{allowed.address}/x").status_code == 599
    assert allowed.hits == 1


def test_bad_policies_are_problems_naming_the_field_and_change_nothing(
    http: httpx.Client, admin_token: str, unique: str
) -> None:
    t = Tenant(http, admin_token, f"egress-bad-{unique}")
    t.post("/namespaces", {"name": "prod"}, 201)
    for body, field in (
        ({"allow": ["https://api.example.com"]}, "allow"),
        ({"allow": ["*"]}, "allow"),
        ({"allow": ["ok.test"], "methods": ["BREW"]}, "methods"),
        ({"allow": [], "ports": [80]}, "ports"),
    ):
        res = http.put(t.url("/namespaces/prod/egress"), json=body, headers=t.headers)
        assert res.status_code == 422, res.text
        assert res.headers["content-type"] == "application/problem+json"
        assert res.json()["errors"][0]["field"].startswith(field)
    assert t.get("/namespaces/prod")["egress"] == {"allow": [], "methods": None}
    # Created with a policy.
    created = t.post("/namespaces", {"name": "api", "egress": {"allow": ["*.example.com"]}}, 201)
    assert created["egress"] == {"allow": ["*.example.com"], "methods": None}


def test_another_tenant_cannot_read_or_set_the_policy(
    http: httpx.Client, admin_token: str, unique: str
) -> None:
    a = Tenant(http, admin_token, f"egress-a-{unique}")
    b = Tenant(http, admin_token, f"egress-b-{unique}")
    a.post("/namespaces", {"name": "prod"}, 201)
    res = http.put(a.url("/namespaces/prod/egress"), json={"allow": ["x.test"]}, headers=b.headers)
    assert res.status_code == 404, res.text
    assert a.get("/namespaces/prod")["egress"]["allow"] == []
