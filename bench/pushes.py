"""Direct signed pushes to a gateway (docs/gateway-protocol.md), bypassing the control plane.

Used to build gateway state quickly (cold-path versions, thousands of namespaces) and as the
floor of publish-to-live: the same push the control plane sends, without the control plane.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable
from typing import Any

import httpx

from plugyard import signing

COMPAT_DATE = "2025-11-01"
ENV_HASH = "0" * 16


def plugin_source(body: str) -> str:
    """A one-module plugin answering `body` (JSON-quoted into the source)."""
    return (
        "export default {\n  async fetch() {\n"
        f"    return new Response({json.dumps(body)}, {{ headers: {{ 'content-type': 'text/plain' }} }});\n"
        "  },\n};\n"
    )


def bundle(source: str) -> tuple[str, dict[str, Any]]:
    """A gateway bundle for one JS module and its content hash."""
    body = {
        "mainModule": "index.js",
        "modules": {"index.js": {"js": source}},
        "compatibilityDate": COMPAT_DATE,
        "compatibilityFlags": [],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(), body


def namespace_body(
    tenant: str,
    namespace: str,
    revision: int,
    routes: Iterable[tuple[str, str]],
    versions: dict[str, str],
    bundles: dict[str, dict[str, Any]],
) -> bytes:
    """Encode a push: routes as (pattern, plugin), versions as plugin → hash."""
    return json.dumps(
        {
            "tenant": tenant,
            "namespace": namespace,
            "revision": revision,
            "routes": [{"pattern": p, "plugin": name} for p, name in routes],
            "plugins": {
                name: {"version": h, "env_hash": ENV_HASH, "vars": {}, "limits": None}
                for name, h in versions.items()
            },
            "bundles": bundles,
        },
        separators=(",", ":"),
    ).encode()


def _request(secret: str, tenant: str, namespace: str, body: bytes) -> tuple[str, dict[str, str]]:
    path = f"/_plugyard/namespaces/{tenant}/{namespace}"
    headers = signing.sign(secret, method="PUT", path=path, body=body)
    headers["content-type"] = "application/json"
    return path, headers


def push(http: httpx.Client, secret: str, tenant: str, namespace: str, body: bytes) -> None:
    """One signed push; raises unless the gateway applied it.

    Raises:
        RuntimeError: the gateway did not answer 200.
    """
    path, headers = _request(secret, tenant, namespace, body)
    response = http.put(path, content=body, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"push {tenant}/{namespace} failed: {response.status_code} {response.text}")


def push_plugin(
    base_url: str, secret: str, tenant: str, namespace: str, pattern: str, plugin: str, source: str
) -> None:
    """Push a namespace holding one plugin (`source`, one module) and one route to it.

    Raises:
        RuntimeError: the gateway did not apply it.
    """
    digest, body = bundle(source)
    payload = namespace_body(tenant, namespace, 1, [(pattern, plugin)], {plugin: digest}, {digest: body})
    with httpx.Client(base_url=base_url, timeout=30) as http:
        push(http, secret, tenant, namespace, payload)


async def push_many(
    base_url: str, secret: str, items: list[tuple[str, str, bytes]], *, concurrency: int = 8
) -> None:
    """Push many namespaces with a few requests in flight (the gateway serialises them anyway).

    Raises:
        RuntimeError: a push was not applied.
    """
    queue = list(reversed(items))

    async def worker(http: httpx.AsyncClient) -> None:
        while queue:
            tenant, namespace, body = queue.pop()
            path, headers = _request(secret, tenant, namespace, body)
            response = await http.put(path, content=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"push {tenant}/{namespace}: {response.status_code} {response.text}")

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
