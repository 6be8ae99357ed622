"""Secrets: sealed at rest, write-only through the API, deployed like a variable change.

A secret value is only ever held in memory on its way in (sealed before it is stored) and on its
way out to a gateway push (opened by the deployment service). It is never returned or logged.
"""

from __future__ import annotations

import re

import asyncpg
import structlog

from plugyard.deployments.schemas import Deployment
from plugyard.deployments.service import DeploymentService, Publisher
from plugyard.errors import InvalidInput, NotFound, Unavailable
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.plugins.schemas import PluginRow
from plugyard.tenants.schemas import TenantRow
from plugyard.vault.repository import VaultRepository
from plugyard.vault.schemas import SecretRow
from plugyard.vault.sealing import associated_data

log = structlog.get_logger(__name__)
# The same rule as variable names (fields.VarName): the name is an `env` property.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidInput(
            "a secret name is a letter or '_' followed by up to 63 letters, digits or '_'", field="name"
        )


class SecretService:
    """Secrets of a namespace (plugin None) or of one of its plugins."""

    def __init__(self, conn: asyncpg.Connection, publisher: Publisher) -> None:
        """Bind to a connection and a publisher (which holds the sealing key)."""
        self._conn = conn
        self._repo = VaultRepository(conn)
        self._publisher = publisher
        self._deployments = DeploymentService(conn, publisher)

    async def list(
        self, tenant: TenantRow, namespace: NamespaceRow, plugin: PluginRow | None
    ) -> list[SecretRow]:
        """The names of the scope's current secrets (never their values)."""
        return await self._repo.current(tenant.id, namespace.id, None if plugin is None else plugin.id)

    async def set(
        self,
        tenant: TenantRow,
        namespace: NamespaceRow,
        plugin: PluginRow | None,
        name: str,
        value: str,
        *,
        actor: str,
    ) -> tuple[SecretRow, Deployment]:
        """Seal and store a value as the current one of `name`; deploys without a new version.

        Raises:
            Unavailable: no secrets key is configured.
        """
        _check_name(name)
        sealer = self._publisher.sealer
        if sealer is None:
            raise Unavailable(
                "secrets are disabled: the control plane has no PLUGYARD_SECRETS_KEY",
                slug="secrets-disabled",
            )
        plugin_id = None if plugin is None else plugin.id
        sealed = sealer.seal(value, associated_data(tenant.id, plugin_id or namespace.id, name))
        async with self._conn.transaction():
            await self._repo.replace(tenant.id, namespace.id, plugin_id, name)
            row = await self._repo.insert(
                tenant.id, namespace.id, plugin_id, name, key_id=sealer.key_id, ciphertext=sealed
            )
            deployment = await self._deployments.record(
                tenant, namespace, reason=f"secret {name} of {_scope(namespace, plugin)} set", actor=actor
            )
        log.info("secret_set", tenant=tenant.slug, scope=_scope(namespace, plugin), name=name)
        return row, await self._deployments.push(deployment)

    async def delete(
        self, tenant: TenantRow, namespace: NamespaceRow, plugin: PluginRow | None, name: str, *, actor: str
    ) -> Deployment:
        """Remove a secret from the plugin's env; deploys without a new version.

        Raises:
            NotFound: the scope has no secret of that name.
        """
        _check_name(name)
        async with self._conn.transaction():
            if not await self._repo.replace(
                tenant.id, namespace.id, None if plugin is None else plugin.id, name
            ):
                raise NotFound(f"secret {name!r} not found", slug="secret-not-found")
            deployment = await self._deployments.record(
                tenant, namespace, reason=f"secret {name} of {_scope(namespace, plugin)} deleted", actor=actor
            )
        log.info("secret_deleted", tenant=tenant.slug, scope=_scope(namespace, plugin), name=name)
        return await self._deployments.push(deployment)


def _scope(namespace: NamespaceRow, plugin: PluginRow | None) -> str:
    return namespace.name if plugin is None else f"{namespace.name}/{plugin.name}"


async def secrets_without_key(conn: asyncpg.Connection, publisher: Publisher) -> bool:
    """Whether secrets are stored although no key is configured (the server refuses to start)."""
    return publisher.sealer is None and await VaultRepository(conn).any_current()
