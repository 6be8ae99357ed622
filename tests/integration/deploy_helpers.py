"""Helpers for the deployment tests: a database of their own, control planes they may kill.

The reconciler compares every namespace of a database with a gateway, so these tests use a
fresh database (not the session's, which other tests fill) and a private gateway.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import asyncpg
import httpx
import msgspec
import pytest
import pytest_asyncio

from plugyard import db
from plugyard.gateway.client import GatewayHealth
from plugyard.gateway.process import GatewayProcess
from plugyard.settings import PROJECT_ROOT
from plugyard.signing import sign
from tests.conftest import OUTPUT, _with_database, free_port


@pytest_asyncio.fixture
async def own_database(server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"plugyard_deploy_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    conn = await db.connect(url)
    try:
        await db.migrate(conn, PROJECT_ROOT / "migrations")
    finally:
        await conn.close()
    yield url
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
def own_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A private gateway (started) with its own storage directory and secret."""
    OUTPUT.mkdir(exist_ok=True)
    with (OUTPUT / "workerd-deploy.log").open("ab") as log:
        proc = GatewayProcess(
            port=free_port(), storage_dir=tmp_path / "gw-storage", secret=secrets.token_hex(16), log=log
        )
        proc.start()
        yield proc
        proc.stop()


class Replica:
    """A `plugyard serve` process in its own process group (granian and its workers die together)."""

    def __init__(self, database_url: str, gateway: GatewayProcess, admin_token: str, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "PLUGYARD_PORT": str(self.port),
            "PLUGYARD_GATEWAY_URLS": gateway.url,
            "PLUGYARD_GATEWAY_SECRET": gateway.secret,
            "PLUGYARD_ADMIN_TOKEN": admin_token,
            "PLUGYARD_RETRY_INTERVAL_S": "0.3",
            "PLUGYARD_GUARDRAIL_INTERVAL_S": "0",
        }
        self.log_path = OUTPUT / f"control-plane-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        OUTPUT.mkdir(exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plugyard", "serve", "--no-migrate"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"control plane exited; see {self.log_path}"
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"control plane did not start; see {self.log_path}")

    def owns(self, pid: int) -> bool:
        """Whether a process belongs to this replica (granian's workers share its group)."""
        assert self.proc is not None
        try:
            return os.getpgid(pid) == self.proc.pid
        except ProcessLookupError:
            return False

    def kill(self) -> None:
        """SIGKILL the whole group: no shutdown hook runs, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 15) -> int | None:
        """SIGTERM (graceful), SIGKILL after `timeout_s`; returns the exit status."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
        return None if self.proc is None else self.proc.returncode


def wait_until(predicate: object, *, timeout_s: float, interval_s: float = 0.05) -> float:
    """Poll `predicate()` until truthy; return the seconds it took (fails the test on timeout)."""
    assert callable(predicate)
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval_s)
    raise AssertionError(f"not true within {timeout_s} s")


def held(gateway: GatewayProcess) -> GatewayHealth:
    """The gateway's signed health: which revision (and epoch) it holds of every namespace."""
    path = "/_plugyard/health"
    response = httpx.get(gateway.url + path, headers=sign(gateway.secret, method="GET", path=path), timeout=5)
    response.raise_for_status()
    return msgspec.json.decode(response.content, type=GatewayHealth)
