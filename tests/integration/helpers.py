"""Small HTTP helpers for the integration tests: they only call the public API."""

from __future__ import annotations

from typing import Any

import httpx


def plugin_code(body: str, *, status: int = 200) -> str:
    """A one-module plugin answering a fixed text body (JSON-quoted into the source)."""
    import json

    return (
        "export default {\n"
        "  async fetch(request, env) {\n"
        f"    return new Response({json.dumps(body)}, {{ status: {status} }});\n"
        "  },\n"
        "};\n"
    )


def check(response: httpx.Response, status: int | tuple[int, ...] = (200, 201)) -> Any:
    expected = (status,) if isinstance(status, int) else status
    assert response.status_code in expected, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    return response.json() if response.content else None


class Tenant:
    """A tenant created through the API, with its own token."""

    def __init__(self, http: httpx.Client, admin_token: str, slug: str) -> None:
        self.http = http
        self.slug = slug
        admin = {"authorization": f"Bearer {admin_token}"}
        check(http.post("/v1/tenants", json={"slug": slug, "name": slug.title()}, headers=admin), 201)
        self.token = check(
            http.post(f"/v1/tenants/{slug}/tokens", json={"name": "tests"}, headers=admin), 201
        )["token"]
        self.headers = {"authorization": f"Bearer {self.token}"}

    def url(self, path: str = "") -> str:
        return f"/v1/tenants/{self.slug}{path}"

    def post(self, path: str, body: Any, status: int | tuple[int, ...] = (200, 201)) -> Any:
        return check(self.http.post(self.url(path), json=body, headers=self.headers), status)

    def put(self, path: str, body: Any, status: int | tuple[int, ...] = 200) -> Any:
        return check(self.http.put(self.url(path), json=body, headers=self.headers), status)

    def get(self, path: str, status: int | tuple[int, ...] = 200) -> Any:
        return check(self.http.get(self.url(path), headers=self.headers), status)

    def plugin_with_route(
        self,
        *,
        namespace: str,
        plugin: str,
        code: str,
        pattern: str,
        vars_: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Namespace (if new) + plugin + active version 1 + route; returns the route answer."""
        self.post("/namespaces", {"name": namespace}, (201, 409))
        self.post(f"/namespaces/{namespace}/plugins", {"name": plugin, "vars": vars_ or {}}, 201)
        self.post(
            f"/namespaces/{namespace}/plugins/{plugin}/versions",
            {"modules": [{"name": "index.js", "content": code}], "activate": True},
            201,
        )
        route: dict[str, Any] = self.post(
            f"/namespaces/{namespace}/routes", {"pattern": pattern, "plugin": plugin}, 201
        )
        return route


# One keep-alive client for all end-user requests: `httpx.get` builds a new client (and TLS
# context) per call, which made tests that send thousands of requests slow. No cookie jar, so
# requests stay independent as separate end users' would be.
_END_USER = httpx.Client(timeout=10, cookies=None)


def via_gateway(gateway_url: str, host: str, path: str = "/", **kwargs: Any) -> httpx.Response:
    """A request to the gateway as an end user would send it to `host`."""
    headers = {"host": host, **kwargs.pop("headers", {})}
    response = _END_USER.get(gateway_url + path, headers=headers, **kwargs)
    _END_USER.cookies.clear()
    return response
