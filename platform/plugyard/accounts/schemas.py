"""Portal accounts: users, memberships, invites and sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

Role = Literal["owner", "editor", "viewer"]
ROLES: tuple[Role, ...] = ("owner", "editor", "viewer")
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="an email address (compared in lower case)",
    ),
]


class UserRow(msgspec.Struct, frozen=True, kw_only=True):
    """A `portal_users` row (the password hash stays in the repository and the service)."""

    id: UUID
    email: str
    created_at: datetime
    has_password: bool


class Membership(msgspec.Struct, frozen=True, kw_only=True):
    """A user's role in one tenant."""

    tenant_id: UUID
    tenant_slug: str
    tenant_name: str
    user_id: UUID
    email: str
    role: Role
    created_at: datetime


class InviteRow(msgspec.Struct, frozen=True, kw_only=True):
    """A `portal_invites` row (without the token digest)."""

    id: UUID
    tenant_id: UUID
    tenant_slug: str
    tenant_name: str
    email: str
    role: Role
    invited_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


class Invite(msgspec.Struct, frozen=True, kw_only=True):
    """A new invite: the one-time token and the link are shown once."""

    invite: InviteRow
    token: str
    link: str


class SessionRow(msgspec.Struct, frozen=True, kw_only=True):
    """A live session joined with its user."""

    user_id: UUID
    email: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


class NewSession(msgspec.Struct, frozen=True, kw_only=True):
    """A session just opened: the cookie value (shown once) and its CSRF token."""

    cookie: str
    csrf_token: str
    user_id: UUID
    expires_at: datetime


class PortalUser(msgspec.Struct, frozen=True, kw_only=True):
    """Who is signed in, with every tenant they belong to."""

    user_id: UUID
    email: str
    csrf_token: str
    memberships: list[Membership]

    @property
    def actor(self) -> str:
        """The actor recorded in deployments and the audit log."""
        return f"user:{self.email}"

    def membership(self, tenant_slug: str) -> Membership | None:
        """The user's membership in a tenant, if any."""
        return next((m for m in self.memberships if m.tenant_slug == tenant_slug), None)
