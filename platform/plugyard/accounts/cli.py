"""`plugyard users ...`: portal accounts from the operator's terminal (DATABASE_URL, PLUGYARD_PORTAL_URL).

There is no mail here: each command prints the one-time invite link to hand to the person.
"""

from __future__ import annotations

import argparse
import asyncio

from plugyard import db, log, settings
from plugyard.accounts.schemas import ROLES, Invite


async def _invite(tenant_slug: str, email: str, role: str, *, create_name: str | None) -> tuple[Invite, bool]:
    from plugyard.accounts.service import AccountService
    from plugyard.errors import NotFound
    from plugyard.tenants.schemas import Principal, TenantCreate
    from plugyard.tenants.service import TenantService

    cfg = settings.from_env()
    conn = await db.connect(cfg.database.url)
    admin = Principal(token_id=None, tenant_id=None, is_admin=True)
    created = False
    try:
        tenants = TenantService(conn)
        try:
            tenant = await tenants.tenant_for(admin, tenant_slug)
        except NotFound:
            if create_name is None:
                raise ValueError(f"tenant {tenant_slug!r} does not exist (add --name to create it)") from None
            tenant = await tenants.create_tenant(admin, TenantCreate(slug=tenant_slug, name=create_name))
            created = True
        invite = await AccountService(conn, cfg.portal).invite(tenant, email, role, invited_by="cli")
        return invite, created
    finally:
        await conn.close()


def _print(invite: Invite, created: bool) -> None:
    if created:
        print(f"created tenant {invite.invite.tenant_slug}")
    print(f"invited {invite.invite.email} as {invite.invite.role} of {invite.invite.tenant_slug}")
    print(f"expires {invite.invite.expires_at:%Y-%m-%d %H:%M} UTC; open this link once to set a password:")
    print(invite.link)


def cmd_create_owner(args: argparse.Namespace) -> int:
    """Create (optionally) a tenant and invite its first owner."""
    log.configure(log_format="auto", level="warning")
    from plugyard.errors import DomainError

    try:
        invite, created = asyncio.run(_invite(args.tenant, args.email, "owner", create_name=args.name))
    except DomainError as exc:
        raise ValueError(exc.detail) from None
    _print(invite, created)
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    """Invite someone to an existing tenant with a role."""
    log.configure(log_format="auto", level="warning")
    from plugyard.errors import DomainError

    try:
        invite, _ = asyncio.run(_invite(args.tenant, args.email, args.role, create_name=None))
    except DomainError as exc:
        raise ValueError(exc.detail) from None
    _print(invite, False)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `plugyard users ...` on the main parser."""
    p = sub.add_parser(
        "users", help="portal accounts: owners and invites (DATABASE_URL, PLUGYARD_PORTAL_URL)"
    )
    users = p.add_subparsers(dest="users_command", required=True)
    p = users.add_parser("create-owner", help="invite a tenant's first owner (prints the invite link)")
    p.add_argument("tenant", help="tenant slug")
    p.add_argument("email")
    p.add_argument("--name", help="create the tenant with this display name if it does not exist")
    p.set_defaults(func=cmd_create_owner)
    p = users.add_parser("invite", help="invite someone to a tenant (prints the invite link)")
    p.add_argument("tenant", help="tenant slug")
    p.add_argument("email")
    p.add_argument("--role", choices=ROLES, default="viewer", help="owner, editor or viewer (default viewer)")
    p.set_defaults(func=cmd_invite)
