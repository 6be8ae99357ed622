"""Tenants, API tokens and authentication."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import structlog

from plugyard.audit.service import AuditService
from plugyard.errors import Forbidden, NotFound, Unauthorized
from plugyard.tenants.repository import TenantRepository
from plugyard.tenants.schemas import (
    Access,
    LiveToken,
    Principal,
    TenantCreate,
    TenantRow,
    TokenCreated,
    TokenRow,
)

log = structlog.get_logger(__name__)

TOKEN_PREFIX = "pyd_"  # noqa: S105 - a public prefix, not a secret


def new_token() -> str:
    """A fresh random API token (256 bits of entropy)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    """The stored form of a token. Tokens are random, so a fast hash is enough at rest."""
    return hashlib.sha256(token.encode()).digest()


# "Last used" is shown to people, not billed: it is written at most once per this many seconds
# per token, so a token in constant use shows a time up to this old (docs/api.md).
LAST_USED_PRECISION_S = 60.0


class LastUsedClock:
    """Decides when a request writes its token's last-used time: at most once a minute per token.

    The stored time, read in the same query as the token, says whether any process wrote it
    within the interval; this process's map of token id → time of its last write stops
    concurrent requests from all writing at once. Bounded: when it holds `max_tokens` entries,
    the ones older than the interval are dropped, or all of them if that frees no room.
    """

    def __init__(self, interval_s: float = LAST_USED_PRECISION_S, *, max_tokens: int = 10_000) -> None:
        """An empty map; `interval_s` is the precision of the stored times."""
        self.interval_s = interval_s
        self._max_tokens = max_tokens
        self._written: dict[UUID, float] = {}

    def due(self, token: LiveToken, now: datetime) -> bool:
        """Whether this request should write the token's last-used time (and note that it will)."""
        stored = token.last_used_at
        if stored is not None and (now - stored).total_seconds() < self.interval_s:
            return False
        clock = time.monotonic()
        if clock - self._written.get(token.id, -math.inf) < self.interval_s:
            return False
        if len(self._written) >= self._max_tokens:
            self._written = {k: t for k, t in self._written.items() if clock - t < self.interval_s}
            if len(self._written) >= self._max_tokens:
                self._written.clear()
        self._written[token.id] = clock
        return True


