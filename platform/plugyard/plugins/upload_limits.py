"""Upload size limits applied before the body is parsed."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler

from plugyard.settings import MAX_BUNDLE_BYTES_CAP

# Static ceiling on any upload body (the configurable bundle limit is at most 10 MiB; a JSON
# body carries binary modules as base64); the guard below applies the configured limit.
MAX_UPLOAD_BODY = 2 * MAX_BUNDLE_BYTES_CAP + 1024 * 1024
_OVERHEAD = 256 * 1024


async def bundle_size_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Refuse an upload whose declared length cannot hold a bundle within the limit, before parsing.

    JSON bodies may take up to twice the bundle size (base64 of binary modules is 4/3, escaped
    text a little more); the exact bundle size is checked again after decoding. Async although
    it never awaits: Litestar runs a plain function guard in a worker thread, a thread hop per
    upload (~5 % of an upload's CPU, docs/benchmarks.md).
    """
    limit: int = connection.app.state.publisher.max_bundle_bytes
    declared = connection.headers.get("content-length", "")
    multipart = connection.headers.get("content-type", "").startswith("multipart/")
    allowed = (limit if multipart else 2 * limit) + _OVERHEAD
    if declared.isdigit() and int(declared) > allowed:
        # The body is left unread, so the connection cannot carry another request: say so,
        # or a keep-alive client would send its next request into a closed socket.
        raise HTTPException(
            status_code=413,
            detail=f"the upload is {declared} bytes; bundles may hold at most {limit} bytes",
            headers={"connection": "close"},
        )
