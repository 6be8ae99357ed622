"""Preview URLs: any stored version, reachable before activation on its own host.

Issuing a preview pushes a registration to every gateway (signed `PUT /_plugyard/previews/{id}`):
the version's bundle, the plugin's current env (vars and opened secrets) and the version's
limits. The host `{id}.{preview domain}` carries 128 random bits, so a preview URL is a
capability: whoever holds it can reach that version until it expires. Previews run in their own
isolates (loader id `preview:...`) and never touch routes, experiments or live metrics.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import msgspec
import structlog

from plugyard.deployments.payload import effective_env, gateway_bundle, gateway_limits, open_secrets
from plugyard.deployments.service import Publisher, env_hash
from plugyard.errors import Unavailable
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.plugins.schemas import PluginRow, Preview, VersionCode
from plugyard.tenants.schemas import TenantRow
from plugyard.vault.repository import VaultRepository
from plugyard.vault.sealing import SealingError

log = structlog.get_logger(__name__)
_ENCODER = msgspec.json.Encoder(order="deterministic")


async def issue(
    conn: asyncpg.Connection,
    publisher: Publisher,
    tenant: TenantRow,
    namespace: NamespaceRow,
    plugin: PluginRow,
    number: int,
    code: VersionCode,
) -> Preview:
    """Register a preview of one version on every gateway and return its URL.

    Raises:
        Unavailable: no gateway is configured, one did not accept it, or secrets cannot be opened.
    """
    if not publisher.gateways:
        raise Unavailable("no gateway is configured to serve previews", slug="preview-unavailable")
    secret_rows = await VaultRepository(conn).namespace_current(tenant.id, namespace.id)
    vars_, refs = effective_env(namespace.vars, plugin.id, plugin.vars, secret_rows)
    try:
        opened = await open_secrets(conn, publisher.sealer, tenant.id, list(refs.values()))
    except SealingError as exc:
        raise Unavailable(f"secrets cannot be opened: {exc}", slug="preview-unavailable") from None
    preview_id = secrets.token_hex(16)
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=publisher.preview_ttl_s)
    body = _ENCODER.encode(
        {
            "tenant": tenant.slug,
            "namespace": namespace.name,
            "plugin": plugin.name,
            "version": code.hash,
            "env_hash": env_hash(vars_, refs, code.limits),
            "vars": vars_,
            "secrets": {name: opened[ref] for name, ref in refs.items()},
            "limits": gateway_limits(code.limits),
            "bundle": gateway_bundle(
                code.main_module, code.modules, code.compatibility_date, code.compatibility_flags
            ),
            "expires_at": int(expires_at.timestamp()),
        }
    )
    failures = []
    for gateway in publisher.gateways:
        try:
            response = await publisher.client.call(gateway, "PUT", f"/_plugyard/previews/{preview_id}", body)
        except httpx.HTTPError as exc:
            failures.append(f"{gateway}: {type(exc).__name__}")
            continue
        if response.status_code != 200:
            failures.append(f"{gateway}: HTTP {response.status_code}")
    if failures:
        raise Unavailable(
            "the preview could not be registered: " + "; ".join(failures), slug="preview-unavailable"
        )
    host = f"{preview_id}.{publisher.preview_domain}"
    log.info("preview_issued", tenant=tenant.slug, plugin=plugin.name, version=number, expires_at=expires_at)
    return Preview(
        version=number,
        hash=code.hash,
        host=host,
        url=publisher.preview_url.format(host=host),
        expires_at=expires_at,
        gateways=len(publisher.gateways),
    )
