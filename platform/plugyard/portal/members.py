"""Portal pages: members and invites (owners manage them), API tokens (owners manage them)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath

from plugyard.accounts.schemas import ROLES
from plugyard.accounts.service import AccountService
from plugyard.deps import DbConn
from plugyard.errors import DomainError
from plugyard.portal.web import Caller, Owner, PortalConfig, Viewer, redirect, render
from plugyard.settings import PortalSettings
from plugyard.tenants.service import TenantService


class MemberPages(Controller):
    """Who belongs to the tenant, and the tenant's API tokens."""

    path = "/t/{tenant:str}"
    include_in_schema = False

    async def _members(
        self,
        me: Caller,
        conn: DbConn,
        settings: PortalSettings,
        *,
        errors: dict[str, str] | None = None,
        link: str | None = None,
        status: int = 200,
        values: dict[str, str] | None = None,
    ) -> Response[str]:
        service = AccountService(conn, settings)
        return render(
            "members.html",
            status=status,
            me=me,
            nav="members",
            members=await service.members(me.tenant),
            invites=await service.open_invites(me.tenant) if me.is_owner else [],
            roles=ROLES,
            errors=errors or {},
            link=link,
            values=values or {},
        )

    @get("/members")
    async def members(self, viewer: Viewer, conn: DbConn, portal_settings: PortalConfig) -> Response[str]:
        """Members with their roles; owners also see open invites and the invite form."""
        return await self._members(viewer, conn, portal_settings)

    @post("/members/invite")
    async def invite(
        self, request: Request[Any, Any, State], owner: Owner, conn: DbConn, portal_settings: PortalConfig
    ) -> Response[str]:
        """Create an invite link (shown once: there is no mail here)."""
        form = await request.form()
        values = {"email": str(form.get("email", "")), "role": str(form.get("role", "viewer"))}
        try:
            created = await AccountService(conn, portal_settings).invite(
                owner.tenant, values["email"], values["role"], invited_by=owner.actor
            )
        except DomainError as exc:
            field = "role" if exc.extra.get("errors", [{}])[0].get("field") == "role" else "email"
            return await self._members(
                owner, conn, portal_settings, errors={field: exc.detail}, status=exc.status, values=values
            )
        return await self._members(owner, conn, portal_settings, link=created.link, status=201)

    @post("/members/{user_id:uuid}/role")
    async def set_role(
        self,
        request: Request[Any, Any, State],
        user_id: FromPath[UUID],
        owner: Owner,
        conn: DbConn,
        portal_settings: PortalConfig,
    ) -> Response[Any]:
        """Change a member's role (a tenant keeps at least one owner)."""
        role = str((await request.form()).get("role", ""))
        await AccountService(conn, portal_settings).set_role(owner.tenant, user_id, role, actor=owner.actor)
        return redirect(f"/t/{owner.tenant.slug}/members")

    @post("/members/{user_id:uuid}/remove")
    async def remove(
        self, user_id: FromPath[UUID], owner: Owner, conn: DbConn, portal_settings: PortalConfig
    ) -> Response[Any]:
        """Remove a member."""
        await AccountService(conn, portal_settings).remove(owner.tenant, user_id, actor=owner.actor)
        return redirect(f"/t/{owner.tenant.slug}/members")

    @post("/invites/{invite_id:uuid}/revoke")
    async def revoke_invite(
        self, invite_id: FromPath[UUID], owner: Owner, conn: DbConn, portal_settings: PortalConfig
    ) -> Response[Any]:
        """Make an open invite link unusable."""
        await AccountService(conn, portal_settings).revoke_invite(owner.tenant, invite_id, actor=owner.actor)
        return redirect(f"/t/{owner.tenant.slug}/members")

    async def _tokens(
        self,
        me: Caller,
        conn: DbConn,
        *,
        created: Any = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Response[str]:
        tokens = await TenantService(conn).list_tokens(me.tenant) if me.is_owner else []
        return render(
            "tokens.html",
            status=status,
            me=me,
            nav="tokens",
            tokens=tokens,
            created=created,
            errors=errors or {},
        )

    @get("/tokens")
    async def tokens(self, viewer: Viewer, conn: DbConn) -> Response[str]:
        """The tenant's API tokens (owners manage them)."""
        return await self._tokens(viewer, conn)

    @post("/tokens")
    async def create_token(
        self, request: Request[Any, Any, State], owner: Owner, conn: DbConn
    ) -> Response[str]:
        """Create an API token; its secret is shown on this page once."""
        name = str((await request.form()).get("name", "")).strip()
        if not 1 <= len(name) <= 200:
            return await self._tokens(
                owner, conn, errors={"name": "give the token a name (1-200 characters)"}, status=422
            )
        created = await TenantService(conn).create_token(owner.tenant, name, actor=owner.actor)
        return await self._tokens(owner, conn, created=created, status=201)

    @post("/tokens/{token_id:uuid}/revoke")
    async def revoke_token(self, token_id: FromPath[UUID], owner: Owner, conn: DbConn) -> Response[Any]:
        """Revoke a token: it stops working on the next request."""
        await TenantService(conn).revoke_token(owner.tenant, token_id, actor=owner.actor)
        return redirect(f"/t/{owner.tenant.slug}/tokens")
