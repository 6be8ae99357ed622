"""Uploads end to end: bundle formats, validation before accept, limits, diff and rollback."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from plugyard.app import create_app
from plugyard.gateway.process import GatewayProcess
from plugyard.settings import GatewaySettings, Settings
from tests.conftest import ControlPlane
from tests.integration.bundle_helpers import ADD_WASM, MUST_SHOW_OUTPUT, must_show_modules
from tests.integration.helpers import Tenant, check, plugin_code, via_gateway

pytestmark = pytest.mark.e2e
PROBLEM = "https://plugyard.dev/problems/"


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def _tenant(http: httpx.Client, admin_token: str, slug: str) -> Tenant:
    t = Tenant(http, admin_token, slug)
    t.post("/namespaces", {"name": "prod"}, 201)
    t.post("/namespaces/prod/plugins", {"name": "p"}, 201)
    return t


VERSIONS = "/namespaces/prod/plugins/p/versions"


def test_es_module_importing_json_text_and_wasm_serves_all_three(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = _tenant(http, admin_token, f"mods-{unique}")
    body = {"modules": must_show_modules(), "limits": {"cpu_ms": 50, "subrequests": 10}, "activate": True}
    published = t.post(VERSIONS, body, 201)
    version = published["version"]
    assert version["modules"] == ["add.wasm", "config.json", "greeting.txt", "index.js"]
    assert version["limits"] == {"cpu_ms": 50, "subrequests": 10}
    assert version["size_bytes"] == len(ADD_WASM) + sum(
        len(m["content"].encode()) for m in must_show_modules() if m["type"] != "wasm"
    )
    state = published["deployment"]["state"]["plugins"]["p"]
    assert state["limits"] == {"cpu_ms": 50, "subrequests": 10}
    host = f"mods.{unique}.test"
    t.post("/namespaces/prod/routes", {"pattern": f"{host}/*", "plugin": "p"}, 201)
    served = via_gateway(gateway.url, host)
    assert (served.status_code, served.text) == (200, MUST_SHOW_OUTPUT)

    # Same bundle and settings: same hash, nothing new; other limits: a new version.
    again = t.post(VERSIONS, {**body, "activate": False}, 200)
    assert (again["created"], again["version"]["hash"]) == (False, version["hash"])
    other = t.post(VERSIONS, {**body, "limits": {"cpu_ms": 60}, "activate": False}, 201)
    assert other["version"]["hash"] != version["hash"]
    listed = t.get(VERSIONS)
    assert [(v["number"], v["size_bytes"]) for v in listed] == [
        (2, version["size_bytes"]),
        (1, version["size_bytes"]),
    ]
    assert all("provenance" in v for v in listed)


@pytest.mark.parametrize(
    ("modules", "module", "message"),
    [
        (
            [{"name": "index.js", "content": "export default { fetch() { return new Response('x' }"}],
            "index.js",
            "SyntaxError: missing ) after argument list",
        ),
        (
            [
                {
                    "name": "index.js",
                    "content": "import { nope } from './lib.js';\nexport default { fetch() {} }",
                },
                {"name": "lib.js", "content": "export const yes = 1;"},
            ],
            "index.js",
            "does not provide an export named 'nope'",
        ),
        (
            [{"name": "index.js", "content": "import x from './missing.js';\nexport default { fetch() {} }"}],
            "index.js",
            'No such module "missing.js"',
        ),
        (
            [
                {"name": "index.js", "content": "import './util.js';\nexport default { fetch() {} }"},
                {"name": "util.js", "content": "let = ;"},
            ],
            "util.js",
            "SyntaxError",
        ),
        (
            [{"name": "index.js", "content": "export default { hello() {} }"}],
            "index.js",
            "fetch() or scheduled()",
        ),
    ],
    ids=["syntax-error", "missing-export", "missing-module", "error-in-import", "no-handler"],
)
def test_bundles_the_runtime_rejects_are_422_and_nothing_is_stored(
    http: httpx.Client,
    admin_token: str,
    unique: str,
    modules: list[dict[str, str]],
    module: str,
    message: str,
) -> None:
    t = _tenant(http, admin_token, f"rej-{unique}")
    t.post(VERSIONS, {"modules": [{"name": "index.js", "content": plugin_code("ok")}]}, 201)
    before = t.get(VERSIONS)
    response = http.post(t.url(VERSIONS), json={"modules": modules, "activate": True}, headers=t.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == PROBLEM + "bundle-rejected"
    assert message in problem["detail"]
    assert problem["module"] == module
    assert problem["errors"][0]["field"] == f"modules[{[m['name'] for m in modules].index(module)}]"
    assert t.get(VERSIONS) == before
    assert len(t.get("/namespaces/prod/deployments")) == 0


def test_size_count_and_name_limits_apply_before_anything_runs(
    http: httpx.Client, admin_token: str, unique: str
) -> None:
    t = _tenant(http, admin_token, f"big-{unique}")
    code = plugin_code("x")
    two_mib = {
        "modules": [
            {"name": "index.js", "content": code},
            {"name": "pad.txt", "type": "text", "content": "x" * (2 << 20)},
        ]
    }
    for response in [
        http.post(t.url(VERSIONS), json=two_mib, headers=t.headers),
        http.post(
            t.url(VERSIONS + "/upload"),
            files={"index.js": ("index.js", code.encode()), "pad.bin": ("pad.bin", b"\0" * (2 << 20))},
            headers=t.headers,
        ),
        http.post(
            t.url(VERSIONS),
            json={
                "modules": [
                    {"name": "index.js", "content": code},
                    {
                        "name": "b.bin",
                        "type": "data",
                        "content": base64.b64encode(b"\0" * (2 << 20)).decode(),
                    },
                ]
            },
            headers=t.headers,
        ),
        http.post(
            t.url(VERSIONS),
            json={"modules": [{"name": f"m{i}.js", "content": code} for i in range(101)]},
            headers=t.headers,
        ),
    ]:
        assert response.status_code == 413, response.text
        assert response.json()["type"] == PROBLEM + "payload-too-large"
    for name in ["../index.js", "/abs.js", "a/../../b.js", "__plugyard_probe__.js"]:
        bad = http.post(
            t.url(VERSIONS),
            json={"modules": [{"name": "index.js", "content": code}, {"name": name, "content": code}]},
            headers=t.headers,
        )
        assert bad.status_code == 422, (name, bad.text)
        assert bad.json()["errors"][0]["field"] in {"modules[1].name", "modules.1.name", "modules[1]"}
    assert t.get(VERSIONS) == []


def test_multipart_upload_diff_and_rollback(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = _tenant(http, admin_token, f"diff-{unique}")
    host = f"diff.{unique}.test"
    files = {
        "index.js": ("index.js", plugin_code("v1").encode()),
        "lib/add.wasm": ("add.wasm", ADD_WASM),
        "notes.txt": ("notes.txt", b"one\ntwo\n"),
    }
    meta = {
        "metadata": (
            None,
            msgspec.json.encode({"activate": True, "limits": {"cpu_ms": 30}}),
            "application/json",
        )
    }
    first = http.post(t.url(VERSIONS + "/upload"), files={**meta, **files}, headers=t.headers)
    assert first.status_code == 201, first.text
    v1 = first.json()["version"]
    assert v1["modules"] == ["index.js", "lib/add.wasm", "notes.txt"]
    assert v1["main_module"] == "index.js"
    t.post("/namespaces/prod/routes", {"pattern": f"{host}/*", "plugin": "p"}, 201)
    assert via_gateway(gateway.url, host).text == "v1"

    repeat = http.post(t.url(VERSIONS + "/upload"), files={**meta, **files}, headers=t.headers)
    assert (repeat.status_code, repeat.json()["version"]["hash"]) == (200, v1["hash"])

    files2 = {
        "index.js": ("index.js", plugin_code("v2").encode()),
        "notes.txt": ("notes.txt", b"one\nthree\n"),
    }
    second = http.post(t.url(VERSIONS + "/upload"), files={**meta, **files2}, headers=t.headers)
    assert second.status_code == 201, second.text
    assert via_gateway(gateway.url, host).text == "v2"

    diff = t.get(VERSIONS + "/1/diff/2")
    modules = {m["name"]: m for m in diff["modules"]}
    assert (
        modules["notes.txt"]["diff"]
        == "--- a/notes.txt\n+++ b/notes.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+three\n"
    )
    assert '-    return new Response("v1"' in modules["index.js"]["diff"]
    assert '+    return new Response("v2"' in modules["index.js"]["diff"]
    assert modules["lib/add.wasm"]["status"] == "removed"
    assert modules["lib/add.wasm"]["size_from"] == len(ADD_WASM)
    assert diff["settings"] == []
    assert (
        check(http.get(t.url(VERSIONS + "/1/diff/9"), headers=t.headers), 404)["type"]
        == PROBLEM + "version-not-found"
    )

    rolled = t.put("/namespaces/prod/plugins/p/active-version", {"version": 1})
    assert rolled["plugin"]["active_version"] == 1
    assert rolled["deployment"]["reason"] == "activated p v1"
    assert via_gateway(gateway.url, host).text == "v1"
    revisions = [d["revision"] for d in t.get("/namespaces/prod/deployments")]
    assert revisions == sorted(revisions, reverse=True)
    assert len(revisions) == 4


@pytest.fixture
async def no_gateway_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    lonely = msgspec.structs.replace(
        settings, gateway=GatewaySettings(urls=(), secret=settings.gateway.secret)
    )
    async with AsyncTestClient(create_app(lonely)) as client:
        yield client


async def test_without_a_gateway_uploads_are_refused_with_503(
    no_gateway_client: AsyncTestClient[Any], admin_token: str, unique: str
) -> None:
    admin = {"authorization": f"Bearer {admin_token}"}
    slug = f"lonely-{unique}"
    await no_gateway_client.post("/v1/tenants", json={"slug": slug, "name": slug}, headers=admin)
    token = (
        await no_gateway_client.post(f"/v1/tenants/{slug}/tokens", json={"name": "t"}, headers=admin)
    ).json()
    auth = {"authorization": f"Bearer {token['token']}"}
    ns = f"/v1/tenants/{slug}/namespaces/prod"
    await no_gateway_client.post(f"/v1/tenants/{slug}/namespaces", json={"name": "prod"}, headers=auth)
    await no_gateway_client.post(f"{ns}/plugins", json={"name": "p"}, headers=auth)
    response = await no_gateway_client.post(
        f"{ns}/plugins/p/versions",
        json={"modules": [{"name": "index.js", "content": plugin_code("x")}]},
        headers=auth,
    )
    assert response.status_code == 503, response.text
    assert response.json()["type"] == PROBLEM + "validation-unavailable"
    assert (await no_gateway_client.get(f"{ns}/plugins/p/versions", headers=auth)).json() == []
