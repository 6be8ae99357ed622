"""The README's five-minute tour runs as written against the real platform."""

from __future__ import annotations

import re
import subprocess

import pytest

from plugyard.gateway.process import GatewayProcess
from plugyard.settings import PROJECT_ROOT
from tests.conftest import ControlPlane

pytestmark = pytest.mark.e2e


def test_readme_tour(control_plane: ControlPlane, gateway: GatewayProcess, admin_token: str) -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    tour = readme.split("## Five-minute tour", 1)[1]
    script = re.search(r"```sh\n(.*?)```", tour, re.S)
    assert script is not None
    lines = script.group(1).splitlines()
    assert lines[0].startswith("API=")
    lines[0] = f"API={control_plane.url} GW={gateway.url} ADMIN={admin_token}"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(lines)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    served = re.findall(r"Hi v\d", result.stdout)
    assert served == ["Hi v1", "Hi v2", "Hi v1"], result.stdout
    assert '"revision":4' in result.stdout
