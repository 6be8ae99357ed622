"""`plugyard doctor` names a wrong signing secret and an unreachable gateway, with the fix."""

from __future__ import annotations

import os
import subprocess
import sys

from plugyard.gateway.process import GatewayProcess
from tests.conftest import free_port


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugyard", "doctor"],
        env={**os.environ, "PLUGYARD_RETRY_PUSHES": "0", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_doctor_reports_a_wrong_secret_and_an_unreachable_gateway(
    database_url: str, gateway: GatewayProcess
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    result = doctor(
        {
            "DATABASE_URL": database_url,
            "PLUGYARD_GATEWAY_URLS": f"{gateway.url},{nobody}",
            "PLUGYARD_GATEWAY_SECRET": "not-the-gateways-secret",
        }
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "ok    database: PostgreSQL at" in out
    assert "ok    migrations: all" in out
    assert (
        f"FAIL  gateway {gateway.url}: rejected our signed ping: the signing secret differs between "
        "the control plane and this gateway" in out
    )
    assert "fix: give both the same secret: PLUGYARD_GATEWAY_SECRET" in out
    assert f"FAIL  gateway {nobody}: {nobody} is unreachable (ConnectError" in out
    assert "fix: start the gateway (systemctl start plugyard-gateway, or plugyard dev)" in out
    assert "2 problem(s) found" in out
    assert "not-the-gateways-secret" not in out


def test_doctor_passes_on_a_healthy_setup_and_names_a_missing_database(
    database_url: str, gateway: GatewayProcess, gateway_secret: str
) -> None:
    good = doctor(
        {
            "DATABASE_URL": database_url,
            "PLUGYARD_GATEWAY_URLS": gateway.url,
            "PLUGYARD_GATEWAY_SECRET": gateway_secret,
        }
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"ok    gateway {gateway.url}: signed ping accepted" in good.stdout
    assert "ok    workerd: " in good.stdout
    assert good.stdout.rstrip().endswith("no problems found")

    down = doctor(
        {
            "DATABASE_URL": f"postgresql://nobody:hunter2@127.0.0.1:{free_port()}/nowhere",
            "PLUGYARD_GATEWAY_URLS": gateway.url,
            "PLUGYARD_GATEWAY_SECRET": gateway_secret,
        }
    )
    assert down.returncode == 1
    assert "FAIL  database: cannot connect to PostgreSQL at 127.0.0.1:" in down.stdout
    assert "fix: check DATABASE_URL" in down.stdout
    assert "hunter2" not in down.stdout
