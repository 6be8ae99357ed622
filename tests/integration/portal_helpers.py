"""Helpers for the portal tests: invites through the real CLI, sessions through real HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from urllib.parse import urlsplit

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"


def cli_invite(
    database_url: str, tenant: str, email: str, role: str = "owner", *, create: bool = True
) -> str:
    """Run `plugyard users create-owner|invite` and return the invite link's path."""
    args = ["create-owner", tenant, email] if role == "owner" else ["invite", tenant, email, "--role", role]
    if role == "owner" and create:
        args += ["--name", tenant.title()]
    done = subprocess.run(
        [sys.executable, "-m", "plugyard", "users", *args],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip().splitlines()[-1]
    assert link.startswith("http"), done.stdout
    return urlsplit(link).path


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


class Portal:
    """One browser-like session (cookies kept) against the real control plane."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)
        self.csrf = ""

    def accept(self, invite_path: str, password: str = PASSWORD) -> httpx.Response:
        page = self.http.get(invite_path)
        assert page.status_code == 200, page.text
        answer = self.http.post(invite_path, data={"csrf_token": csrf_of(page.text), "password": password})
        if answer.status_code == 303:
            self.refresh_csrf()
        return answer

    def refresh_csrf(self) -> None:
        home = self.http.get("/", follow_redirects=True)
        assert home.status_code == 200, home.text
        self.csrf = csrf_of(home.text)

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def post(self, path: str, data: dict[str, object] | None = None, **kwargs: object) -> httpx.Response:
        return self.http.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)  # type: ignore[arg-type]


def signed_in(base_url: str, database_url: str, tenant: str, email: str, role: str = "owner") -> Portal:
    """A session of a new member (the tenant is created for an owner)."""
    portal = Portal(base_url)
    answer = portal.accept(cli_invite(database_url, tenant, email, role))
    assert answer.status_code == 303, answer.text
    return portal
