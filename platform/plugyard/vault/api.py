"""HTTP API: write-only secrets of a namespace and of a plugin."""

from __future__ import annotations

from litestar import Controller, delete, get, put
from litestar.params import FromPath, JSONBody

from plugyard.deployments.schemas import Deployment
from plugyard.deps import CurrentNamespace, CurrentPlugin, CurrentPrincipal, CurrentTenant, DbConn, Gateways
from plugyard.vault.schemas import Secret, SecretChanged, SecretRow, SecretSet
from plugyard.vault.service import SecretService

_NAME = "/{name:str}"


def _secret(row: SecretRow) -> Secret:
    return Secret(
        name=row.name, scope="namespace" if row.plugin_id is None else "plugin", updated_at=row.created_at
    )


class NamespaceSecretController(Controller):
    """Secrets every plugin of a namespace sees in `env` (a plugin's own secret of the same name wins)."""

    path = "/v1/tenants/{tenant:str}/namespaces/{namespace:str}/secrets"
    tags = ["secrets"]

    @get("/", summary="List a namespace's secrets (names only)")
    async def list_secrets(
        self, tenant_row: CurrentTenant, namespace_row: CurrentNamespace, conn: DbConn, publisher: Gateways
    ) -> list[Secret]:
        """Names and update times; values are write-only."""
        rows = await SecretService(conn, publisher).list(tenant_row, namespace_row, None)
        return [_secret(r) for r in rows]

    @put(_NAME, summary="Set a namespace secret")
    async def set_secret(
        self,
        name: FromPath[str],
        data: JSONBody[SecretSet],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> SecretChanged:
        """Store (encrypted) and deploy; the value is never shown again."""
        row, deployment = await SecretService(conn, publisher).set(
            tenant_row, namespace_row, None, name, data.value, actor=principal.actor
        )
        return SecretChanged(secret=_secret(row), deployment=deployment)

    @delete(_NAME, summary="Delete a namespace secret", status_code=200)
    async def delete_secret(
        self,
        name: FromPath[str],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> Deployment:
        """Remove it from every plugin's env; answers with the deployment."""
        return await SecretService(conn, publisher).delete(
            tenant_row, namespace_row, None, name, actor=principal.actor
        )


class PluginSecretController(Controller):
    """Secrets of one plugin."""

    path = "/v1/tenants/{tenant:str}/namespaces/{namespace:str}/plugins/{plugin:str}/secrets"
    tags = ["secrets"]

    @get("/", summary="List a plugin's secrets (names only)")
    async def list_secrets(
        self,
        plugin_row: CurrentPlugin,
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
    ) -> list[Secret]:
        """Names and update times; values are write-only."""
        rows = await SecretService(conn, publisher).list(tenant_row, namespace_row, plugin_row)
        return [_secret(r) for r in rows]

    @put(_NAME, summary="Set a plugin secret")
    async def set_secret(
        self,
        plugin_row: CurrentPlugin,
        name: FromPath[str],
        data: JSONBody[SecretSet],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> SecretChanged:
        """Store (encrypted) and deploy: a new isolate, no new version; never shown again."""
        secret, deployment = await SecretService(conn, publisher).set(
            tenant_row, namespace_row, plugin_row, name, data.value, actor=principal.actor
        )
        return SecretChanged(secret=_secret(secret), deployment=deployment)

    @delete(_NAME, summary="Delete a plugin secret", status_code=200)
    async def delete_secret(
        self,
        plugin_row: CurrentPlugin,
        name: FromPath[str],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> Deployment:
        """Remove it from the plugin's env; answers with the deployment."""
        return await SecretService(conn, publisher).delete(
            tenant_row, namespace_row, plugin_row, name, actor=principal.actor
        )
