"""The portal's web plumbing: HTML rendering, sessions from cookies, CSRF and role checks.

Every portal handler gets its caller through one of the `provide_*` dependencies, which resolve
the session cookie, check the CSRF token of every unsafe request and enforce the role on the
server; templates only hide what the server refuses anyway.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import msgspec
from litestar import Request, Response
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.response import Redirect

from plugyard.accounts.schemas import Membership, PortalUser
from plugyard.accounts.service import AccountService, csrf_matches
from plugyard.deps import DbConn
from plugyard.errors import DomainError, Forbidden
from plugyard.settings import PortalSettings
from plugyard.templates.catalog import Catalog
from plugyard.tenants.schemas import Principal, TenantRow
from plugyard.tenants.service import TenantService

SESSION_COOKIE = "plugyard_session"
PRE_SESSION_COOKIE = "plugyard_presession"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    autoescape=jinja2.select_autoescape(default=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class LoginRequired(Exception):
    """No valid session: the portal answers with a redirect to the sign-in page."""


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """A signed-in user acting in one tenant."""

    user: PortalUser
    membership: Membership
    tenant: TenantRow

    @property
    def role(self) -> str:
        """owner, editor or viewer."""
        return self.membership.role

    @property
    def can_edit(self) -> bool:
        """Editors and owners change things; viewers only look."""
        return self.role in {"owner", "editor"}

    @property
    def is_owner(self) -> bool:
        """Owners also manage members and API tokens."""
        return self.role == "owner"

    @property
    def actor(self) -> str:
        """Recorded in deployments and the audit log."""
        return self.user.actor


SignedIn = NamedDependency[PortalUser]
Viewer = NamedDependency[Caller]
Editor = NamedDependency[Caller]
Owner = NamedDependency[Caller]
PortalConfig = NamedDependency[PortalSettings]
Templates = NamedDependency[Catalog]


def render(
    template_name: str, /, status: int = 200, cookies: list[Cookie] | None = None, **context: Any
) -> Response[str]:
    """Render a template as an HTML response with the portal's security headers."""
    html = _ENV.get_template(template_name).render(**{"me": None, "flash": None, "nav": "", **context})
    return Response(
        html,
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers=SECURITY_HEADERS,
        cookies=cookies,
    )


def redirect(path: str, cookies: list[Cookie] | None = None) -> Response[Any]:
    """A 303 See Other (the answer to a successful form POST)."""
    return Redirect(path, status_code=303, headers=SECURITY_HEADERS, cookies=cookies)


def session_cookie(value: str, settings: PortalSettings, *, max_age: int | None = None) -> Cookie:
    """The session cookie: HttpOnly, SameSite=Lax, Secure when configured."""
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        max_age=settings.session_ttl_s if max_age is None else max_age,
    )


def pre_session_token(request: Request[Any, Any, Any]) -> tuple[str, Cookie | None]:
    """The CSRF token of the forms shown before sign-in (a double-submit cookie)."""
    token = request.cookies.get(PRE_SESSION_COOKIE)
    if token and 20 <= len(token) <= 64:
        return token, None
    token = secrets.token_urlsafe(24)
    return token, Cookie(key=PRE_SESSION_COOKIE, value=token, path="/", httponly=True, samesite="lax")


async def check_pre_session_csrf(request: Request[Any, Any, Any]) -> None:
    """Refuse an anonymous form POST whose token does not match its cookie.

    Raises:
        Forbidden: missing or wrong token (403).
    """
    expected = request.cookies.get(PRE_SESSION_COOKIE) or ""
    form = await request.form()
    if not expected or not csrf_matches(expected, form.get(CSRF_FIELD)):
        raise Forbidden(
            "the form expired or did not come from this site; reload the page and try again", slug="csrf"
        )


async def provide_signed_in(
    request: Request[Any, Any, State], conn: DbConn, portal_settings: PortalConfig
) -> PortalUser:
    """The signed-in user (redirect to sign-in otherwise); checks CSRF on unsafe methods."""
    user = await AccountService(conn, portal_settings).session(request.cookies.get(SESSION_COOKIE))
    if user is None:
        raise LoginRequired
    if request.method in _UNSAFE:
        given = request.headers.get(CSRF_HEADER)
        if given is None:
            given = (await request.form()).get(CSRF_FIELD)
        if not csrf_matches(user.csrf_token, given):
            raise Forbidden(
                "the form expired or did not come from this site; reload the page and try again", slug="csrf"
            )
    return user


async def provide_viewer(tenant: FromPath[str], user: SignedIn, conn: DbConn) -> Caller:
    """The caller in the tenant of the path; any member may look (404 for non-members)."""
    membership = user.membership(tenant)
    principal = Principal(
        token_id=None, tenant_id=None if membership is None else membership.tenant_id, is_admin=False
    )
    # The same check as the API: a tenant the caller does not belong to does not exist for them.
    row = await TenantService(conn).tenant_for(principal, tenant)
    assert membership is not None
    return Caller(user=user, membership=membership, tenant=row)


async def provide_editor(viewer: Viewer) -> Caller:
    """The caller, if they may change things (403 for viewers)."""
    if not viewer.can_edit:
        raise Forbidden("viewers can look at everything but change nothing", slug="role-viewer")
    return viewer


async def provide_owner(viewer: Viewer) -> Caller:
    """The caller, if they own the tenant (403 otherwise)."""
    if not viewer.is_owner:
        raise Forbidden("only an owner of this tenant can do this", slug="role-owner")
    return viewer


def _wants_fragment(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true" or request.headers.get("x-portal-fragment") == "1"


def on_login_required(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    """Send the browser to the sign-in page, back here afterwards."""
    target = request.url.path if request.method == "GET" else "/"
    return redirect("/login?next=" + quote(target, safe="/"))


def on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[str]:
    """A plain-words error page (or fragment) with the right status."""
    if _wants_fragment(request):
        return render("fragments/error.html", status=exc.status, message=exc.detail)
    return render("error.html", status=exc.status, title=exc.title, message=exc.detail, user=None)


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[str]:
    """Framework errors (bad form encoding, 405...) as a page too."""
    title = {400: "Bad request", 403: "Forbidden", 404: "Not found", 405: "Not allowed"}.get(
        exc.status_code, "Error"
    )
    return render("error.html", status=exc.status_code, title=title, message=str(exc.detail), user=None)
