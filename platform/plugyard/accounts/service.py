"""Portal accounts: invites, sign-in with throttling, server-side sessions, members and roles."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from uuid import UUID

import asyncpg
import structlog

from plugyard.accounts import passwords
from plugyard.accounts.repository import AccountRepository
from plugyard.accounts.schemas import (
    ROLES,
    Invite,
    InviteRow,
    Membership,
    NewSession,
    PortalUser,
    Role,
)
from plugyard.audit.service import AuditService
from plugyard.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unauthorized
from plugyard.settings import PortalSettings
from plugyard.tenants.schemas import TenantRow

log = structlog.get_logger(__name__)

INVITE_PATH = "/invite/"


@functools.cache
def _dummy_hash() -> str:
    """Verified against for unknown emails, so a miss costs as much time as a wrong password."""
    return passwords.hash_password("not a real password")


class TooManyAttempts(DomainError):
    """Sign-in refused for a while after repeated failures."""

    status: ClassVar[int] = 429
    slug: ClassVar[str] = "too-many-attempts"
    title: ClassVar[str] = "Too many attempts"


def digest(secret: str) -> bytes:
    """The stored form of a random secret (session id, invite token)."""
    return hashlib.sha256(secret.encode()).digest()


def normalise_email(email: str) -> str:
    """Emails are compared in lower case, without surrounding blanks.

    Raises:
        InvalidInput: not an email address (field `email`).
    """
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if not (at and local and "." in domain and 3 <= len(email) <= 254) or any(c.isspace() for c in email):
        raise InvalidInput("enter an email address such as ana@example.com", field="email")
    return email


def check_role(role: str) -> Role:
    """A role name from a form.

    Raises:
        InvalidInput: not owner, editor or viewer (field `role`).
    """
    for known in ROLES:
        if role == known:
            return known
    raise InvalidInput("the role is owner, editor or viewer", field="role")


class AccountService:
    """Everything about who may use the portal."""

    def __init__(self, conn: asyncpg.Connection, settings: PortalSettings) -> None:
        """Bind to a connection and the portal settings."""
        self._conn = conn
        self._repo = AccountRepository(conn)
        self._audit = AuditService(conn)
        self._settings = settings

    async def invite(self, tenant: TenantRow, email: str, role: str, *, invited_by: str) -> Invite:
        """Create a one-time invite link for `email` with `role` in the tenant.

        Raises:
            InvalidInput: a bad email or role.
            Conflict: the user is already a member.
        """
        email, checked_role = normalise_email(email), check_role(role)
        existing = await self._repo.user(email)
        if existing is not None and any(
            m.tenant_id == tenant.id for m in await self._repo.memberships(existing.id)
        ):
            raise Conflict(f"{email} is already a member of {tenant.slug}", slug="already-member")
        token = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(seconds=self._settings.invite_ttl_s)
        async with self._conn.transaction():
            row = await self._repo.insert_invite(
                tenant.id, email, checked_role, digest(token), invited_by, expires
            )
            await self._audit.record(
                tenant,
                actor=invited_by,
                action="invite.created",
                subject=f"invite:{email}",
                details={"role": checked_role, "expires_at": expires.isoformat()},
            )
        log.info("invite_created", tenant=tenant.slug, role=checked_role, invited_by=invited_by)
        return Invite(invite=row, token=token, link=self._settings.url.rstrip("/") + INVITE_PATH + token)

    async def open_invite(self, token: str) -> tuple[InviteRow, bool]:
        """An invite that can still be accepted, and whether its email already has a password.

        Raises:
            NotFound: unknown, used or expired.
        """
        invite = await self._repo.find_invite(digest(token))
        if invite is None:
            raise NotFound("this invite link is unknown, used or expired", slug="invite-not-found")
        user = await self._repo.user(invite.email)
        return invite, user is not None and user.has_password

    async def accept_invite(self, token: str, password: str) -> NewSession:
        """Join the tenant: set the password of a new user (or check an existing one's), then sign in.

        Raises:
            NotFound: the invite is unknown, used or expired.
            InvalidInput: a weak new password, or a wrong password for an existing account.
        """
        invite, has_password = await self.open_invite(token)
        if not has_password and (problem := passwords.check_strength(password)):
            raise InvalidInput(problem, field="password")
        new_hash = None if has_password else await asyncio.to_thread(passwords.hash_password, password)
        async with self._conn.transaction():
            user = await self._repo.user(invite.email) or await self._repo.insert_user(invite.email)
            if has_password:
                stored = await self._repo.password_hash(invite.email)
                stored_hash = None if stored is None else stored[1]
                if stored_hash is None or not await asyncio.to_thread(
                    passwords.verify_password, password, stored_hash
                ):
                    raise InvalidInput(
                        "this email has an account already: enter its password", field="password"
                    )
            elif new_hash is not None:
                await self._repo.set_password(user.id, new_hash)
            if not await self._repo.use_invite(invite.id):
                raise NotFound("this invite link is unknown, used or expired", slug="invite-not-found")
            await self._repo.lock_members(invite.tenant_id)
            await self._repo.upsert_membership(invite.tenant_id, user.id, invite.role)
            opened = await self._open_session(user.id)
        log.info("invite_accepted", role=invite.role, user_id=str(user.id))
        return opened

    async def login(self, email: str, password: str, *, client: str) -> NewSession:
        """Check a password and open a session.

        Raises:
            TooManyAttempts: too many failures for this email or from this client lately.
            Unauthorized: the email or the password is wrong (one message for both).
        """
        email = email.strip().lower()[:254]
        cfg = self._settings
        by_email, by_client = await self._repo.failures(email, client, cfg.login_window_s)
        if by_email >= cfg.login_max_failures or by_client >= cfg.login_max_failures_per_client:
            log.warning("login_throttled", client=client)
            minutes = max(1, round(cfg.login_window_s / 60))
            raise TooManyAttempts(
                f"too many failed sign-ins; wait {minutes} minute{'s' if minutes != 1 else ''} and try again"
            )
        stored = await self._repo.password_hash(email)
        user_id, stored_hash = stored if stored is not None else (None, None)
        checked = stored_hash if stored_hash is not None else await asyncio.to_thread(_dummy_hash)
        ok = await asyncio.to_thread(passwords.verify_password, password, checked)
        if user_id is None or stored_hash is None or not ok:
            await self._repo.record_failure(email, client)
            log.info("login_failed", client=client)
            raise Unauthorized("the email or the password is not right", slug="login-failed")
        if passwords.needs_rehash(stored_hash):
            await self._repo.set_password(user_id, await asyncio.to_thread(passwords.hash_password, password))
        await self._repo.clear_failures(email)
        await self._repo.prune_failures(cfg.login_window_s)
        opened = await self._open_session(user_id)
        log.info("login_succeeded", user_id=str(user_id))
        return opened

    async def _open_session(self, user_id: UUID) -> NewSession:
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(seconds=self._settings.session_ttl_s)
        await self._repo.insert_session(digest(cookie), user_id, csrf, expires)
        return NewSession(cookie=cookie, csrf_token=csrf, user_id=user_id, expires_at=expires)

    async def session(self, cookie: str | None) -> PortalUser | None:
        """The signed-in user of a session cookie, or None."""
        if not cookie or len(cookie) > 128:
            return None
        row = await self._repo.session(digest(cookie))
        if row is None:
            return None
        return PortalUser(
            user_id=row.user_id,
            email=row.email,
            csrf_token=row.csrf_token,
            memberships=await self._repo.memberships(row.user_id),
        )

    async def logout(self, cookie: str | None) -> None:
        """End the session of this cookie (and prune expired ones)."""
        if cookie:
            await self._repo.delete_session(digest(cookie))
        await self._repo.prune_sessions()

    async def members(self, tenant: TenantRow) -> list[Membership]:
        """Every member of the tenant."""
        return await self._repo.members(tenant.id)

    async def open_invites(self, tenant: TenantRow) -> list[InviteRow]:
        """Invites of the tenant that can still be accepted."""
        return await self._repo.open_invites(tenant.id)

    async def revoke_invite(self, tenant: TenantRow, invite_id: UUID, *, actor: str) -> None:
        """Expire an open invite.

        Raises:
            NotFound: no such open invite in this tenant.
        """
        async with self._conn.transaction():
            email = await self._repo.revoke_invite(tenant.id, invite_id)
            if email is None:
                raise NotFound("no such open invite", slug="invite-not-found")
            await self._audit.record(
                tenant,
                actor=actor,
                action="invite.revoked",
                subject=f"invite:{email}",
                details={"invite_id": str(invite_id)},
            )
        log.info("invite_revoked", tenant=tenant.slug, invite_id=str(invite_id), actor=actor)

    async def set_role(self, tenant: TenantRow, user_id: UUID, role: str, *, actor: str) -> None:
        """Change a member's role; a tenant always keeps at least one owner.

        Raises:
            InvalidInput: an unknown role.
            NotFound: not a member.
            Forbidden: this would leave the tenant without an owner.
        """
        checked = check_role(role)
        async with self._conn.transaction():
            await self._repo.lock_members(tenant.id)
            before = {m.user_id: m for m in await self._repo.members(tenant.id)}
            if user_id not in before:
                raise NotFound("no such member", slug="member-not-found")
            old = before[user_id].role
            if old == "owner" and checked != "owner" and await self._repo.owner_count(tenant.id) <= 1:
                raise Forbidden("a tenant needs at least one owner", slug="last-owner")
            await self._repo.set_role(tenant.id, user_id, checked)
            if old != checked:
                await self._audit.record(
                    tenant,
                    actor=actor,
                    action="member.role_changed",
                    subject=f"member:{before[user_id].email}",
                    details={"from": old, "to": checked},
                )
        log.info("member_role_set", tenant=tenant.slug, user_id=str(user_id), role=checked, actor=actor)

    async def remove(self, tenant: TenantRow, user_id: UUID, *, actor: str) -> None:
        """Remove a member; the last owner cannot be removed.

        Raises:
            NotFound: not a member.
            Forbidden: the last owner.
        """
        async with self._conn.transaction():
            await self._repo.lock_members(tenant.id)
            before = {m.user_id: m for m in await self._repo.members(tenant.id)}
            if user_id not in before:
                raise NotFound("no such member", slug="member-not-found")
            member = before[user_id]
            if member.role == "owner" and await self._repo.owner_count(tenant.id) <= 1:
                raise Forbidden("a tenant needs at least one owner", slug="last-owner")
            await self._repo.delete_membership(tenant.id, user_id)
            await self._audit.record(
                tenant,
                actor=actor,
                action="member.removed",
                subject=f"member:{member.email}",
                details={"role": member.role},
            )
        log.info("member_removed", tenant=tenant.slug, user_id=str(user_id), actor=actor)


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
