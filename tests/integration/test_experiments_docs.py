"""docs/experiments.md's walkthrough runs as written (curl and the plugyard CLI) against the real platform."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from plugyard.gateway.process import GatewayProcess
from plugyard.settings import PROJECT_ROOT
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant

pytestmark = pytest.mark.e2e


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def test_walkthrough(
    http: httpx.Client, control_plane: ControlPlane, gateway: GatewayProcess, admin_token: str, unique: str
) -> None:
    t = Tenant(http, admin_token, f"doc-{unique}")
    doc = (PROJECT_ROOT / "docs" / "experiments.md").read_text()
    section = doc.split("## Walkthrough", 1)[1]
    script = re.search(r"```sh\n(.*?)```", section, re.S)
    assert script is not None
    lines = script.group(1).splitlines()
    assert lines[0].startswith("API=")
    lines[0] = f"API={control_plane.url} GW={gateway.url} T={t.slug} TOKEN={t.token}"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(
        r"set-cookie: plugyard_vid=[0-9a-f-]+; Path=/; Max-Age=\d+; HttpOnly; SameSite=Lax", out, re.I
    )
    assert re.search(r"x-plugyard-variant: (control|treatment)", out, re.I)
    assert "/new-phase-required" in out
    assert '"state": "paused"' in out
    assert '"winner": "treatment"' in out
    assert '"sample_ratio"' in out
    assert out.rstrip().endswith("v2")
