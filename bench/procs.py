"""The processes a benchmark run starts: a throwaway database, workerd, granian apps.

Everything listens on free loopback ports and is stopped by `Stack.close` (workerd: SIGTERM,
then SIGKILL after 1 s, as it may ignore SIGTERM while busy).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from plugyard import db
from plugyard.gateway.process import WORKERD_BIN
from plugyard.settings import PROJECT_ROOT

FLOORS = Path(__file__).resolve().parent / "floors"
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], *, timeout_s: float = 30.0) -> None:
    """Poll `url` until it answers below 500; raise if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with status {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def stop_process(proc: subprocess.Popen[bytes] | None, *, grace_s: float = 1.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def workerd_version() -> str:
    """`workerd --version` of the pinned binary."""
    out = subprocess.run([str(WORKERD_BIN), "--version"], capture_output=True, text=True, timeout=10)
    return out.stdout.strip() or out.stderr.strip()


class Workerd:
    """A workerd process serving one of the floor configs under bench/floors/."""

    def __init__(
        self, config: str, log: IO[bytes], *, experimental: bool = False, binary: Path | None = None
    ) -> None:
        """Describe the process (`binary`: another executable than WORKERD_BIN); `start` launches it."""
        self.binary = binary or WORKERD_BIN
        self.config = FLOORS / config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.experimental = experimental
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout_s: float = 20.0) -> Workerd:
        """Launch and wait until it answers."""
        cmd = [str(self.binary), "serve", str(self.config), "--socket-addr", f"http=127.0.0.1:{self.port}"]
        if self.experimental:
            cmd.append("--experimental")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(self.url + "/", self.proc, timeout_s=timeout_s)
        return self

    def stop(self, *, grace_s: float = 1.0) -> None:
        """SIGTERM, SIGKILL after `grace_s`."""
        stop_process(self.proc, grace_s=grace_s)


class PythonServer:
    """A Python module run as a server subprocess (`plugyard serve`, the Litestar floor)."""

    def __init__(
        self, args: list[str], env: dict[str, str], log: IO[bytes], health: str, *, port: int | None = None
    ) -> None:
        """Describe the process (on `port`, else a free one); `start` launches it."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.env = {**env, "PLUGYARD_PORT": str(self.port), "BENCH_PORT": str(self.port)}
        self.log = log
        self.health = health
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PythonServer:
        """Launch and wait until the health path answers."""
        self.proc = subprocess.Popen(
            [sys.executable, *self.args],
            env=self.env,
            cwd=PROJECT_ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(self.url + self.health, self.proc, timeout_s=40)
        return self

    def stop(self) -> None:
        """SIGTERM (granian shuts down gracefully), SIGKILL after 5 s."""
        stop_process(self.proc, grace_s=5.0)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


class Database:
    """A throwaway, migrated database on the given server, dropped by `drop`."""

    def __init__(self, server_url: str) -> None:
        """Pick a unique name; `create` makes it."""
        self.server_url = server_url
        self.name = f"plugyard_bench_{uuid.uuid4().hex[:10]}"
        self.url = _with_database(server_url, self.name)

    def create(self) -> Database:
        """Create the database and apply the migrations."""

        async def go() -> None:
            admin = await asyncpg.connect(self.server_url)
            try:
                await admin.execute(f'CREATE DATABASE "{self.name}"')
            finally:
                await admin.close()
            conn = await db.connect(self.url)
            try:
                await db.migrate(conn, PROJECT_ROOT / "migrations")
            finally:
                await conn.close()

        asyncio.run(go())
        return self

    def drop(self) -> None:
        """Drop the database (forcing out any connection left)."""

        async def go() -> None:
            admin = await asyncpg.connect(self.server_url)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            finally:
                await admin.close()

        asyncio.run(go())


def server_url() -> str:
    """The PostgreSQL server to create the throwaway database on."""
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or DEFAULT_SERVER_URL
