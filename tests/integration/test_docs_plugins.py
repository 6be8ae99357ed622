"""docs/plugins.md: the examples it shows are the ones that run here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from plugyard.gateway.process import GatewayProcess
from plugyard.settings import PROJECT_ROOT
from tests.conftest import ControlPlane
from tests.integration.bundle_helpers import ADD_WASM
from tests.integration.helpers import Tenant, via_gateway
from tests.integration.test_cli_push import push

pytestmark = pytest.mark.e2e
DOC = PROJECT_ROOT / "docs" / "plugins.md"
_BLOCK = re.compile(r"<!-- (example-[a-z-]+)(?:: (\S+))? -->\n```[a-z]*\n(.*?)```", re.S)


def examples() -> list[tuple[str, str | None, str]]:
    return [(m[1], m[2], m[3]) for m in _BLOCK.finditer(DOC.read_text())]


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def test_the_guide_links_templates_and_documents_the_settings() -> None:
    text = DOC.read_text()
    for needle in [
        "templates.md",
        "PLUGYARD_SECRETS_KEY",
        "PLUGYARD_MAX_BUNDLE_BYTES",
        "PLUGYARD_PREVIEW_DOMAIN",
    ]:
        assert needle in text
    assert {kind for kind, _, _ in examples()} == {"example-file", "example-output", "example-secret-plugin"}


def test_the_first_bundle_example_runs_as_documented(
    http: httpx.Client,
    control_plane: ControlPlane,
    admin_token: str,
    gateway: GatewayProcess,
    unique: str,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "hello"
    folder.mkdir()
    output = None
    for kind, name, body in examples():
        if kind == "example-file":
            assert name is not None
            (folder / name).write_text(body)
        elif kind == "example-output":
            output = body.strip()
    (folder / "add.wasm").write_bytes(ADD_WASM)
    t = Tenant(http, admin_token, f"doc-{unique}")
    t.post("/namespaces", {"name": "production"}, 201)
    t.post("/namespaces/production/plugins", {"name": "hello"}, 201)
    host = f"shop.{unique}.test"
    t.post("/namespaces/production/routes", {"pattern": f"{host}/*", "plugin": "hello"}, 201)
    done = push(control_plane, t.token, str(folder), f"{t.slug}/production/hello", "--activate")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("version 1 created")
    assert t.get("/namespaces/production/plugins/hello/versions/1")["limits"] == {
        "cpu_ms": 50,
        "subrequests": 10,
    }
    assert via_gateway(gateway.url, host).text == output


def test_the_secret_example_runs_as_documented(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    code = next(body for kind, _, body in examples() if kind == "example-secret-plugin")
    t = Tenant(http, admin_token, f"docsec-{unique}")
    host = f"shop.{unique}.test"
    t.plugin_with_route(namespace="production", plugin="hello", code=code, pattern=f"{host}/*")
    t.put("/namespaces/production/plugins/hello/secrets/API_KEY", {"value": "s3cr3t"})
    welcome = via_gateway(gateway.url, host, headers={"authorization": "Bearer s3cr3t"})
    assert (welcome.status_code, welcome.text) == (200, "welcome")
    assert via_gateway(gateway.url, host).status_code == 401
