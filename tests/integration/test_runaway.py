"""Runaway containment: a `while(true)` plugin hangs one workerd process; the pool recovers and
quarantines the version (in the gateway at once, and in the control plane for the tenant)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from plugyard.gateway.supervisor import Supervisor
from tests.conftest import OUTPUT, ControlPlane, free_port
from tests.integration.helpers import Tenant
from tests.integration.pool_helpers import Traffic, push, running_pool, text_plugin, wait_served, wait_until

pytestmark = pytest.mark.e2e
PROBLEM = "https://plugyard.dev/problems/"
LOOP = """\
export default {
  async fetch(request) {
    if (new URL(request.url).pathname === "/loop") { while (true) {} }
    return new Response("alive");
  },
};
"""


@pytest.fixture(scope="module")
def pool_and_api(
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    gateway_secret: str,
    admin_token: str,
    secrets_key: str,
) -> Iterator[tuple[Supervisor, ControlPlane]]:
    """A K=2 pool and a control plane that pushes to it and receives its quarantine reports."""
    port = free_port()
    with running_pool(
        tmp_path_factory.mktemp("runaway"),
        gateway_secret,
        processes=2,
        control_plane_url=f"http://127.0.0.1:{port}",
    ) as pool:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "PLUGYARD_GATEWAY_URLS": pool.url,
            "PLUGYARD_GATEWAY_SECRET": gateway_secret,
            "PLUGYARD_ADMIN_TOKEN": admin_token,
            "PLUGYARD_SECRETS_KEY": secrets_key,
            "PLUGYARD_RETRY_INTERVAL_S": "0.5",
        }
        OUTPUT.mkdir(exist_ok=True)
        api = ControlPlane(env, port, OUTPUT / "control-plane-runaway.log")
        api.start()
        try:
            yield pool, api
        finally:
            api.stop()


def _loop_in_background(url: str, host: str) -> threading.Thread:
    def hit() -> None:
        # Its process is killed: the connection drops.
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url + "/loop", headers={"host": host}, timeout=20)

    thread = threading.Thread(target=hit, daemon=True)
    thread.start()
    return thread


def test_a_hanging_plugin_is_contained_and_quarantined_for_the_tenant(
    pool_and_api: tuple[Supervisor, ControlPlane], admin_token: str, unique: str
) -> None:
    pool, api = pool_and_api
    with httpx.Client(base_url=api.url, timeout=30) as http:
        looper = Tenant(http, admin_token, f"looper-{unique}")
        calm = Tenant(http, admin_token, f"calm-{unique}")
        loop_host, calm_host = f"loop.{unique}.test", f"calm.{unique}.test"
        looper.plugin_with_route(namespace="prod", plugin="spin", code=LOOP, pattern=f"{loop_host}/*")
        calm.plugin_with_route(
            namespace="prod", plugin="steady", code=text_plugin("calm"), pattern=f"{calm_host}/*"
        )
        wait_served(pool, calm_host, "calm")
        wait_served(pool, loop_host, "alive")
        assert looper.get("/namespaces/prod/plugins/spin/status") == {
            "status": "serving",
            "version": 1,
            "reason": None,
        }

        with Traffic(pool.url, calm_host, threads=3, keepalive=True, pause_s=0.02) as traffic:
            time.sleep(0.5)
            hang_started = time.monotonic()
            loop = _loop_in_background(pool.url, loop_host)
            wait_until(lambda: any(e["event"] == "hung" for e in pool.events), 10, "the hang detected")
            time.sleep(max(0.0, hang_started + 11 - time.monotonic()))
        loop.join(timeout=20)

        # Other tenants: every request that failed or was slow ended within 10 s of the hang.
        troubled = [r for r in traffic.results if r[2] != 200 or r[1] - r[0] > 0.5]
        recovered_after = max((end - hang_started for _, end, *_ in troubled), default=0.0)
        assert recovered_after < 10, troubled
        late = [r for r in traffic.results if r[0] > hang_started + 10]
        assert late
        assert all(r[2] == 200 for r in late)
        print(f"hang: {len(troubled)} calm requests failed or slow; recovered {recovered_after:.2f} s after")

        # The version is quarantined: API, status, and the gateway answers 503 at once.
        wait_until(
            lambda: looper.get("/namespaces/prod/plugins/spin/status")["status"] == "quarantined",
            10,
            "quarantine",
        )
        status = looper.get("/namespaces/prod/plugins/spin/status")
        assert "hung gateway process" in status["reason"]
        [listed] = looper.get("/quarantines")
        assert (listed["status"], listed["plugin"], listed["version"]) == ("quarantined", "spin", 1)
        assert calm.get("/quarantines") == []
        started = time.monotonic()
        again = httpx.get(pool.url + "/loop", headers={"host": loop_host}, timeout=5)
        assert time.monotonic() - started < 1.0
        assert again.status_code == 503
        assert again.json()["type"] == PROBLEM + "plugin-quarantined"
        assert [e["event"] for e in pool.events].count("hung") == 1

        # Another tenant cannot see or release it; the owner can.
        res = http.post(looper.url("/namespaces/prod/plugins/spin/versions/1/release"), headers=calm.headers)
        assert res.status_code == 404
        released = looper.post("/namespaces/prod/plugins/spin/versions/1/release", None, 200)
        assert released["status"] == "serving"
        wait_until(
            lambda: httpx.get(pool.url + "/", headers={"host": loop_host}).text == "alive",
            5,
            "released version served",
        )
        assert looper.get("/quarantines") == []
        assert looper.get("/quarantines?released=true")[0]["status"] == "released"


def test_without_the_control_plane_the_gateway_quarantines_by_itself(
    tmp_path: Path, gateway_secret: str
) -> None:
    with running_pool(tmp_path, gateway_secret, processes=1) as pool:
        push(pool.url, gateway_secret, "alone", 1, {"spin": ("alone.loop.test", LOOP)})
        assert httpx.get(pool.url + "/", headers={"host": "alone.loop.test"}, timeout=5).text == "alive"
        hang_started = time.monotonic()
        _loop_in_background(pool.url, "alone.loop.test")
        # K=1: nothing answers until the replacement is up; it must be well within 10 s.
        wait_until(lambda: any(e["event"] == "hung" for e in pool.events), 10, "the hang detected")
        wait_until(lambda: len(pool.members) == 1 and pool.members[0].state == "ready", 10, "a replacement")

        def quarantined() -> bool:
            r = httpx.get(pool.url + "/loop", headers={"host": "alone.loop.test"}, timeout=5)
            return r.status_code == 503 and r.json()["type"] == PROBLEM + "plugin-quarantined"

        wait_until(quarantined, 5, "the gateway-local quarantine")
        assert time.monotonic() - hang_started < 10
        assert [e["event"] for e in pool.events].count("hung") == 1
