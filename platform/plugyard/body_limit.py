"""Refuse oversized request bodies before any work, on every endpoint.

Litestar's `request_max_body_size` only applies when a handler reads its body; an action
endpoint without a body would still run. This middleware answers 413 from the declared
Content-Length before routing, so no handler, dependency or query runs
(tests/security/test_limits.py). Chunked bodies are still capped by Litestar when read.
"""

from __future__ import annotations

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from plugyard.errors import PROBLEM_BASE


def body_limit(app: ASGIApp, max_bytes: int) -> ASGIApp:
    """Wrap an ASGI app: a request declaring more than `max_bytes` gets a 413 problem.

    Args:
        app: the wrapped application.
        max_bytes: the largest body accepted.

    Returns:
        The wrapping ASGI app.
    """
    problem = msgspec.json.encode(
        {
            "status": 413,
            "type": PROBLEM_BASE + "payload-too-large",
            "title": "Payload too large",
            "detail": f"the request body is larger than {max_bytes} bytes",
            "limit": max_bytes,
        }
    )

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > max_bytes:
                start: HTTPResponseStartEvent = {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/problem+json"),
                        (b"content-length", str(len(problem)).encode()),
                        (b"connection", b"close"),
                    ],
                }
                await send(start)
                body: HTTPResponseBodyEvent = {
                    "type": "http.response.body",
                    "body": problem,
                    "more_body": False,
                }
                await send(body)
                return
        await app(scope, receive, send)

    return middleware
