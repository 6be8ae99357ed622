"""Run the gateway locally: one real workerd process serving the generated config (config.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx

from plugyard.gateway import config
from plugyard.gateway.config import LOADER_WORKER_DIR, WORKERD_BIN

__all__ = ["LOADER_WORKER_DIR", "WORKERD_BIN", "GatewayProcess"]


class GatewayProcess:
    """A workerd process running the gateway on a loopback port."""

    def __init__(
        self,
        *,
        port: int,
        storage_dir: Path,
        secret: str,
        host: str = "127.0.0.1",
        log: IO[bytes] | None = None,
        workerd: Path | None = None,
        ingest_url: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Describe the process; `start` launches it.

        `ingest_url` is the control plane's metrics ingest endpoint (PLUGYARD_INGEST_URL);
        without it the gateway collects no metrics or plugin logs. `env`: more environment
        variables for workerd (e.g. PLUGYARD_METRICS_FLUSH_MS), over this process's own.
        """
        self.host = host
        self.port = port
        self.storage_dir = storage_dir
        self.secret = secret
        self.log = log
        self.workerd = workerd or Path(os.environ.get("PLUGYARD_WORKERD_BIN", WORKERD_BIN))
        self.ingest_url = ingest_url
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._config_dir: Path | None = None

    @property
    def url(self) -> str:
        """Base URL of the gateway."""
        return f"http://{self.host}:{self.port}"

    def gateway_config(self) -> config.GatewayConfig:
        """The generated config's settings for this process."""
        return config.GatewayConfig(
            http=config.Listen(address=f"{self.host}:{self.port}"), storage_dir=self.storage_dir
        )

    def command(self) -> list[str]:
        """Write the generated config (to a private temporary folder) and return the command line."""
        if self._config_dir is None:
            self._config_dir = Path(tempfile.mkdtemp(prefix="plugyard-gateway-config-"))
        cfg = self.gateway_config()
        path = config.write(cfg, self._config_dir / "gateway.capnp")
        return config.command(cfg, path, workerd=self.workerd)

    def start(self, *, timeout_s: float = 20.0) -> None:
        """Launch workerd and wait until it answers `/_plugyard/health`.

        Raises:
            FileNotFoundError: workerd is not installed (run `npm ci` in loader_worker/).
            RuntimeError: it exited or did not answer in time.
        """
        if not self.workerd.exists():
            raise FileNotFoundError(f"{self.workerd} is missing: run `npm ci` in {LOADER_WORKER_DIR}")
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "PLUGYARD_GATEWAY_SECRET": self.secret}
        if self.ingest_url:
            env["PLUGYARD_INGEST_URL"] = self.ingest_url
        self.proc = subprocess.Popen(  # noqa: S603 - a fixed command line of our own
            self.command(),
            env=env,
            stdout=self.log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self.log else subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"workerd exited with status {self.proc.returncode} (see its log)")
            try:
                if httpx.get(self.url + "/_plugyard/health", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"workerd did not answer on {self.url} within {timeout_s} s")

    def stop(self, *, grace_s: float = 1.0) -> None:
        """SIGTERM, then SIGKILL after a grace period (workerd may ignore SIGTERM while busy)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._remove_config()

    def kill(self) -> None:
        """SIGKILL at once (fault tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._remove_config()

    def _remove_config(self) -> None:
        if self._config_dir is not None:
            shutil.rmtree(self._config_dir, ignore_errors=True)
            self._config_dir = None
