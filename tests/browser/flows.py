"""What a person does in the portal, step by step, through the real browser."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from tests.integration.helpers import plugin_code, via_gateway
from tests.integration.portal_helpers import PASSWORD, cli_invite


async def join(page: Any, base_url: str, invite_path: str) -> None:
    """Open an invite link, choose a password, land on the dashboard."""
    await page.goto(base_url + invite_path)
    await page.get_by_label("Choose a password").fill(PASSWORD)
    await page.get_by_role("button", name="Join").click()
    await page.wait_for_url("**/t/**")


async def new_owner(browser: Any, base_url: str, database_url: str, tenant: str, email: str) -> Any:
    """A fresh browser context signed in as a tenant's new owner (tenant created by the CLI)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await join(page, base_url, cli_invite(database_url, tenant, email))
    return page


async def create_namespace(page: Any, name: str) -> None:
    await page.get_by_label("New namespace").fill(name)
    await page.get_by_role("button", name="Create namespace").click()
    await page.wait_for_url(f"**/ns/{name}")


async def create_plugin(page: Any, name: str) -> None:
    await page.get_by_label("New plugin").fill(name)
    await page.get_by_role("button", name="Create plugin").click()
    await page.wait_for_url(f"**/p/{name}")


async def add_route(page: Any, base_url: str, tenant: str, namespace: str, pattern: str, plugin: str) -> None:
    await page.goto(f"{base_url}/t/{tenant}/ns/{namespace}/")
    await page.get_by_label("Pattern").fill("no-path.example.com")
    await page.locator("#pattern-live").get_by_text("the path part is missing").wait_for()
    await page.get_by_label("Pattern").fill(pattern)
    await page.locator("#pattern-live").get_by_text("valid pattern").wait_for()  # the live check
    await page.get_by_label("to plugin").select_option(plugin)
    await page.get_by_role("button", name="Add route").click()
    await page.wait_for_url("**#routes")


def _write(folder: Path, files: dict[str, str]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in files.items():
        path = folder / name
        path.write_text(content)
        paths.append(str(path))
    return paths


async def upload(page: Any, folder: Path, files: dict[str, str], *, activate: bool = False) -> None:
    """Choose files with the file input and submit the upload form."""
    paths = await asyncio.to_thread(_write, folder, files)
    await page.locator("#files").set_input_files(paths)
    if activate:
        await page.get_by_label("Activate at once").first.check()
    await page.get_by_role("button", name="Upload", exact=True).click()
    await page.wait_for_load_state()


async def activate_shown_version(page: Any) -> None:
    """From a version page: activate, confirm."""
    await page.get_by_role("link", name="Activate version").click()
    await page.get_by_role("button", name="Yes, serve version").click()
    await page.wait_for_url("**activated=*")


async def gateway_body(gateway_url: str, host: str, *, want: str, timeout_s: float = 10.0) -> httpx.Response:
    """The gateway's answer for `host` once it contains `want` (pushes are synchronous; this absorbs retries)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = via_gateway(gateway_url, host)
        if want in answer.text or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.2)


__all__ = ["plugin_code"]
