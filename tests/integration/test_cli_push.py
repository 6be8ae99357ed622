"""`plugyard plugins push DIR` as a subprocess against the real control plane."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from plugyard.gateway.process import GatewayProcess
from tests.conftest import ControlPlane
from tests.integration.bundle_helpers import ADD_WASM, INDEX_JS, MUST_SHOW_OUTPUT
from tests.integration.helpers import Tenant, via_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def push(control_plane: ControlPlane, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PLUGYARD_API_URL": control_plane.url, "PLUGYARD_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "plugyard", "plugins", "push", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_push_uploads_a_folder_and_reports_failures(
    http: httpx.Client,
    control_plane: ControlPlane,
    admin_token: str,
    gateway: GatewayProcess,
    unique: str,
    tmp_path: Path,
) -> None:
    t = Tenant(http, admin_token, f"cli-{unique}")
    t.post("/namespaces", {"name": "prod"}, 201)
    t.post("/namespaces/prod/plugins", {"name": "p"}, 201)
    host = f"cli.{unique}.test"
    t.post("/namespaces/prod/routes", {"pattern": f"{host}/*", "plugin": "p"}, 201)
    folder = tmp_path / "bundle"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "worker.mjs").write_text(INDEX_JS)
    (folder / "src" / "config.json").write_text('{"name": "Plugyard", "a": 2, "b": 40}')
    (folder / "src" / "greeting.txt").write_text("Hello\n")
    (folder / "src" / "add.wasm").write_bytes(ADD_WASM)

    done = push(
        control_plane, t.token, str(folder / "src"), f"{t.slug}/prod/p", "--main", "worker.mjs", "--activate"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "version 1 created"
    hash_ = t.get("/namespaces/prod/plugins/p/versions/1")["hash"]
    assert lines[1] == f"  hash {hash_}"
    assert "deployment revision" in lines[2]
    assert "pushed to 1 of 1 gateway(s)" in lines[2]
    assert via_gateway(gateway.url, host).text == MUST_SHOW_OUTPUT
    modules = t.get("/namespaces/prod/plugins/p/versions/1")["modules"]
    assert modules == ["add.wasm", "config.json", "greeting.txt", "worker.mjs"]

    again = push(
        control_plane,
        t.token,
        str(folder / "src"),
        "--tenant",
        t.slug,
        "--namespace",
        "prod",
        "--plugin",
        "p",
        "--main",
        "worker.mjs",
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("version 1 already stored")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "index.js").write_text("export default { fetch() { return new Response('x' } }")
    failed = push(control_plane, t.token, str(broken), f"{t.slug}/prod/p")
    assert failed.returncode == 1
    assert "HTTP 422" in failed.stderr
    assert "SyntaxError" in failed.stderr
    assert "(module index.js)" in failed.stderr
    assert [v["number"] for v in t.get("/namespaces/prod/plugins/p/versions")] == [1]

    unauthorised = push(control_plane, "pyd_nope", str(broken), f"{t.slug}/prod/p")
    assert unauthorised.returncode == 1
    assert "HTTP 401" in unauthorised.stderr
    usage = push(control_plane, t.token, str(broken), "just-a-name")
    assert usage.returncode == 2
    assert "TENANT/NAMESPACE/PLUGIN" in usage.stderr
