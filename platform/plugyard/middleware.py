"""Per-request logging: a request id bound to every log line, one canonical line per request."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("plugyard.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_TENANT = re.compile(r"^/v1/tenants/([^/]+)")


def request_logging(app: ASGIApp) -> ASGIApp:
    """Wrap an ASGI app: bind request_id/tenant/method/path, echo X-Request-Id, log one line."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        path: str = scope["path"]
        tenant = _TENANT.match(path)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
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
            structlog.contextvars.clear_contextvars()

    return middleware
