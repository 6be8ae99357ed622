"""The portal's must-shows, in real headless Chromium against the real control plane and gateway."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from plugyard.gateway.process import GatewayProcess
from tests.browser.flows import (
    activate_shown_version,
    add_route,
    create_namespace,
    create_plugin,
    gateway_body,
    join,
    new_owner,
    upload,
)
from tests.conftest import ControlPlane
from tests.integration.helpers import plugin_code, via_gateway

pytestmark = pytest.mark.e2e

BROKEN = "export default { fetch() { return new Response('oops' }\n"


async def test_new_owner_uploads_a_bundle_and_serves_it_through_the_gateway(
    browser: Any,
    control_plane: ControlPlane,
    gateway: GatewayProcess,
    database_url: str,
    unique: str,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    tenant, host = f"up-{unique}", f"up-{unique}.portal.test"
    page = await new_owner(browser, control_plane.url, database_url, tenant, f"owner-{unique}@example.com")
    assert await page.get_by_text("No namespaces yet").is_visible()
    await create_namespace(page, "production")
    await create_plugin(page, "hello")
    await add_route(page, control_plane.url, tenant, "production", f"{host}/*", "hello")
    # The URL checker says which plugin serves a URL, live and without JavaScript.
    await page.get_by_label("Which plugin serves").fill(f"https://{host}/cart")
    await page.locator("#url-live").get_by_text("is served by plugin hello").wait_for()
    await page.get_by_role("button", name="Check").click()
    assert "is served by plugin" in await page.locator("#url-live").inner_text()
    await page.goto(f"{control_plane.url}/t/{tenant}/ns/production/p/hello/")

    # A broken bundle: the sandbox's message is shown next to the module, and nothing is stored.
    await upload(page, tmp_path / "broken", {"index.js": BROKEN})
    error = page.locator('[data-module="index.js"]')
    assert await error.is_visible()
    assert "SyntaxError" in await error.inner_text()
    assert await page.get_by_text("No versions yet").is_visible()
    await page.screenshot(path=str(screenshots / "upload-error.png"), full_page=True)

    # The fixed one is stored as version 1, not live until activated.
    await upload(page, tmp_path / "fixed", {"index.js": plugin_code(f"hello {unique}")})
    await page.wait_for_url("**/v/1?stored=new")
    assert await page.get_by_text("Version 1 stored").is_visible()
    assert via_gateway(gateway.url, host).status_code == 503  # a route, but nothing live yet
    await page.get_by_role("button", name="Get a preview link").click()
    preview = await page.locator("[data-preview-link]").inner_text()
    assert ".preview." in preview
    await activate_shown_version(page)
    assert await page.get_by_text("Version 1 is live").is_visible()

    answer = await gateway_body(gateway.url, host, want=f"hello {unique}")
    assert answer.status_code == 200
    assert answer.text == f"hello {unique}"
    await page.goto(f"{control_plane.url}/t/{tenant}/ns/production/p/hello/")
    await page.screenshot(path=str(screenshots / "upload.png"), full_page=True)


async def test_a_template_form_creates_a_version_the_gateway_serves(
    browser: Any, control_plane: ControlPlane, gateway: GatewayProcess, database_url: str, unique: str
) -> None:
    tenant, host = f"tpl-{unique}", f"tpl-{unique}.portal.test"
    page = await new_owner(browser, control_plane.url, database_url, tenant, f"tpl-{unique}@example.com")
    await create_namespace(page, "production")
    await create_plugin(page, "closed")
    await add_route(page, control_plane.url, tenant, "production", f"{host}/*", "closed")
    await page.goto(f"{control_plane.url}/t/{tenant}/ns/production/p/closed/")
    await page.get_by_role("link", name="Maintenance page").click()

    # The generated form: a bad value is refused next to its field, the rest is kept.
    await page.get_by_label("Title").fill(f"Back soon {unique}")
    await page.get_by_label("Retry after seconds").fill("-5")
    await page.get_by_role("button", name="Create version").click()
    assert "at least 0" in await page.locator("#p-retry_after_seconds-error").inner_text()
    assert await page.get_by_label("Title").input_value() == f"Back soon {unique}"
    await page.get_by_label("Retry after seconds").fill("120")
    await page.get_by_label("Activate at once").check()
    await page.get_by_role("button", name="Create version").click()
    await page.wait_for_url("**/v/1?stored=new")
    assert await page.get_by_text("template maintenance").is_visible()

    answer = await gateway_body(gateway.url, host, want=f"Back soon {unique}")
    assert answer.status_code == 503
    assert answer.text.startswith(f"Back soon {unique}")
    assert answer.headers["retry-after"] == "120"


def _bodies(gateway_url: str, host: str, visitors: int = 24) -> set[str]:
    return {
        via_gateway(gateway_url, host, headers={"cookie": f"plugyard_vid=visitor-{i}"}).text
        for i in range(visitors)
    }


async def test_a_50_50_experiment_follows_its_toggles(
    browser: Any,
    control_plane: ControlPlane,
    gateway: GatewayProcess,
    database_url: str,
    unique: str,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    tenant, host = f"exp-{unique}", f"exp-{unique}.portal.test"
    page = await new_owner(browser, control_plane.url, database_url, tenant, f"exp-{unique}@example.com")
    await create_namespace(page, "production")
    await create_plugin(page, "shop")
    await add_route(page, control_plane.url, tenant, "production", f"{host}/*", "shop")
    await page.goto(f"{control_plane.url}/t/{tenant}/ns/production/p/shop/")
    await upload(page, tmp_path / "a", {"index.js": plugin_code("control")}, activate=True)
    await page.goto(f"{control_plane.url}/t/{tenant}/ns/production/p/shop/")
    await upload(page, tmp_path / "b", {"index.js": plugin_code("treatment")})
    assert (await gateway_body(gateway.url, host, want="control")).text == "control"

    await page.goto(f"{control_plane.url}/t/{tenant}/ns/production/experiments/")
    await page.get_by_label("Name", exact=True).fill("checkout")
    # The defaults are control = v1, treatment = v2 at 50 % each; the sliders keep the sum at 100 %.
    await page.get_by_label("Variant 1 weight (%)").fill("70")
    assert await page.locator("[data-weight-total]").inner_text() == "100 %"
    assert await page.get_by_label("Variant 2 weight (%)").input_value() == "30"
    await page.get_by_label("Variant 1 weight (%)").fill("50")
    assert await page.get_by_label("Variant 2 weight (%)").input_value() == "50"
    await page.get_by_role("button", name="Create draft").click()
    await page.wait_for_url("**/experiments/checkout")
    assert await page.locator("[data-state]").inner_text() == "draft"
    assert _bodies(gateway.url, host) == {"control"}

    await page.get_by_role("button", name="Start").click()
    await page.wait_for_load_state()
    assert await page.locator("[data-state]").inner_text() == "running"
    assert _bodies(gateway.url, host) == {"control", "treatment"}

    await page.get_by_role("button", name="Pause").click()
    await page.wait_for_load_state()
    assert await page.locator("[data-state]").inner_text() == "paused"
    assert _bodies(gateway.url, host) == {"control"}

    await page.get_by_role("button", name="Resume").click()
    await page.wait_for_load_state()
    assert await page.locator("[data-state]").inner_text() == "running"
    assert _bodies(gateway.url, host) == {"control", "treatment"}
    await page.screenshot(path=str(screenshots / "experiment.png"), full_page=True)


async def test_a_viewer_sees_everything_and_changes_nothing(
    browser: Any,
    control_plane: ControlPlane,
    gateway: GatewayProcess,
    database_url: str,
    unique: str,
    tmp_path: Path,
) -> None:
    tenant = f"vw-{unique}"
    owner = await new_owner(browser, control_plane.url, database_url, tenant, f"o-{unique}@example.com")
    await create_namespace(owner, "production")
    await create_plugin(owner, "hello")
    await upload(owner, tmp_path / "v1", {"index.js": plugin_code("v1")}, activate=True)
    await owner.goto(f"{control_plane.url}/t/{tenant}/members")
    await owner.get_by_label("Email").fill(f"viewer-{unique}@example.com")
    await owner.get_by_label("Role", exact=True).select_option("viewer")
    await owner.get_by_role("button", name="Create invite link").click()
    link = await owner.locator("[data-invite-link]").inner_text()

    viewer = await (await browser.new_context()).new_page()
    await join(viewer, "", link)
    pages = [
        f"/t/{tenant}",
        f"/t/{tenant}/ns/production/",
        f"/t/{tenant}/ns/production/p/hello/",
        f"/t/{tenant}/ns/production/p/hello/v/1",
        f"/t/{tenant}/ns/production/experiments/",
        f"/t/{tenant}/metrics",
        f"/t/{tenant}/deployments",
        f"/t/{tenant}/members",
    ]
    for path in pages:
        await viewer.goto(control_plane.url + path)
        assert await viewer.locator("h1").first.is_visible()
        actions = await viewer.eval_on_selector_all(
            'form[method="post"]', "forms => forms.map(f => f.getAttribute('action'))"
        )
        assert actions == ["/logout"], (path, actions)
    await viewer.goto(f"{control_plane.url}/t/{tenant}")
    assert await viewer.get_by_role("link", name="hello").is_visible()  # viewers see the plugins
    # The server refuses what the pages do not offer, with a valid session and CSRF token.
    token = await viewer.locator('input[name="csrf_token"]').first.get_attribute("value")
    for path, form in [
        (f"/t/{tenant}/namespaces", {"name": "sneaky"}),
        (f"/t/{tenant}/ns/production/p/hello/v/1/activate", {}),
        (f"/t/{tenant}/ns/production/plugins", {"plugin_name": "sneaky"}),
        (f"/t/{tenant}/tokens", {"name": "sneaky"}),
    ]:
        answer = await viewer.request.post(
            control_plane.url + path, form={"csrf_token": token, **form}, max_redirects=0
        )
        assert answer.status == 403, path
    await owner.goto(f"{control_plane.url}/t/{tenant}")
    assert "sneaky" not in await owner.content()


async def test_a_post_without_the_csrf_token_is_refused(
    browser: Any, control_plane: ControlPlane, database_url: str, unique: str
) -> None:
    tenant = f"cs-{unique}"
    page = await new_owner(browser, control_plane.url, database_url, tenant, f"cs-{unique}@example.com")
    # The form without its hidden token, submitted by the browser with the session cookie.
    await page.evaluate(
        "document.querySelector('form[action$=\"/namespaces\"] input[name=csrf_token]').remove()"
    )
    await page.get_by_label("New namespace").fill("forged")
    await page.get_by_role("button", name="Create namespace").click()
    assert await page.get_by_text("did not come from this site").is_visible()
    answer = await page.request.post(
        f"{control_plane.url}/t/{tenant}/namespaces", form={"name": "forged"}, max_redirects=0
    )
    assert answer.status == 403
    await page.goto(f"{control_plane.url}/t/{tenant}")
    assert "forged" not in await page.content()
    assert re.search("No namespaces yet", await page.content())


async def test_screenshots_of_dashboard_and_metrics(
    browser: Any,
    control_plane: ControlPlane,
    gateway: GatewayProcess,
    database_url: str,
    unique: str,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    tenant, host = f"shot-{unique}", f"shot-{unique}.portal.test"
    page = await new_owner(browser, control_plane.url, database_url, tenant, f"shot-{unique}@example.com")
    await create_namespace(page, "production")
    await create_plugin(page, "storefront")
    await add_route(page, control_plane.url, tenant, "production", f"{host}/*", "storefront")
    await page.goto(f"{control_plane.url}/t/{tenant}/ns/production/p/storefront/")
    await upload(page, tmp_path / "s", {"index.js": plugin_code("welcome")}, activate=True)
    await gateway_body(gateway.url, host, want="welcome")
    for i in range(40):
        via_gateway(gateway.url, host, path=f"/item/{i}")
    # The gateway flushes metrics in batches; wait until the dashboard counts them.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        await page.goto(f"{control_plane.url}/t/{tenant}")
        if "Requests <strong>0</strong>" not in await page.content():
            break
        await asyncio.sleep(1)
    assert "Requests <strong>0</strong>" not in await page.content()
    await page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)
    await page.goto(f"{control_plane.url}/t/{tenant}/metrics?range=1h&by=plugin")
    assert await page.locator("svg.chart").count() >= 3
    await page.screenshot(path=str(screenshots / "metrics.png"), full_page=True)
