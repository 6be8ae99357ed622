"""Portal settings pages over real HTTP: egress allowlist, quarantine banner and release, plugin
secrets, and the audit entries of member and token changes."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from plugyard import signing
from plugyard.gateway.process import GatewayProcess
from plugyard.quarantine.api import REPORT_PATH
from tests.conftest import ControlPlane
from tests.integration.helpers import plugin_code, via_gateway
from tests.integration.portal_helpers import Portal, signed_in
from tests.integration.test_egress import PROBE, Target

pytestmark = pytest.mark.e2e
PROBLEM = "https://plugyard.dev/problems/"
SECRET_ECHO = "export default { fetch(request, env) { return new Response('key=' + env.API_KEY); } };\n"


@pytest.fixture
def targets() -> Iterator[tuple[Target, Target]]:
    allowed, forbidden = Target("allowed"), Target("forbidden")
    yield allowed, forbidden
    allowed.close()
    forbidden.close()


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def setup_plugin(owner: Portal, tenant: str, host: str, code: str, plugin: str = "probe") -> None:
    """Namespace `prod`, a plugin with `code` live as version 1, and a route from `host`."""
    assert owner.post(f"/t/{tenant}/namespaces", {"name": "prod"}).status_code == 303
    assert owner.post(f"/t/{tenant}/ns/prod/plugins", {"plugin_name": plugin}).status_code == 303
    upload = owner.post(
        f"/t/{tenant}/ns/prod/p/{plugin}/upload",
        {"activate": "1"},
        files=[("files", ("index.js", code.encode(), "text/javascript"))],
    )
    assert upload.status_code == 303, upload.text
    route = owner.post(f"/t/{tenant}/ns/prod/routes", {"pattern": f"{host}/*", "plugin": plugin})
    assert route.status_code == 303, route.text


def api_token(owner: Portal, tenant: str, name: str = "tests") -> str:
    created = owner.post(f"/t/{tenant}/tokens", {"name": name})
    assert created.status_code == 201, created.text
    found = re.search(r"<code data-new-token>([^<]+)</code>", created.text)
    assert found
    return found.group(1)


def api_get(base_url: str, token: str, path: str) -> object:
    answer = httpx.get(base_url + path, headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_editor_sets_an_allowlist_the_api_shows_and_the_gateway_enforces(
    control_plane: ControlPlane,
    gateway: GatewayProcess,
    database_url: str,
    unique: str,
    targets: tuple[Target, Target],
) -> None:
    allowed, forbidden = targets
    tenant, host = f"egp-{unique}", f"egp-{unique}.portal.test"
    owner = signed_in(control_plane.url, database_url, tenant, f"o-{unique}@example.com")
    setup_plugin(owner, tenant, host, PROBE)
    token = api_token(owner, tenant)
    editor = signed_in(control_plane.url, database_url, tenant, f"e-{unique}@example.com", "editor")
    page = editor.get(f"/t/{tenant}/ns/prod/")
    assert "Deny all" in page.text
    assert 'name="allow"' in page.text
    assert "has no limits of its own" in page.text  # limits are per version, shown read-only
    denied = via_gateway(gateway.url, host, params={"url": f"http://{allowed.address}/"})
    assert denied.status_code == 599, denied.text

    saved = editor.post(
        f"/t/{tenant}/ns/prod/egress",
        {"allow": f"# the payment API\n{allowed.address.upper()}\n\n*.example.org\n", "methods": ["GET"]},
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].endswith("#egress")
    policy = {"allow": [allowed.address, "*.example.org"], "methods": ["GET"]}
    assert api_get(control_plane.url, token, f"/v1/tenants/{tenant}/namespaces/prod")["egress"] == policy  # type: ignore[index]
    shown = editor.get(f"/t/{tenant}/ns/prod/").text
    assert f"<code>{allowed.address}</code>" in shown
    assert "methods GET only" in shown
    assert re.search(r'value="GET" checked', shown)

    ok = via_gateway(gateway.url, host, params={"url": f"http://{allowed.address}/x"})
    assert (ok.status_code, ok.text) == (200, "fetched allowed GET")
    other = via_gateway(gateway.url, host, params={"url": f"http://{forbidden.address}/x"})
    assert other.status_code == 599
    post = via_gateway(gateway.url, host, params={"url": f"http://{allowed.address}/x", "method": "POST"})
    assert post.status_code == 599
    assert "method POST" in post.text
    assert (allowed.hits, forbidden.hits) == (1, 0)

    # The deployment is recorded with the editor as its author.
    history = editor.get(f"/t/{tenant}/deployments?namespace=prod").text
    assert "namespace egress" in history
    assert f"e-{unique}@example.com" in history

    # Emptying the list goes back to deny-all, live in the loaded isolate.
    assert editor.post(f"/t/{tenant}/ns/prod/egress", {"allow": ""}).status_code == 303
    assert api_get(control_plane.url, token, f"/v1/tenants/{tenant}/namespaces/prod")["egress"] == {  # type: ignore[index]
        "allow": [],
        "methods": None,
    }
    assert via_gateway(gateway.url, host, params={"url": f"http://{allowed.address}/x"}).status_code == 599
    assert allowed.hits == 1


def test_a_bad_host_is_explained_next_to_the_field_and_nothing_is_stored(
    control_plane: ControlPlane, database_url: str, unique: str
) -> None:
    tenant = f"egb-{unique}"
    owner = signed_in(control_plane.url, database_url, tenant, f"o-{unique}@example.com")
    assert owner.post(f"/t/{tenant}/namespaces", {"name": "prod"}).status_code == 303
    token = api_token(owner, tenant)
    for text, words in (
        (
            "ok.example.com\nhttps://api.example.com",
            "line 2: 'https://api.example.com' is not allowed: leave out",
        ),
        ("*", "write *.example.com"),
        ("api.example.com/v1", "without a path"),
        ("a_b.example.com", "lower-case letters, digits, dashes and dots"),
    ):
        refused = owner.post(f"/t/{tenant}/ns/prod/egress", {"allow": text, "methods": ["GET"]})
        assert refused.status_code == 422, text
        assert words in html.unescape(refused.text), refused.text
        assert 'id="allow-error" role="alert"' in refused.text
        assert 'aria-invalid="true">' in refused.text
        assert html.escape(text, quote=False) in refused.text  # what was typed is kept
        assert re.search(r'value="GET" checked', refused.text)
    bad_method = owner.post(f"/t/{tenant}/ns/prod/egress", {"allow": "ok.test", "methods": ["BREW"]})
    assert bad_method.status_code == 422
    assert "unknown method 'BREW'" in html.unescape(bad_method.text)
    too_many = owner.post(
        f"/t/{tenant}/ns/prod/egress", {"allow": "\n".join(f"h{i}.example.com" for i in range(101))}
    )
    assert too_many.status_code == 422
    assert "at most 100 hosts" in too_many.text
    namespace = api_get(control_plane.url, token, f"/v1/tenants/{tenant}/namespaces/prod")
    assert namespace["egress"] == {"allow": [], "methods": None}  # type: ignore[index]

    # A viewer is refused on the server, whatever the page shows.
    viewer = signed_in(control_plane.url, database_url, tenant, f"v-{unique}@example.com", "viewer")
    assert 'name="allow"' not in viewer.get(f"/t/{tenant}/ns/prod/").text
    refused = viewer.post(f"/t/{tenant}/ns/prod/egress", {"allow": "api.example.com"})
    assert refused.status_code == 403
    namespace = api_get(control_plane.url, token, f"/v1/tenants/{tenant}/namespaces/prod")
    assert namespace["egress"] == {"allow": [], "methods": None}  # type: ignore[index]


def report_quarantine(
    control_plane: ControlPlane, secret: str, tenant: str, plugin: str, version_hash: str
) -> None:
    """What a gateway supervisor sends when a version hung a process (a signed report)."""
    body = json.dumps(
        {
            "tenant": tenant,
            "namespace": "prod",
            "plugin": plugin,
            "version": version_hash,
            "reason": "hung gateway process 2 (no probe answer for 2.0 s)",
            "gateway": "pool-test",
        }
    ).encode()
    headers = {
        **signing.sign(secret, method="POST", path=REPORT_PATH, body=body),
        "content-type": "application/json",
    }
    answer = httpx.post(control_plane.url + REPORT_PATH, content=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "recorded"


def test_a_quarantined_version_shows_a_banner_and_an_editor_releases_it(
    control_plane: ControlPlane, gateway: GatewayProcess, gateway_secret: str, database_url: str, unique: str
) -> None:
    tenant, host = f"qrt-{unique}", f"qrt-{unique}.portal.test"
    owner = signed_in(control_plane.url, database_url, tenant, f"o-{unique}@example.com")
    setup_plugin(owner, tenant, host, plugin_code(f"spin {unique}"), plugin="spin")
    plugin_page = f"/t/{tenant}/ns/prod/p/spin/"
    assert 'role="alert" data-quarantine' not in owner.get(plugin_page).text
    version_hash = re.search(
        r"<dt>Hash</dt><dd><code>([0-9a-f]{64})</code>", owner.get(f"{plugin_page}v/1").text
    )
    assert version_hash
    report_quarantine(control_plane, gateway_secret, tenant, "spin", version_hash.group(1))

    def gateway_says(status: int) -> bool:
        return via_gateway(gateway.url, host).status_code == status

    wait_until(lambda: gateway_says(503), "the gateway to refuse the quarantined version")
    assert via_gateway(gateway.url, host).json()["type"] == PROBLEM + "plugin-quarantined"

    viewer = signed_in(control_plane.url, database_url, tenant, f"v-{unique}@example.com", "viewer")
    seen = viewer.get(plugin_page).text
    assert "Version 1 is quarantined and serves nothing" in seen
    assert "Reason: hung gateway process 2 (no probe answer for 2.0 s)" in seen
    assert re.search(r"Since <time datetime=\"[^\"]+\">[^<]+ UTC</time>, reported by pool-test", seen)
    assert "/v/1/release" not in seen  # no release button for a viewer...
    assert viewer.post(f"{plugin_page}v/1/release").status_code == 403  # ...and no release either
    assert gateway_says(503)

    editor = signed_in(control_plane.url, database_url, tenant, f"e-{unique}@example.com", "editor")
    page = editor.get(plugin_page).text
    assert f'href="/t/{tenant}/ns/prod/p/spin/v/1/release"' in page
    confirm = editor.get(f"{plugin_page}v/1/release")
    assert confirm.status_code == 200
    assert "Yes, release version 1" in confirm.text
    released = editor.post(f"{plugin_page}v/1/release")
    assert released.status_code == 303, released.text
    after = editor.get(released.headers["location"]).text
    assert "Version 1 is released from quarantine" in after
    assert "is quarantined" not in after
    wait_until(lambda: gateway_says(200), "the gateway to serve the released version")
    assert via_gateway(gateway.url, host).text == f"spin {unique}"
    # Releasing again: nothing is quarantined any more.
    assert editor.get(f"{plugin_page}v/1/release").status_code == 404
    assert editor.post(f"{plugin_page}v/1/release").status_code == 404


def test_plugin_secrets_are_write_only_and_reach_the_plugin(
    control_plane: ControlPlane, gateway: GatewayProcess, database_url: str, unique: str
) -> None:
    tenant, host = f"psec-{unique}", f"psec-{unique}.portal.test"
    owner = signed_in(control_plane.url, database_url, tenant, f"o-{unique}@example.com")
    setup_plugin(owner, tenant, host, SECRET_ECHO, plugin="echo")
    base = f"/t/{tenant}/ns/prod/p/echo/"
    value = f"s3cret-{unique}"
    bad = owner.post(f"{base}secrets", {"secret_name": "1bad", "secret_value": value})
    assert bad.status_code == 422
    assert "a secret name is a letter or '_'" in html.unescape(bad.text)
    assert value not in bad.text
    assert owner.post(f"{base}secrets", {"secret_name": "API_KEY", "secret_value": value}).status_code == 303
    page = owner.get(base).text
    assert "<code>API_KEY</code>" in page
    assert value not in page
    wait_until(lambda: via_gateway(gateway.url, host).text == f"key={value}", "the plugin to see its secret")
    deleted = owner.post(f"{base}secrets/API_KEY/delete")
    assert deleted.status_code == 303
    assert "No secrets of its own" in owner.get(base).text
    wait_until(lambda: via_gateway(gateway.url, host).text == "key=undefined", "the secret to be gone")


def test_member_invite_and_token_changes_in_the_portal_are_in_the_audit_log(
    control_plane: ControlPlane, database_url: str, unique: str
) -> None:
    tenant = f"aud-{unique}"
    email = f"o-{unique}@example.com"
    owner = signed_in(control_plane.url, database_url, tenant, email)
    invited = owner.post(
        f"/t/{tenant}/members/invite", {"email": f"new-{unique}@example.com", "role": "editor"}
    )
    assert invited.status_code == 201, invited.text
    invite_id = re.search(rf"/t/{tenant}/invites/([0-9a-f-]{{36}})/revoke", invited.text)
    assert invite_id
    assert owner.post(f"/t/{tenant}/invites/{invite_id.group(1)}/revoke").status_code == 303

    member = signed_in(control_plane.url, database_url, tenant, f"m-{unique}@example.com", "viewer")
    assert member.get(f"/t/{tenant}").status_code == 200
    members = owner.get(f"/t/{tenant}/members").text
    user_id = re.search(
        rf"/t/{tenant}/members/([0-9a-f-]{{36}})/remove", members.partition(f"m-{unique}@")[2]
    )
    assert user_id
    assert owner.post(f"/t/{tenant}/members/{user_id.group(1)}/role", {"role": "editor"}).status_code == 303
    assert owner.post(f"/t/{tenant}/members/{user_id.group(1)}/remove").status_code == 303

    token = api_token(owner, tenant, name="deploy bot")
    tokens = owner.get(f"/t/{tenant}/tokens").text
    token_id = re.search(rf"/t/{tenant}/tokens/([0-9a-f-]{{36}})/revoke", tokens)
    assert token_id
    assert owner.post(f"/t/{tenant}/tokens/{token_id.group(1)}/revoke").status_code == 303

    audit = html.unescape(owner.get(f"/t/{tenant}/audit").text)
    rows = re.findall(r"<tr><td>.*?</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", audit)
    mine = [(action, subject) for actor, action, subject in rows if actor == f"user:{email}"]
    assert mine == [  # newest first
        ("token.revoked", "token:deploy bot"),
        ("token.created", "token:deploy bot"),
        ("member.removed", f"member:m-{unique}@example.com"),
        ("member.role_changed", f"member:m-{unique}@example.com"),
        ("invite.revoked", f"invite:new-{unique}@example.com"),
        ("invite.created", f"invite:new-{unique}@example.com"),
    ], rows
    assert '"from": "viewer", "to": "editor"' in audit or '"from":"viewer","to":"editor"' in audit
    assert token not in audit  # the token itself is never recorded
    # The CLI's invites are recorded too, with the CLI as the actor.
    assert ("cli", "invite.created", f"invite:m-{unique}@example.com") in rows