class TenantService:
    """Creates tenants and tokens, and turns bearer tokens into principals."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        *,
        admin_token_digest: bytes | None = None,
        last_used: LastUsedClock | None = None,
    ) -> None:
        """Bind to a connection.

        Args:
            conn: the request's connection.
            admin_token_digest: the digest of PLUGYARD_ADMIN_TOKEN, if set.
            last_used: the process's last-used clock; without one every request writes
                (still at most one change a minute, by the UPDATE's own condition).
        """
        self._conn = conn
        self._repo = TenantRepository(conn)
        self._admin_digest = admin_token_digest
        self._last_used = last_used

    async def authenticate(self, authorization: str | None) -> Principal:
        """Resolve an `Authorization: Bearer` header.

        Raises:
            Unauthorized: no header, a malformed one, or an unknown or revoked token.
        """
        return (await self.resolve(authorization)).principal

    async def resolve(
        self,
        authorization: str | None,
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        plugin: str | None = None,
    ) -> Access:
        """Resolve the caller and, in the same query, the tenant, namespace and plugin of the path.

        The token is looked up on every request (a revoked token is refused at once); the
        tenant is only returned if the caller may see it. The last-used time is written at
        most once a minute per token (`LastUsedClock`).

        Raises:
            Unauthorized: no header, a malformed one, or an unknown or revoked token.
        """
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send Authorization: Bearer <token>", slug="missing-token")
        token_digest = digest(token)
        if self._admin_digest is not None and hmac.compare_digest(token_digest, self._admin_digest):
            admin = Principal(token_id=None, tenant_id=None, is_admin=True)
            if tenant is None:
                return Access(principal=admin)
            tenant_row, namespace_row, plugin_row = await self._repo.resolve_tenant(tenant, namespace, plugin)
            return Access(
                principal=admin,
                tenant_slug=tenant,
                tenant=tenant_row,
                namespace_name=namespace,
                namespace=namespace_row,
                plugin_name=plugin,
                plugin=plugin_row,
            )
        # The lookup is by digest through a unique index: the secret itself is never compared.
        found = await self._repo.resolve_token(token_digest, tenant, namespace, plugin)
        if found is None:
            raise Unauthorized("the token is unknown or revoked", slug="invalid-token")
        live, (tenant_row, namespace_row, plugin_row) = found
        if self._last_used is None or self._last_used.due(live, datetime.now(UTC)):
            await self._repo.touch_token(live.id)
        return Access(
            principal=Principal(token_id=live.id, tenant_id=live.tenant_id, is_admin=live.tenant_id is None),
            tenant_slug=tenant,
            tenant=tenant_row,
            namespace_name=namespace,
            namespace=namespace_row,
            plugin_name=plugin,
            plugin=plugin_row,
        )

    async def tenant_for(self, principal: Principal, slug: str) -> TenantRow:
        """The tenant named in the path, if the caller may see it.

        Raises:
            NotFound: the tenant does not exist or belongs to someone else (no existence leak).
        """
        tenant = await self._repo.get_by_slug(slug)
        if tenant is None or not (principal.is_admin or principal.tenant_id == tenant.id):
            tenant = None
        return visible_tenant(tenant, slug)

    async def create_tenant(self, principal: Principal, data: TenantCreate) -> TenantRow:
        """Create a tenant (admin only)."""
        _require_admin(principal)
        tenant = await self._repo.insert(data.slug, data.name)
        log.info("tenant_created", tenant=tenant.slug)
        return tenant

    async def list_tenants(self, principal: Principal, *, after: str, limit: int) -> list[TenantRow]:
        """A page of tenants (admin only)."""
        _require_admin(principal)
        return await self._repo.page(after=after, limit=limit)

    async def create_token(self, tenant: TenantRow, name: str, *, actor: str) -> TokenCreated:
        """Create a token scoped to one tenant and audit it; the secret is returned once."""
        token = new_token()
        async with self._conn.transaction():
            row = await self._repo.insert_token(
                tenant.id, name, token[: len(TOKEN_PREFIX) + 6], digest(token)
            )
            await AuditService(self._conn).record(
                tenant,
                actor=actor,
                action="token.created",
                subject=f"token:{row.name}",
                details={"token_id": str(row.id), "prefix": row.prefix},
            )
        log.info("token_created", tenant=tenant.slug, token_id=str(row.id))
        return TokenCreated(
            id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at, token=token
        )

    async def list_tokens(self, tenant: TenantRow) -> list[TokenRow]:
        """A tenant's tokens (metadata only)."""
        return await self._repo.list_tokens(tenant.id)

    async def revoke_token(self, tenant: TenantRow, token_id: UUID, *, actor: str) -> TokenRow:
        """Revoke a token with immediate effect, and audit it.

        Raises:
            NotFound: the token is not this tenant's.
        """
        async with self._conn.transaction():
            row = await self._repo.revoke_token(tenant.id, token_id)
            if row is None:
                raise NotFound(f"token {token_id} not found", slug="token-not-found")
            await AuditService(self._conn).record(
                tenant,
                actor=actor,
                action="token.revoked",
                subject=f"token:{row.name}",
                details={"token_id": str(row.id), "prefix": row.prefix},
            )
        log.info("token_revoked", tenant=tenant.slug, token_id=str(token_id))
        return row

    async def ensure_admin_token(self) -> str | None:
        """Create and return an admin token when none exists (first start); None otherwise."""
        if self._admin_digest is not None or await self._repo.admin_token_exists():
            return None
        token = new_token()
        await self._repo.insert_token(None, "bootstrap admin", token[: len(TOKEN_PREFIX) + 6], digest(token))
        log.info("admin_token_created")
        return token


def visible_tenant(tenant: TenantRow | None, slug: str) -> TenantRow:
    """The tenant, or the 404 a caller gets for a tenant that is missing or not theirs.

    Raises:
        NotFound: `tenant` is None (no existence leak: the same answer for both cases).
    """
    if tenant is None:
        raise NotFound(f"tenant {slug!r} not found", slug="tenant-not-found")
    return tenant


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only a platform admin may do this", slug="admin-only")


ADMIN_BOOTSTRAP_LOCK_KEY = 0x706C7567_0004


async def bootstrap_admin(conn: asyncpg.Connection) -> str | None:
    """On first start, create an admin token and return it (once); None when one exists."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ADMIN_BOOTSTRAP_LOCK_KEY)
        return await TenantService(conn).ensure_admin_token()
