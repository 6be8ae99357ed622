"""Per-request logging: a request id bound to every log line, one canonical line per request."""

from __future__ import annotations

import random
import re
import time
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from plugyard.log import bind_request, reset_request

log = structlog.get_logger("plugyard.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_TENANT = re.compile(r"^/v1/tenants/([^/]+)")


def _new_request_id() -> str:
    # 128 random bits as 32 hex digits, like uuid4().hex, without a getrandom() call and a UUID
    # object per request. A request id only has to be unique, not unguessable; `random` is
    # reseeded in every forked worker, so workers do not repeat each other.
    return f"{random.getrandbits(128):032x}"


def request_logging(app: ASGIApp) -> ASGIApp:
    """Wrap an ASGI app: bind request_id/tenant/method/path, echo X-Request-Id, log one line."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else _new_request_id()
        path: str = scope["path"]
        tenant = _TENANT.match(path)
        bound = bind_request(
            request_id=request_id,
            method=scope["method"],
            path=path,
            tenant=tenant.group(1) if tenant else None,
        )
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            log_fn: Any = log.warning if status >= 500 else log.info
            log_fn("request_completed", status=status, duration_ms=duration_ms)
            reset_request(bound)

    return middleware
