"""QA preview overrides: a tenant-issued, signed token that forces a variant at the gateway.

Token: `v1.{base64url(JSON payload)}.{hex HMAC-SHA256(key, payload part)}` where
key = HMAC-SHA256(PLUGYARD_GATEWAY_SECRET, "plugyard-experiment-preview"), so the push-signing
secret itself never signs anything else. The gateway (loader_worker/src/experiments.js) checks
the MAC, the expiry and that tenant, namespace, plugin and experiment match the request; the
forced request is served the variant and is not counted in results (metrics variant `preview`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import msgspec

from plugyard.errors import InvalidInput, Unavailable
from plugyard.experiments.schemas import ExperimentRow, PreviewToken, PreviewTokenCreate, VariantRow
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.tenants.schemas import TenantRow

HEADER = "x-plugyard-preview-variant"
_CONTEXT = b"plugyard-experiment-preview"


def preview_key(secret: str) -> bytes:
    """The key preview tokens are signed with, derived from the gateway secret."""
    return hmac.new(secret.encode(), _CONTEXT, hashlib.sha256).digest()


def sign(secret: str, payload: dict[str, object]) -> str:
    """Encode and sign a payload as a token."""
    part = base64.urlsafe_b64encode(msgspec.json.encode(payload)).rstrip(b"=").decode()
    mac = hmac.new(preview_key(secret), part.encode(), hashlib.sha256).hexdigest()
    return f"v1.{part}.{mac}"


def issue(
    secret: str,
    tenant: TenantRow,
    namespace: NamespaceRow,
    row: ExperimentRow,
    variants: list[VariantRow],
    data: PreviewTokenCreate,
) -> PreviewToken:
    """A token forcing `data.variant` of this experiment for `data.ttl_s` seconds.

    Raises:
        InvalidInput: no such variant.
        Unavailable: no gateway secret is configured.
    """
    if data.variant not in {v.name for v in variants}:
        raise InvalidInput(f"variant {data.variant!r} is not a variant of this experiment", field="variant")
    if not secret:
        raise Unavailable("PLUGYARD_GATEWAY_SECRET is not set", slug="gateway-secret-missing")
    expires = int(time.time()) + data.ttl_s
    payload: dict[str, object] = {
        "t": tenant.slug,
        "n": namespace.name,
        "p": row.plugin,
        "e": row.key,
        "v": data.variant,
        "x": expires,
    }
    return PreviewToken(token=sign(secret, payload), header=HEADER, variant=data.variant, expires_at=expires)
