"""Tenants and API tokens."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from plugyard.fields import Slug, Title
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.plugins.schemas import PluginRow


class TenantCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /v1/tenants`."""

    slug: Slug
    name: Title


class Tenant(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant as the API shows it."""

    id: UUID
    slug: str
    name: str
    created_at: datetime


class TenantRow(msgspec.Struct, frozen=True, kw_only=True):
    """A `tenants` row."""

    id: UUID
    slug: str
    name: str
    created_at: datetime


class TokenCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /v1/tenants/{tenant}/tokens`."""

    name: Title


class Token(msgspec.Struct, frozen=True, kw_only=True):
    """A token's metadata; the secret itself is never shown again after creation."""

    id: UUID
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None
    # Written at most once a minute per token (docs/api.md), so up to a minute old.
    last_used_at: datetime | None = None


class TokenCreated(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a token creation: the only time the secret is shown."""

    id: UUID
    name: str
    prefix: str
    created_at: datetime
    token: str


class TokenRow(msgspec.Struct, frozen=True, kw_only=True):
    """An `api_tokens` row (without the hash)."""

    id: UUID
    tenant_id: UUID | None
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = None


class LiveToken(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a live (unrevoked) token that authentication needs."""

    id: UUID
    tenant_id: UUID | None
    last_used_at: datetime | None


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: an admin, or a token scoped to one tenant."""

    token_id: UUID | None
    tenant_id: UUID | None
    is_admin: bool

    @property
    def actor(self) -> str:
        """A short, non-secret description of the caller for audit fields."""
        return "admin" if self.is_admin and self.token_id is None else f"token:{self.token_id}"


class Access(msgspec.Struct, frozen=True, kw_only=True):
    """What one authenticated request resolves in a single query (see `TenantService.resolve`).

    `tenant` is the tenant named by `tenant_slug` if the caller may see it (None: it does not
    exist or is someone else's, a 404 either way); `namespace` is the one named by
    `namespace_name` within that tenant, and `plugin` the one named by `plugin_name` within that
    namespace (with its active version). Slug and names are None when the path has none.
    """

    principal: Principal
    tenant_slug: str | None = None
    tenant: TenantRow | None = None
    namespace_name: str | None = None
    namespace: NamespaceRow | None = None
    plugin_name: str | None = None
    plugin: PluginRow | None = None
