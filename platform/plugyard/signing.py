"""HMAC-SHA256 request signing shared by the control plane and the gateway protocol.

See docs/gateway-protocol.md: the message is `{timestamp}.{nonce}.{METHOD}.{path}.{body}`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

TIMESTAMP_HEADER = "X-Plugyard-Timestamp"
NONCE_HEADER = "X-Plugyard-Nonce"
SIGNATURE_HEADER = "X-Plugyard-Signature"
WINDOW_S = 300


def signature(secret: str, *, timestamp: str, nonce: str, method: str, path: str, body: bytes) -> str:
    """Compute the `v1=` signature of one request."""
    message = b".".join((timestamp.encode(), nonce.encode(), method.upper().encode(), path.encode(), body))
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(
    secret: str, *, method: str, path: str, body: bytes = b"", now: float | None = None
) -> dict[str, str]:
    """Headers that sign one request.

    Args:
        secret: the shared signing secret.
        method: HTTP method.
        path: URL path without query string.
        body: the exact body bytes.
        now: Unix time to sign with (tests use it to make stale requests).

    Returns:
        The three signing headers.
    """
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    return {
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(
            secret, timestamp=timestamp, nonce=nonce, method=method, path=path, body=body
        ),
    }


def verify(
    secret: str, headers: dict[str, str], *, method: str, path: str, body: bytes, now: float | None = None
) -> str | None:
    """Check a signed request; returns None when valid, else the problem slug that explains why.

    Replay (nonce reuse) is checked by the caller, which owns the nonce store.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    nonce = lowered.get(NONCE_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not (timestamp.isdigit() and 16 <= len(nonce) <= 64 and given.startswith("v1=")):
        return "unsigned"
    expected = signature(secret, timestamp=timestamp, nonce=nonce, method=method, path=path, body=body)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return "bad-signature"
    if abs((time.time() if now is None else now) - int(timestamp)) > WINDOW_S:
        return "stale-request"
    return None
