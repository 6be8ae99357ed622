"""`plugyard dev` (behind the README's run command) brings the platform up from nothing."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import OUTPUT, free_port

pytestmark = pytest.mark.e2e


def test_dev_starts_everything_and_the_printed_curl_line_reaches_the_demo_plugin(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "PLUGYARD_ADMIN_TOKEN"}}
    env["PLUGYARD_LOG_FORMAT"] = "json"
    OUTPUT.mkdir(exist_ok=True)
    log_path = OUTPUT / "plugyard-dev.log"
    api_port, gateway_port = free_port(), free_port()
    with log_path.open("w+b") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "plugyard",
                "dev",
                "--home",
                str(tmp_path / "home"),
                "--api-port",
                str(api_port),
                "--gateway-port",
                str(gateway_port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            output = ""
            while time.monotonic() < deadline and "Press Ctrl-C to stop." not in output:
                assert proc.poll() is None, log_path.read_text()
                time.sleep(0.2)
                output = log_path.read_text()
            assert "Press Ctrl-C to stop." in output, output
            assert "starting embedded PostgreSQL" in output  # DATABASE_URL was unset
            curl = re.search(r"^\s*(curl .+)$", output, re.M)
            assert curl is not None, output
            result = subprocess.run(shlex.split(curl.group(1)), capture_output=True, text=True, timeout=30)
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("Hello from a Plugyard plugin!"), result.stdout
            assert re.search(r"admin token\s+pyd_", output)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # Ctrl-C stops everything it started: no workerd is left on the gateway port.
        assert proc.returncode == 0, log_path.read_text()
        leftover = subprocess.run(["pgrep", "-f", f"http=127.0.0.1:{gateway_port}"], capture_output=True)
        assert leftover.returncode == 1, "workerd still running after Ctrl-C"
