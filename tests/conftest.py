"""Shared fixtures: a real PostgreSQL, a real workerd gateway, a real control plane.

PostgreSQL comes from DATABASE_URL (a fresh database is created on that server for the run),
else from testcontainers when a Docker engine answers, else from the embedded server.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio

from plugyard import db
from plugyard.gateway.process import GatewayProcess
from plugyard.metrics.schemas import INGEST_PATH
from plugyard.settings import PROJECT_ROOT, DatabaseSettings, GatewaySettings, RateLimitSettings, Settings

OUTPUT = PROJECT_ROOT / "test-output"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server's URL (maintenance database)."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    if _docker_answers():
        try:
            from testcontainers.postgres import PostgresContainer
        except ImportError:
            pass
        else:
            with PostgresContainer("postgres:16-alpine", driver=None) as pg:
                yield pg.get_connection_url()
            return
    from plugyard import embedded_db

    url, server = embedded_db.start(tmp_path_factory.mktemp("pgdata"))
    yield url
    server.cleanup()


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest_asyncio.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test run, dropped afterwards."""
    name = f"plugyard_test_{uuid.uuid4().hex[:10]}"
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


@pytest_asyncio.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(DatabaseSettings(url=database_url, pool_max=5))
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def gateway_secret() -> str:
    return secrets.token_hex(32)


@pytest.fixture(scope="session")
def control_plane_port() -> int:
    """The session control plane's port, chosen before the gateway starts (its ingest URL)."""
    return free_port()


# The suite drives the API from one admin token far faster than the default per-token limit
# (50/s); every control plane it starts (they inherit this environment) and `settings` run
# without limits. tests/security/test_rate_limits.py checks the limits with apps of its own.
NO_RATE_LIMITS = {"PLUGYARD_RATE_LIMIT_PER_S": "0", "PLUGYARD_RATE_LIMIT_CLIENT_PER_S": "0"}
for _name, _value in NO_RATE_LIMITS.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, gateway_secret: str, control_plane_port: int
) -> Iterator[GatewayProcess]:
    """A real workerd running the gateway for the whole session (metrics go to `control_plane`)."""
    # Tests' egress targets are loopback servers (docs/operations.md, "Egress"); gateways read it.
    os.environ.setdefault("PLUGYARD_EGRESS_PRIVATE", "1")
    OUTPUT.mkdir(exist_ok=True)
    with (OUTPUT / "workerd-session.log").open("wb") as log:
        proc = GatewayProcess(
            port=free_port(),
            storage_dir=tmp_path_factory.mktemp("gateway"),
            secret=gateway_secret,
            log=log,
            ingest_url=f"http://127.0.0.1:{control_plane_port}{INGEST_PATH}",
        )
        proc.start()
        yield proc
        proc.stop()


@pytest.fixture(scope="session")
def admin_token() -> str:
    return "pyd_admin_" + secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def secrets_key() -> str:
    """PLUGYARD_SECRETS_KEY for the session (base64 of 32 random bytes)."""
    import base64

    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def settings(
    database_url: str, gateway: GatewayProcess, gateway_secret: str, admin_token: str, secrets_key: str
) -> Settings:
    return Settings(
        database=DatabaseSettings(url=database_url, pool_max=5),
        gateway=GatewaySettings(urls=(gateway.url,), secret=gateway_secret, push_timeout_s=5.0),
        admin_token=admin_token,
        retry_pushes=False,
        secrets_key=secrets_key,
        rate_limit=RateLimitSettings(per_s=0, client_per_s=0),
    )


class ControlPlane:
    """A `plugyard serve` subprocess on a loopback port."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path, *, migrate: bool = False) -> None:
        self.env = {**env, "PLUGYARD_PORT": str(port)}
        self.args = ["serve"] if migrate else ["serve", "--no-migrate"]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plugyard", *self.args],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
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
        raise RuntimeError("control plane did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


@pytest.fixture(scope="session")
def control_plane(
    database_url: str,
    gateway: GatewayProcess,
    gateway_secret: str,
    admin_token: str,
    control_plane_port: int,
    secrets_key: str,
) -> Iterator[ControlPlane]:
    """The real control plane, served by granian, pushing to the session's gateway."""
    OUTPUT.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PLUGYARD_GATEWAY_URLS": gateway.url,
        "PLUGYARD_GATEWAY_SECRET": gateway_secret,
        "PLUGYARD_ADMIN_TOKEN": admin_token,
        "PLUGYARD_RETRY_INTERVAL_S": "0.5",
        "PLUGYARD_SECRETS_KEY": secrets_key,
        "PLUGYARD_PREVIEW_URL": "http://{host}:" + str(gateway.port) + "/",
    }
    cp = ControlPlane(env, control_plane_port, OUTPUT / "control-plane-session.log")
    cp.start()
    yield cp
    cp.stop()


@pytest.fixture
def unique() -> str:
    """A short random suffix: tests share one gateway, so names and hosts must not collide."""
    return uuid.uuid4().hex[:8]
