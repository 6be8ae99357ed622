"""`plugyard dev`: PostgreSQL (embedded unless DATABASE_URL), migrations, workerd, the API, a demo tenant.

Everything runs on loopback ports; Ctrl-C stops it all.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from plugyard import db, embedded_db
from plugyard.gateway.supervisor import PoolSettings, Supervisor
from plugyard.metrics.schemas import INGEST_PATH
from plugyard.settings import PROJECT_ROOT

DEMO_TENANT = "demo"
DEMO_NAMESPACE = "production"
DEMO_PLUGIN = "hello"
DEMO_HOST = "hello.demo.localhost"
DEMO_CODE = """\
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    return new Response(`${env.GREETING} from a Plugyard plugin! You asked for ${url.pathname}\\n`, {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  },
};
"""


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the control plane exited with status {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def _ok(response: httpx.Response, *also: int) -> dict[str, Any]:
    if response.status_code >= 400 and response.status_code not in also:
        raise RuntimeError(
            f"seeding failed: {response.request.method} {response.request.url}: {response.text}"
        )
    body: dict[str, Any] = response.json() if response.content else {}
    return body


def seed_demo(api: str, admin_token: str) -> str:
    """Create (or reuse) the demo tenant with a working plugin and route, through the public API.

    Returns:
        A fresh API token of the demo tenant.
    """
    with httpx.Client(base_url=api, timeout=30) as http:
        admin = {"authorization": f"Bearer {admin_token}"}
        _ok(http.post("/v1/tenants", json={"slug": DEMO_TENANT, "name": "Demo tenant"}, headers=admin), 409)
        token = _ok(
            http.post(f"/v1/tenants/{DEMO_TENANT}/tokens", json={"name": "plugyard dev"}, headers=admin)
        )
        auth = {"authorization": f"Bearer {token['token']}"}
        base = f"/v1/tenants/{DEMO_TENANT}/namespaces"
        _ok(http.post(base, json={"name": DEMO_NAMESPACE}, headers=auth), 409)
        plugins = f"{base}/{DEMO_NAMESPACE}/plugins"
        _ok(http.post(plugins, json={"name": DEMO_PLUGIN, "vars": {"GREETING": "Hello"}}, headers=auth), 409)
        version = {"modules": [{"name": "index.js", "content": DEMO_CODE}], "activate": True}
        _ok(http.post(f"{plugins}/{DEMO_PLUGIN}/versions", json=version, headers=auth))
        route = {"pattern": f"{DEMO_HOST}/*", "plugin": DEMO_PLUGIN}
        _ok(http.post(f"{base}/{DEMO_NAMESPACE}/routes", json=route, headers=auth), 409)
        return str(token["token"])


def _secrets_key(home_dir: Path) -> str:
    """PLUGYARD_SECRETS_KEY, else a key kept in `{home}/secrets.key` (0600) so restarts still decrypt."""
    if key := os.environ.get("PLUGYARD_SECRETS_KEY"):
        return key
    path = home_dir / "secrets.key"
    if not path.exists():
        from plugyard.vault.sealing import generate_key

        path.touch(mode=0o600)
        path.write_text(generate_key())
    return path.read_text().strip()


def run(*, api_port: int, gateway_port: int, home: str, gateway_processes: int | None = None) -> int:
    """Start everything, print how to use it, and wait for Ctrl-C."""
    home_dir = Path(home).resolve()
    home_dir.mkdir(parents=True, exist_ok=True)
    database_url = os.environ.get("DATABASE_URL")
    server = None
    if not database_url:
        print(f"starting embedded PostgreSQL in {home_dir / 'pgdata'} ...", flush=True)
        database_url, server = embedded_db.start(home_dir / "pgdata")

    async def migrate() -> None:
        conn = await db.connect(database_url)
        try:
            await db.migrate(conn, PROJECT_ROOT / "migrations")
        finally:
            await conn.close()

    asyncio.run(migrate())
    secret = os.environ.get("PLUGYARD_GATEWAY_SECRET") or secrets.token_hex(32)
    admin_token = os.environ.get("PLUGYARD_ADMIN_TOKEN") or "pyd_admin_" + secrets.token_urlsafe(24)
    gateway_log = (home_dir / "workerd.log").open("ab")
    # The supervised pool (docs/operations.md, "Gateway pool"): K workerd processes on one socket.
    pool = PoolSettings.from_env()
    pool = msgspec.structs.replace(
        pool, listen=f"127.0.0.1:{gateway_port}", processes=gateway_processes or pool.processes
    )
    gateway = Supervisor(
        pool,
        storage_dir=home_dir / "gateway-storage",
        secret=secret,
        log_file=gateway_log,
        env={"PLUGYARD_INGEST_URL": f"http://127.0.0.1:{api_port}{INGEST_PATH}"},
        control_plane_url=f"http://127.0.0.1:{api_port}",
    )
    (home_dir / "gateway-storage").mkdir(parents=True, exist_ok=True)
    print(f"starting workerd ({pool.processes} processes) on 127.0.0.1:{gateway_port} ...", flush=True)
    gateway.start()
    env = {
        **os.environ,
        "PLUGYARD_SECRETS_KEY": _secrets_key(home_dir),
        "PLUGYARD_PREVIEW_URL": os.environ.get("PLUGYARD_PREVIEW_URL", f"http://{{host}}:{gateway_port}/"),
        "DATABASE_URL": database_url,
        "PLUGYARD_GATEWAY_URLS": gateway.url,
        "PLUGYARD_GATEWAY_SECRET": secret,
        "PLUGYARD_ADMIN_TOKEN": admin_token,
        "PLUGYARD_PORT": str(api_port),
        "PLUGYARD_LOG_FORMAT": os.environ.get("PLUGYARD_LOG_FORMAT", "console"),
    }
    api = f"http://127.0.0.1:{api_port}"
    print(f"starting the control plane on {api} ...", flush=True)
    control = subprocess.Popen(
        [sys.executable, "-m", "plugyard", "serve", "--no-migrate"], env=env, start_new_session=True
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        _wait_http(api + "/healthz", control)
        demo_token = seed_demo(api, admin_token)
        print(
            "\n"
            "Plugyard is running.\n"
            f"  control plane  {api}   (OpenAPI: {api}/schema)\n"
            f"  gateway        {gateway.url}\n"
            f"  admin token    {admin_token}\n"
            f"  demo tenant    {DEMO_TENANT} (token {demo_token})\n"
            "\n"
            "Try the demo plugin through workerd:\n"
            f"  curl -H 'Host: {DEMO_HOST}' {gateway.url}/\n"
            "\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping and control.poll() is None and gateway.alive():
            time.sleep(0.2)
        if not stopping:
            print("a component exited; stopping", file=sys.stderr, flush=True)
            return 1
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        print("stopping ...", flush=True)
        if control.poll() is None:
            control.send_signal(signal.SIGINT)
            try:
                control.wait(timeout=5)
            except subprocess.TimeoutExpired:
                control.kill()
        gateway.stop()
        gateway_log.close()
        if server is not None:
            server.cleanup()
