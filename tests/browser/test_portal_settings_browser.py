"""The namespace's egress allowlist edited through the real page, enforced by the real gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugyard.gateway.process import GatewayProcess
from tests.browser.flows import add_route, create_namespace, create_plugin, new_owner, upload
from tests.conftest import ControlPlane
from tests.integration.helpers import via_gateway
from tests.integration.test_egress import PROBE, Target

pytestmark = pytest.mark.e2e


async def test_an_owner_edits_the_egress_allowlist_and_the_gateway_follows(
    browser: Any,
    control_plane: ControlPlane,
    gateway: GatewayProcess,
    database_url: str,
    unique: str,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    tenant, host = f"egr-{unique}", f"egr-{unique}.portal.test"
    allowed, forbidden = Target("allowed"), Target("forbidden")
    try:
        page = await new_owner(browser, control_plane.url, database_url, tenant, f"o-{unique}@example.com")
        await create_namespace(page, "production")
        await create_plugin(page, "probe")
        await upload(page, tmp_path / "probe", {"index.js": PROBE}, activate=True)
        await add_route(page, control_plane.url, tenant, "production", f"{host}/*", "probe")
        blocked = via_gateway(gateway.url, host, params={"url": f"http://{allowed.address}/x"})
        assert blocked.status_code == 599, blocked.text  # the default: no host at all
        assert "deny all" in blocked.text

        await page.goto(f"{control_plane.url}/t/{tenant}/ns/production/")
        assert "Deny all" in await page.locator("[data-egress-summary]").inner_text()
        hosts = page.get_by_label("Allowed hosts, one per line")
        # A URL instead of a host: the reason is shown next to the field, nothing is saved.
        await hosts.fill(f"http://{allowed.address}/")
        await page.get_by_label("GET", exact=True).check()
        await page.get_by_role("button", name="Save allowlist").click()
        await page.wait_for_load_state()
        error = page.locator("#allow-error")
        assert "leave out the scheme" in await error.inner_text()
        assert await hosts.get_attribute("aria-invalid") == "true"
        assert await hosts.input_value() == f"http://{allowed.address}/"
        assert await page.get_by_label("GET", exact=True).is_checked()
        assert "Deny all" in await page.locator("[data-egress-summary]").inner_text()

        await hosts.fill(allowed.address)
        await page.get_by_role("button", name="Save allowlist").click()
        await page.wait_for_url("**#egress")
        summary = await page.locator("[data-egress-summary]").inner_text()
        assert allowed.address in summary
        assert "methods GET only" in summary
        await page.locator("#egress").screenshot(path=str(screenshots / "namespace-egress.png"))

        fetched = via_gateway(gateway.url, host, params={"url": f"http://{allowed.address}/x"})
        assert (fetched.status_code, fetched.text) == (200, "fetched allowed GET")
        other = via_gateway(gateway.url, host, params={"url": f"http://{forbidden.address}/x"})
        assert other.status_code == 599
        assert forbidden.hits == 0
    finally:
        allowed.close()
        forbidden.close()
