"""Signed HTTP client for the gateway's control API (docs/gateway-protocol.md)."""

from __future__ import annotations

from typing import Literal

import httpx
import msgspec
import structlog

from plugyard import signing

log = structlog.get_logger(__name__)

PushStatus = Literal["succeeded", "superseded", "failed"]


class PushOutcome(msgspec.Struct, frozen=True):
    """What one gateway said about one push."""

    status: PushStatus
    error: str | None = None
    held_revision: int | None = None


class GatewayHealth(msgspec.Struct, frozen=True):
    """A gateway's signed health answer."""

    status: str
    namespaces: dict[str, int] = {}
    generation: int = 0
    # Namespace key → epoch (the namespace id) of the held incarnation, for pushes that sent one.
    epochs: dict[str, str] = {}


class GatewayClient:
    """Pushes namespace states to every configured gateway."""

    def __init__(
        self, secret: str, *, timeout_s: float = 5.0, transport: httpx.AsyncBaseTransport | None = None
    ):
        """Create a client; call `aclose` when done."""
        self._secret = secret
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def aclose(self) -> None:
        """Close the underlying connection pool."""
        await self._http.aclose()

    async def _signed(
        self, method: str, url: str, path: str, body: bytes = b"", timeout_s: float | None = None
    ) -> httpx.Response:
        headers = signing.sign(self._secret, method=method, path=path, body=body)
        if body:
            headers["content-type"] = "application/json"
        timeout = httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s
        return await self._http.request(method, url + path, content=body, headers=headers, timeout=timeout)

    async def call(
        self, gateway: str, method: str, path: str, body: bytes = b"", *, timeout_s: float | None = None
    ) -> httpx.Response:
        """A signed request to any control endpoint (validate, previews); raises httpx.HTTPError."""
        return await self._signed(method, gateway, path, body, timeout_s)

    async def push(self, gateway: str, tenant: str, namespace: str, body: bytes) -> PushOutcome:
        """Send one namespace state; never raises for transport or HTTP errors.

        Args:
            gateway: the gateway's base URL.
            tenant: tenant slug.
            namespace: namespace name.
            body: the encoded state (docs/gateway-protocol.md).

        Returns:
            succeeded (applied or already held), superseded (the gateway holds a newer revision)
            or failed with the reason.
        """
        path = f"/_plugyard/namespaces/{tenant}/{namespace}"
        try:
            response = await self._signed("PUT", gateway, path, body)
        except httpx.HTTPError as exc:
            return PushOutcome(status="failed", error=f"{type(exc).__name__}: {exc}".strip(": "))
        if response.status_code == 200:
            return PushOutcome(status="succeeded")
        if response.status_code == 409:
            held = _json_member(response, "held_revision")
            return PushOutcome(status="superseded", held_revision=held if isinstance(held, int) else None)
        detail = _json_member(response, "detail") or _json_member(response, "title") or response.text[:200]
        return PushOutcome(status="failed", error=f"HTTP {response.status_code}: {detail}")

    async def health(self, gateway: str) -> GatewayHealth:
        """Ask one gateway which revisions it holds (signed, so it answers in full).

        Raises:
            httpx.HTTPError: when the gateway cannot be reached or answers an error.
        """
        response = await self._signed("GET", gateway, "/_plugyard/health")
        response.raise_for_status()
        return msgspec.json.decode(response.content, type=GatewayHealth)


def _json_member(response: httpx.Response, key: str) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(key) if isinstance(body, dict) else None
