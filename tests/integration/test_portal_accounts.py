"""Portal accounts against the real control plane: invites, sessions, cookies, CSRF, throttling, tokens."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import ControlPlane
from tests.integration.portal_helpers import PASSWORD, Portal, cli_invite, csrf_of, signed_in

pytestmark = pytest.mark.e2e


def test_owner_joins_by_invite_and_gets_a_safe_session_cookie(
    control_plane: ControlPlane, database_url: str, unique: str
) -> None:
    tenant = f"acct-{unique}"
    path = cli_invite(database_url, tenant, f"owner-{unique}@example.com")
    portal = Portal(control_plane.url)
    page = portal.get(path)
    assert f"owner-{unique}@example.com" in page.text
    assert "owner" in page.text
    weak = portal.http.post(path, data={"csrf_token": csrf_of(page.text), "password": "short"})
    assert weak.status_code == 422
    assert "at least 10 characters" in weak.text
    joined = portal.http.post(path, data={"csrf_token": csrf_of(page.text), "password": PASSWORD})
    assert joined.status_code == 303
    cookie = joined.headers["set-cookie"]
    assert "plugyard_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie.replace("Lax", "lax")
    dashboard = portal.get(f"/t/{tenant}")
    assert dashboard.status_code == 200
    assert "No namespaces yet" in dashboard.text
    # The link works once.
    assert Portal(control_plane.url).get(path).status_code == 404
    # Signing out ends the session on the server, not just in the browser.
    portal.refresh_csrf()
    session = portal.http.cookies.get("plugyard_session")
    assert portal.post("/logout").status_code == 303
    stale = httpx.get(control_plane.url + f"/t/{tenant}", cookies={"plugyard_session": session or ""})
    assert stale.status_code == 303
    assert stale.headers["location"].startswith("/login")


def test_sign_in_checks_the_password_and_is_rate_limited(
    control_plane: ControlPlane, database_url: str, unique: str
) -> None:
    tenant = f"rate-{unique}"
    email = f"rate-{unique}@example.com"
    signed_in(control_plane.url, database_url, tenant, email)
    visitor = Portal(control_plane.url)
    token = csrf_of(visitor.get("/login").text)
    for _ in range(5):
        wrong = visitor.http.post(
            "/login", data={"csrf_token": token, "email": email, "password": "not it at all"}
        )
        assert wrong.status_code == 401
        assert "not right" in wrong.text
    # The sixth attempt is refused even with the right password, with a message in plain words.
    blocked = visitor.http.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD})
    assert blocked.status_code == 429
    assert "too many failed sign-ins" in blocked.text
    # An unknown email costs the same and says the same (no account enumeration).
    unknown = visitor.http.post(
        "/login", data={"csrf_token": token, "email": f"nobody-{unique}@example.com", "password": PASSWORD}
    )
    assert unknown.status_code == 401
    assert "not right" in unknown.text


def test_sign_in_works_with_the_right_password(
    control_plane: ControlPlane, database_url: str, unique: str
) -> None:
    tenant = f"login-{unique}"
    email = f"login-{unique}@example.com"
    signed_in(control_plane.url, database_url, tenant, email)
    visitor = Portal(control_plane.url)
    token = csrf_of(visitor.get("/login?next=/t/" + tenant + "/members").text)
    answer = visitor.http.post(
        "/login",
        data={
            "csrf_token": token,
            "email": email.upper(),
            "password": PASSWORD,
            "next": f"/t/{tenant}/members",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/t/{tenant}/members"
    # Open redirects are refused: `next` must be a local path.
    again = visitor.http.post(
        "/login", data={"csrf_token": token, "email": email, "password": PASSWORD, "next": "//evil.example/"}
    )
    assert again.headers["location"] == "/"


def test_posts_without_the_csrf_token_are_refused(
    control_plane: ControlPlane, database_url: str, unique: str
) -> None:
    tenant = f"csrf-{unique}"
    portal = signed_in(control_plane.url, database_url, tenant, f"csrf-{unique}@example.com")
    missing = portal.http.post(f"/t/{tenant}/namespaces", data={"name": "sneaky"})
    assert missing.status_code == 403
    assert "did not come from this site" in missing.text
    wrong = portal.http.post(f"/t/{tenant}/namespaces", data={"name": "sneaky", "csrf_token": "x" * 43})
    assert wrong.status_code == 403
    assert "sneaky" not in portal.get(f"/t/{tenant}").text
    # The anonymous forms have their own token (a double-submit cookie).
    assert (
        httpx.post(control_plane.url + "/login", data={"email": "a@b.cd", "password": "x"}).status_code == 403
    )
    ok = portal.post(f"/t/{tenant}/namespaces", {"name": "production"})
    assert ok.status_code == 303
    assert ok.headers["location"] == f"/t/{tenant}/ns/production"


def test_other_tenants_do_not_exist_for_a_member(
    control_plane: ControlPlane, database_url: str, unique: str
) -> None:
    a = signed_in(control_plane.url, database_url, f"ta-{unique}", f"a-{unique}@example.com")
    signed_in(control_plane.url, database_url, f"tb-{unique}", f"b-{unique}@example.com")
    assert a.get(f"/t/tb-{unique}").status_code == 404
    assert a.post(f"/t/tb-{unique}/namespaces", {"name": "x"}).status_code == 404


def test_api_tokens_are_managed_from_the_portal(
    control_plane: ControlPlane, database_url: str, unique: str
) -> None:
    tenant = f"tok-{unique}"
    portal = signed_in(control_plane.url, database_url, tenant, f"tok-{unique}@example.com")
    created = portal.post(f"/t/{tenant}/tokens", {"name": "ci runner"})
    assert created.status_code == 201
    token = re.search(r"data-new-token>([^<]+)<", created.text).group(1)  # type: ignore[union-attr]
    api = httpx.get(control_plane.url + f"/v1/tenants/{tenant}", headers={"authorization": f"Bearer {token}"})
    assert api.status_code == 200
    listing = portal.get(f"/t/{tenant}/tokens").text
    assert "ci runner" in listing
    assert "never" not in listing.split("ci runner", 1)[1].split("</tr>", 1)[0]
    token_id = re.search(r"/tokens/([0-9a-f-]{36})/revoke", listing).group(1)  # type: ignore[union-attr]
    assert portal.post(f"/t/{tenant}/tokens/{token_id}/revoke").status_code == 303
    revoked = httpx.get(
        control_plane.url + f"/v1/tenants/{tenant}", headers={"authorization": f"Bearer {token}"}
    )
    assert revoked.status_code == 401


def test_owners_manage_members_and_keep_one_owner(
    control_plane: ControlPlane, database_url: str, unique: str
) -> None:
    tenant = f"mem-{unique}"
    owner = signed_in(control_plane.url, database_url, tenant, f"own-{unique}@example.com")
    invited = owner.post(
        f"/t/{tenant}/members/invite", {"email": f"ed-{unique}@example.com", "role": "editor"}
    )
    assert invited.status_code == 201
    link = re.search(r"data-invite-link>([^<]+)<", invited.text).group(1)  # type: ignore[union-attr]
    editor = Portal(control_plane.url)
    assert editor.accept("/invite/" + link.rsplit("/", 1)[1]).status_code == 303
    members = owner.get(f"/t/{tenant}/members").text
    assert f"ed-{unique}@example.com" in members
    own_id = re.search(  # the row of the owner (marked "you")
        rf"own-{unique}@example.com \(you\)</td>\s*<td>\s*<form method=\"post\" action=\"[^\"]*/members/([0-9a-f-]{{36}})/role",
        members,
    ).group(1)  # type: ignore[union-attr]
    # Only owner: cannot be demoted or removed.
    assert owner.post(f"/t/{tenant}/members/{own_id}/role", {"role": "viewer"}).status_code == 403
    # Editors change things but do not manage members.
    assert (
        editor.post(f"/t/{tenant}/members/invite", {"email": "x@example.com", "role": "owner"}).status_code
        == 403
    )
    assert editor.post(f"/t/{tenant}/namespaces", {"name": "staging"}).status_code == 303
