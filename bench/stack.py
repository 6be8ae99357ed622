"""What one run holds: the database, the gateway, the control plane and the floor servers."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Any

import httpx

from bench.procs import Database, PythonServer, Workerd, free_port, server_url
from plugyard.gateway.process import GatewayProcess
from plugyard.metrics.schemas import INGEST_PATH


class Stack:
    """Started lazily, stopped together by `close` (reverse order of start)."""

    def __init__(self, workdir: Path) -> None:
        """Hold state under `workdir` (logs, gateway storage)."""
        self.workdir = workdir
        self.secret = secrets.token_hex(32)
        self.admin_token = "pyd_admin_" + secrets.token_urlsafe(24)
        self._stops: list[Any] = []
        self._logs: list[IO[bytes]] = []
        self._cache: dict[str, Any] = {}
        # Chosen up front: the gateway needs the control plane's ingest URL and the control
        # plane the gateway's URL, whichever starts first.
        self.control_plane_port = free_port()

    def log(self, name: str) -> IO[bytes]:
        """An open log file under the work dir."""
        f = (self.workdir / f"{name}.log").open("ab")
        self._logs.append(f)
        return f

    def _once(self, key: str, make: Any) -> Any:
        if key not in self._cache:
            value = make()
            self._cache[key] = value
        return self._cache[key]

    @property
    def database(self) -> Database:
        """The run's throwaway, migrated database."""

        def make() -> Database:
            database = Database(server_url()).create()
            self._stops.append(database.drop)
            return database

        result: Database = self._once("db", make)
        return result

    def gateway(self, name: str = "gateway", *, metrics: bool = True) -> GatewayProcess:
        """A real gateway workerd (the generated config, plugyard/gateway/config.py) with its own storage.

        With `metrics` (as deployed) it sends metrics and plugin logs to the run's control plane:
        every plugin isolate captures its console output and exceptions and every request is counted.
        """

        def make() -> GatewayProcess:
            proc = GatewayProcess(
                port=free_port(),
                storage_dir=self.workdir / name,
                secret=self.secret,
                log=self.log(name),
                ingest_url=f"http://127.0.0.1:{self.control_plane_port}{INGEST_PATH}" if metrics else None,
            )
            proc.start()
            self._stops.append(proc.stop)
            return proc

        result: GatewayProcess = self._once(name, make)
        return result

    def floor(self, config: str) -> Workerd:
        """A floor workerd from bench/floors/ (`plain.capnp`, `front.capnp`)."""

        def make() -> Workerd:
            proc = Workerd(config, self.log(config), experimental=config == "front.capnp").start()
            self._stops.append(proc.stop)
            return proc

        result: Workerd = self._once(config, make)
        return result

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database.url,
            "PLUGYARD_GATEWAY_URLS": self.gateway().url,
            "PLUGYARD_GATEWAY_SECRET": self.secret,
            "PLUGYARD_ADMIN_TOKEN": self.admin_token,
            "PLUGYARD_LOG_FORMAT": "json",
            # Throughput is measured with one token: the per-token API rate limit would cap it.
            "PLUGYARD_RATE_LIMIT_PER_S": "0",
        }

    @property
    def control_plane(self) -> PythonServer:
        """`python -m plugyard serve` (granian, one worker) on the run's database and gateway."""

        def make() -> PythonServer:
            args = ["-m", "plugyard", "serve", "--no-migrate"]
            server = PythonServer(
                args, self._env(), self.log("control-plane"), "/healthz", port=self.control_plane_port
            ).start()
            self._stops.append(server.stop)
            return server

        result: PythonServer = self._once("cp", make)
        return result

    @property
    def litestar_floor(self) -> PythonServer:
        """The bare Litestar + asyncpg floor app under the same granian settings."""

        def make() -> PythonServer:
            args = ["-m", "bench.floors.litestar_floor"]
            server = PythonServer(args, self._env(), self.log("litestar-floor"), "/plain").start()
            self._stops.append(server.stop)
            return server

        result: PythonServer = self._once("litestar", make)
        return result

    def api(self) -> httpx.Client:
        """An HTTP client on the control plane."""
        return httpx.Client(base_url=self.control_plane.url, timeout=30)

    def close(self) -> None:
        """Stop everything that was started, newest first; never raises."""
        for stop in reversed(self._stops):
            with contextlib.suppress(Exception):
                stop()
        for f in self._logs:
            f.close()


def check(response: httpx.Response) -> Any:
    """The JSON body of a successful API answer.

    Raises:
        RuntimeError: the API answered an error.
    """
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.text[:300]}")
    return response.json() if response.content else None


def make_tenant(api: httpx.Client, admin_token: str, slug: str) -> dict[str, str]:
    """Create a tenant and a token through the public API; returns its auth headers."""
    admin = {"authorization": f"Bearer {admin_token}"}
    check(api.post("/v1/tenants", json={"slug": slug, "name": slug}, headers=admin))
    token = check(api.post(f"/v1/tenants/{slug}/tokens", json={"name": "bench"}, headers=admin))["token"]
    return {"authorization": f"Bearer {token}"}


def plugin_with_route(
    api: httpx.Client, headers: dict[str, str], tenant: str, plugin: str, code: str, pattern: str
) -> None:
    """Namespace `prod` (if new) + plugin + active version + route, through the public API."""
    base = f"/v1/tenants/{tenant}/namespaces"
    response = api.post(base, json={"name": "prod"}, headers=headers)
    if response.status_code != 409:
        check(response)
    check(api.post(f"{base}/prod/plugins", json={"name": plugin}, headers=headers))
    version = {"modules": [{"name": "index.js", "content": code}], "activate": True}
    check(api.post(f"{base}/prod/plugins/{plugin}/versions", json=version, headers=headers))
    check(api.post(f"{base}/prod/routes", json={"pattern": pattern, "plugin": plugin}, headers=headers))
