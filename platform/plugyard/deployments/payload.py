"""What a push carries besides the snapshot, in the gateway's format.

Bundles and limits as the loader takes them, a plugin's effective env, and its secrets opened
for the push. Shared with plugin previews and bundle validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from plugyard.vault.repository import VaultRepository
from plugyard.vault.schemas import SecretRow
from plugyard.vault.sealing import Sealer, SealingError, associated_data


def gateway_bundle(
    main_module: str,
    modules: Sequence[dict[str, str]],
    compatibility_date: str,
    compatibility_flags: list[str],
) -> dict[str, Any]:
    """A stored bundle in the gateway's format (docs/gateway-protocol.md, "bundles")."""
    converted: dict[str, dict[str, Any]] = {}
    for module in modules:
        kind, content = module["type"], module["content"]
        converted[module["name"]] = {kind: msgspec.json.decode(content) if kind == "json" else content}
    return {
        "mainModule": main_module,
        "modules": converted,
        "compatibilityDate": compatibility_date,
        "compatibilityFlags": compatibility_flags,
    }


def gateway_limits(limits: dict[str, int] | None) -> dict[str, int] | None:
    """Version limits (`cpu_ms`, `subrequests`) as the loader's `limits` (`cpuMs`, `subRequests`)."""
    if not limits:
        return None
    names = {"cpu_ms": "cpuMs", "subrequests": "subRequests"}
    return {names[k]: v for k, v in limits.items() if k in names}


def effective_env(
    namespace_vars: dict[str, str],
    plugin_id: UUID,
    plugin_vars: dict[str, str],
    secret_rows: Sequence[SecretRow],
) -> tuple[dict[str, str], dict[str, str]]:
    """A plugin's env: namespace vars < plugin vars; namespace secrets < plugin secrets.

    Returns:
        The plain variables and the secret references (name → secret row id).
    """
    refs = {s.name: str(s.id) for s in secret_rows if s.plugin_id is None}
    refs.update({s.name: str(s.id) for s in secret_rows if s.plugin_id == plugin_id})
    return {**namespace_vars, **plugin_vars}, refs


async def open_secrets(
    conn: asyncpg.Connection, sealer: Sealer | None, tenant_id: UUID, refs: Sequence[str]
) -> dict[str, str]:
    """Decrypt secret rows by id for a push or a preview.

    Returns:
        Row id (as text) → plaintext. Never log the result.

    Raises:
        SealingError: no key is configured, or a value does not open with it.
    """
    if not refs:
        return {}
    if sealer is None:
        raise SealingError("PLUGYARD_SECRETS_KEY is not set")
    rows = await VaultRepository(conn).sealed(tenant_id, [UUID(r) for r in set(refs)])
    opened = {
        str(row.id): sealer.open(
            row.ciphertext,
            associated_data(row.tenant_id, row.plugin_id or row.namespace_id, row.name),
            key_id=row.key_id,
        )
        for row in rows
    }
    if missing := set(refs) - opened.keys():
        raise SealingError(f"secret rows {sorted(missing)} are gone")
    return opened
