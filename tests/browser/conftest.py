"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, on loopback only."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.conftest import OUTPUT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = OUTPUT / "screenshots"


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    """One Chromium for the session (`apt-get install chromium` provides it).

    The async API: the sync one runs its own event loop, which the session's asyncio fixtures
    (the database) cannot share.
    """
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        await chromium.close()


@pytest.fixture
def screenshots() -> Path:
    """Where the tests write their screenshots (test artifacts; docs/images has the latest)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
