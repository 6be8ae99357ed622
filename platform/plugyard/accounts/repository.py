"""SQL for portal users, memberships, invites, sessions and login failures."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from plugyard.accounts.schemas import InviteRow, Membership, SessionRow, UserRow
from plugyard.errors import Conflict

_USER_COLUMNS = "id, email, created_at, password_hash IS NOT NULL AS has_password"
_INSERT_USER = f"INSERT INTO portal_users (email) VALUES ($1) RETURNING {_USER_COLUMNS}"
_GET_USER = f"SELECT {_USER_COLUMNS} FROM portal_users WHERE email = $1"
_PASSWORD_HASH = "SELECT id, password_hash FROM portal_users WHERE email = $1"  # noqa: S105 - SQL
_SET_PASSWORD = "UPDATE portal_users SET password_hash = $2 WHERE id = $1"  # noqa: S105 - SQL

_MEMBERSHIP_COLUMNS = (
    "m.tenant_id, t.slug AS tenant_slug, t.name AS tenant_name, m.user_id, u.email, m.role, m.created_at"
)
_MEMBERSHIP_FROM = (
    "FROM portal_memberships m JOIN tenants t ON t.id = m.tenant_id JOIN portal_users u ON u.id = m.user_id"
)
_USER_MEMBERSHIPS = f"SELECT {_MEMBERSHIP_COLUMNS} {_MEMBERSHIP_FROM} WHERE m.user_id = $1 ORDER BY t.slug"
_TENANT_MEMBERS = f"SELECT {_MEMBERSHIP_COLUMNS} {_MEMBERSHIP_FROM} WHERE m.tenant_id = $1 ORDER BY u.email"
_UPSERT_MEMBERSHIP = (
    "INSERT INTO portal_memberships (tenant_id, user_id, role) VALUES ($1, $2, $3) "
    "ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = EXCLUDED.role"
)
_SET_ROLE = "UPDATE portal_memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2"
_DELETE_MEMBERSHIP = "DELETE FROM portal_memberships WHERE tenant_id = $1 AND user_id = $2"
_COUNT_OWNERS = "SELECT count(*) FROM portal_memberships WHERE tenant_id = $1 AND role = 'owner'"
_LOCK_MEMBERS = "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 6))"

_INVITE_COLUMNS = (
    "i.id, i.tenant_id, t.slug AS tenant_slug, t.name AS tenant_name, i.email, i.role, i.invited_by, "
    "i.created_at, i.expires_at, i.used_at"
)
_INVITE_FROM = "FROM portal_invites i JOIN tenants t ON t.id = i.tenant_id"
_INSERT_INVITE = (
    "WITH i AS (INSERT INTO portal_invites (tenant_id, email, role, token_hash, invited_by, expires_at) "
    "VALUES ($1, $2, $3, $4, $5, $6) RETURNING *) "
    f"SELECT {_INVITE_COLUMNS} FROM i JOIN tenants t ON t.id = i.tenant_id"
)
_FIND_INVITE = (
    f"SELECT {_INVITE_COLUMNS} {_INVITE_FROM} WHERE i.token_hash = $1 "
    "AND i.used_at IS NULL AND i.expires_at > now()"
)
_USE_INVITE = (
    "UPDATE portal_invites SET used_at = now() WHERE id = $1 AND used_at IS NULL AND expires_at > now() "
    "RETURNING id"
)
_OPEN_INVITES = (
    f"SELECT {_INVITE_COLUMNS} {_INVITE_FROM} WHERE i.tenant_id = $1 AND i.used_at IS NULL "
    "AND i.expires_at > now() ORDER BY i.created_at DESC"
)
_REVOKE_INVITE = (
    "UPDATE portal_invites SET expires_at = now() WHERE id = $1 AND tenant_id = $2 AND used_at IS NULL "
    "RETURNING email"
)

_INSERT_SESSION = (
    "INSERT INTO portal_sessions (id_hash, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)"
)
_GET_SESSION = (
    "SELECT s.user_id, u.email, s.csrf_token, s.created_at, s.expires_at "
    "FROM portal_sessions s JOIN portal_users u ON u.id = s.user_id "
    "WHERE s.id_hash = $1 AND s.expires_at > now()"
)
_TOUCH_SESSION = (
    "UPDATE portal_sessions SET last_seen_at = now() WHERE id_hash = $1 "
    "AND last_seen_at < now() - interval '1 minute'"
)
_DELETE_SESSION = "DELETE FROM portal_sessions WHERE id_hash = $1"
_DELETE_USER_SESSIONS = "DELETE FROM portal_sessions WHERE user_id = $1"
_PRUNE_SESSIONS = "DELETE FROM portal_sessions WHERE expires_at < now()"

_INSERT_FAILURE = "INSERT INTO portal_login_failures (email, client) VALUES ($1, $2)"
_COUNT_FAILURES = (
    "SELECT (SELECT count(*) FROM portal_login_failures "
    "WHERE email = $1 AND at > now() - $3 * interval '1 second'), "
    "(SELECT count(*) FROM portal_login_failures "
    "WHERE client = $2 AND at > now() - $3 * interval '1 second')"
)
_CLEAR_FAILURES = "DELETE FROM portal_login_failures WHERE email = $1"
_PRUNE_FAILURES = "DELETE FROM portal_login_failures WHERE at < now() - $1 * interval '1 second'"


class AccountRepository:
    """Users and everything that hangs off them."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def user(self, email: str) -> UserRow | None:
        """A user by (lower-case) email."""
        row = await self._conn.fetchrow(_GET_USER, email)
        return None if row is None else UserRow(**row)

    async def insert_user(self, email: str) -> UserRow:
        """Create a user without a password (set when an invite is accepted)."""
        try:
            return UserRow(**await self._conn.fetchrow(_INSERT_USER, email))
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a user with email {email!r} exists", slug="user-exists") from None

    async def password_hash(self, email: str) -> tuple[UUID, str | None] | None:
        """A user's id and stored password hash."""
        row = await self._conn.fetchrow(_PASSWORD_HASH, email)
        return None if row is None else (row["id"], row["password_hash"])

    async def set_password(self, user_id: UUID, password_hash: str) -> None:
        """Store a new password hash."""
        await self._conn.execute(_SET_PASSWORD, user_id, password_hash)

    async def memberships(self, user_id: UUID) -> list[Membership]:
        """Every tenant a user belongs to."""
        return [Membership(**r) for r in await self._conn.fetch(_USER_MEMBERSHIPS, user_id)]

    async def members(self, tenant_id: UUID) -> list[Membership]:
        """Every member of a tenant."""
        return [Membership(**r) for r in await self._conn.fetch(_TENANT_MEMBERS, tenant_id)]

    async def lock_members(self, tenant_id: UUID) -> None:
        """Serialise membership changes of one tenant (the last-owner rule)."""
        await self._conn.execute(_LOCK_MEMBERS, str(tenant_id))

    async def upsert_membership(self, tenant_id: UUID, user_id: UUID, role: str) -> None:
        """Add a user to a tenant, or change their role."""
        await self._conn.execute(_UPSERT_MEMBERSHIP, tenant_id, user_id, role)

    async def set_role(self, tenant_id: UUID, user_id: UUID, role: str) -> bool:
        """Change a member's role; False when they are not a member."""
        return str(await self._conn.execute(_SET_ROLE, tenant_id, user_id, role)) != "UPDATE 0"

    async def delete_membership(self, tenant_id: UUID, user_id: UUID) -> bool:
        """Remove a member; False when they were not one."""
        return str(await self._conn.execute(_DELETE_MEMBERSHIP, tenant_id, user_id)) != "DELETE 0"

    async def owner_count(self, tenant_id: UUID) -> int:
        """How many owners a tenant has."""
        return int(await self._conn.fetchval(_COUNT_OWNERS, tenant_id))

    async def insert_invite(
        self, tenant_id: UUID, email: str, role: str, token_hash: bytes, invited_by: str, expires_at: datetime
    ) -> InviteRow:
        """Store an invite's digest."""
        row = await self._conn.fetchrow(
            _INSERT_INVITE, tenant_id, email, role, token_hash, invited_by, expires_at
        )
        return InviteRow(**row)

    async def find_invite(self, token_hash: bytes) -> InviteRow | None:
        """An open (unused, unexpired) invite by token digest."""
        row = await self._conn.fetchrow(_FIND_INVITE, token_hash)
        return None if row is None else InviteRow(**row)

    async def use_invite(self, invite_id: UUID) -> bool:
        """Mark an invite used; False when it was used or expired meanwhile."""
        return await self._conn.fetchval(_USE_INVITE, invite_id) is not None

    async def open_invites(self, tenant_id: UUID) -> list[InviteRow]:
        """A tenant's invites that can still be accepted."""
        return [InviteRow(**r) for r in await self._conn.fetch(_OPEN_INVITES, tenant_id)]

    async def revoke_invite(self, tenant_id: UUID, invite_id: UUID) -> str | None:
        """Expire an open invite of this tenant; its email, or None when there is none."""
        email: str | None = await self._conn.fetchval(_REVOKE_INVITE, invite_id, tenant_id)
        return email

    async def insert_session(
        self, id_hash: bytes, user_id: UUID, csrf_token: str, expires_at: datetime
    ) -> None:
        """Store a session's digest."""
        await self._conn.execute(_INSERT_SESSION, id_hash, user_id, csrf_token, expires_at)

    async def session(self, id_hash: bytes) -> SessionRow | None:
        """A live session by digest (and note that it was seen)."""
        row = await self._conn.fetchrow(_GET_SESSION, id_hash)
        if row is None:
            return None
        await self._conn.execute(_TOUCH_SESSION, id_hash)
        return SessionRow(**row)

    async def delete_session(self, id_hash: bytes) -> None:
        """End one session."""
        await self._conn.execute(_DELETE_SESSION, id_hash)

    async def delete_user_sessions(self, user_id: UUID) -> None:
        """End every session of a user (after a password change)."""
        await self._conn.execute(_DELETE_USER_SESSIONS, user_id)

    async def prune_sessions(self) -> None:
        """Drop expired sessions."""
        await self._conn.execute(_PRUNE_SESSIONS)

    async def record_failure(self, email: str, client: str) -> None:
        """Count one failed sign-in."""
        await self._conn.execute(_INSERT_FAILURE, email, client)

    async def failures(self, email: str, client: str, window_s: float) -> tuple[int, int]:
        """Failed sign-ins within the window: for this email, and from this client."""
        row = await self._conn.fetchrow(_COUNT_FAILURES, email, client, window_s)
        return int(row[0]), int(row[1])

    async def clear_failures(self, email: str) -> None:
        """Forget an email's failures after a successful sign-in."""
        await self._conn.execute(_CLEAR_FAILURES, email)

    async def prune_failures(self, window_s: float) -> None:
        """Drop failures older than the window."""
        await self._conn.execute(_PRUNE_FAILURES, window_s)
