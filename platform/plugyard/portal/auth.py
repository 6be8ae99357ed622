"""Portal pages: sign in, sign out, accept an invite, pick a tenant."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter

from plugyard.accounts.service import AccountService, TooManyAttempts, csrf_matches
from plugyard.deps import DbConn
from plugyard.errors import Forbidden, InvalidInput, Unauthorized
from plugyard.portal.web import (
    CSRF_FIELD,
    SESSION_COOKIE,
    PortalConfig,
    check_pre_session_csrf,
    pre_session_token,
    redirect,
    render,
    session_cookie,
)


def _safe_next(target: str | None) -> str:
    """Only local paths: never redirect to another site after sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _client(request: Request[Any, Any, State]) -> str:
    return request.client.host if request.client else "unknown"


class AuthPages(Controller):
    """Sign-in, sign-out and invites (the only pages without a session)."""

    include_in_schema = False

    @get("/")
    async def home(
        self, request: Request[Any, Any, State], conn: DbConn, portal_settings: PortalConfig
    ) -> Response[Any]:
        """The first tenant's dashboard when signed in, else the sign-in page."""
        user = await AccountService(conn, portal_settings).session(request.cookies.get(SESSION_COOKIE))
        if user is None:
            return redirect("/login")
        if not user.memberships:
            return render("no_tenant.html", user=user)
        return redirect(f"/t/{user.memberships[0].tenant_slug}")

    @get("/switch")
    async def switch(self, tenant: Annotated[str, QueryParameter(max_length=63)]) -> Response[Any]:
        """The tenant picker's target (a GET form: works without JavaScript)."""
        return redirect(f"/t/{tenant}" if tenant.replace("-", "").isalnum() else "/")

    @get("/login")
    async def login_page(
        self, request: Request[Any, Any, State], next_: Annotated[str, QueryParameter(name="next")] = "/"
    ) -> Response[str]:
        """The sign-in form."""
        token, cookie = pre_session_token(request)
        return render(
            "login.html",
            cookies=[cookie] if cookie else None,
            csrf_token=token,
            next=_safe_next(next_),
            email="",
            error=None,
        )

    @post("/login")
    async def login(
        self, request: Request[Any, Any, State], conn: DbConn, portal_settings: PortalConfig
    ) -> Response[Any]:
        """Check the password (throttled) and open a session."""
        await check_pre_session_csrf(request)
        form = await request.form()
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        token, _ = pre_session_token(request)
        try:
            opened = await AccountService(conn, portal_settings).login(
                email, password, client=_client(request)
            )
        except (Unauthorized, TooManyAttempts) as exc:
            return render(
                "login.html",
                status=exc.status,
                csrf_token=token,
                next=_safe_next(str(form.get("next", "/"))),
                email=email,
                error=exc.detail,
            )
        return redirect(
            _safe_next(str(form.get("next", "/"))), cookies=[session_cookie(opened.cookie, portal_settings)]
        )

    @post("/logout")
    async def logout(
        self, request: Request[Any, Any, State], conn: DbConn, portal_settings: PortalConfig
    ) -> Response[Any]:
        """End the session (CSRF-checked like every form)."""
        service = AccountService(conn, portal_settings)
        user = await service.session(request.cookies.get(SESSION_COOKIE))
        if user is not None and not csrf_matches(user.csrf_token, (await request.form()).get(CSRF_FIELD)):
            raise Forbidden("the form expired; reload the page and try again", slug="csrf")
        await service.logout(request.cookies.get(SESSION_COOKIE))
        return redirect("/login", cookies=[session_cookie("", portal_settings, max_age=0)])

    @get("/invite/{token:str}")
    async def invite_page(
        self,
        request: Request[Any, Any, State],
        token: FromPath[str],
        conn: DbConn,
        portal_settings: PortalConfig,
    ) -> Response[str]:
        """Who is invited where, and the password form."""
        invite, has_password = await AccountService(conn, portal_settings).open_invite(token)
        csrf, cookie = pre_session_token(request)
        return render(
            "invite.html",
            cookies=[cookie] if cookie else None,
            invite=invite,
            token=token,
            has_password=has_password,
            csrf_token=csrf,
            error=None,
        )

    @post("/invite/{token:str}")
    async def accept(
        self,
        request: Request[Any, Any, State],
        token: FromPath[str],
        conn: DbConn,
        portal_settings: PortalConfig,
    ) -> Response[Any]:
        """Set the password (or check it), join the tenant and sign in."""
        await check_pre_session_csrf(request)
        form = await request.form()
        service = AccountService(conn, portal_settings)
        try:
            opened = await service.accept_invite(token, str(form.get("password", "")))
        except InvalidInput as exc:
            invite, has_password = await service.open_invite(token)
            csrf, _ = pre_session_token(request)
            return render(
                "invite.html",
                status=422,
                invite=invite,
                token=token,
                has_password=has_password,
                csrf_token=csrf,
                error=exc.detail,
            )
        return redirect("/", cookies=[session_cookie(opened.cookie, portal_settings)])
