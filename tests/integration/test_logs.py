"""Plugin logs: console lines and exceptions reach the log API (masked), per tenant, bounded."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from plugyard import signing
from plugyard.gateway.process import GatewayProcess
from plugyard.metrics.schemas import INGEST_PATH
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant, via_gateway
from tests.integration.test_metrics import wait_for

pytestmark = pytest.mark.e2e

API_KEY = "sk_live_" + uuid.uuid4().hex
LOGGING_PLUGIN = """
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    console.log("order", url.searchParams.get("n"), "charged with", env.API_KEY);
    if (url.pathname === "/throw") {
      throw new TypeError("checkout failed for order " + url.searchParams.get("n") + " key " + env.API_KEY);
    }
    return new Response("ok");
  },
};
"""


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def _setup(http: httpx.Client, admin_token: str, slug: str) -> tuple[Tenant, str]:
    t = Tenant(http, admin_token, slug)
    host = f"logs.{slug}.test"
    t.plugin_with_route(namespace="prod", plugin="shop", code=LOGGING_PLUGIN, pattern=f"{host}/*")
    t.put("/namespaces/prod/plugins/shop/secrets/API_KEY", {"value": API_KEY})
    return t, host


LOGS = "/namespaces/prod/plugins/shop/logs"


def test_console_lines_and_exceptions_reach_the_log_api_masked(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t, host = _setup(http, admin_token, f"logs-{unique}")
    for n in range(1, 4):
        assert via_gateway(gateway.url, host, f"/?n={n}").status_code == 200
    assert via_gateway(gateway.url, host, "/throw?n=7").status_code == 502

    def five() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = t.get(LOGS)
        return found if len(found) >= 5 else None

    entries = wait_for(five, what="4 lines and 1 exception")
    lines = [e for e in entries if e["kind"] == "log"]
    assert [e["message"] for e in lines] == [
        "order 1 charged with [secret]",
        "order 2 charged with [secret]",
        "order 3 charged with [secret]",
        "order 7 charged with [secret]",
    ]
    assert all(e["level"] == "log" and len(e["version"]) == 64 for e in lines)
    [exception] = [e for e in entries if e["kind"] == "exception"]
    assert exception["message"] == "TypeError: checkout failed for order 7 key [secret]"
    assert exception["level"] == "error"
    assert "index.js" in exception["stack"]
    assert API_KEY not in str(entries)
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids)
    # Following: only what came after an id.
    assert t.get(f"{LOGS}?after={ids[-2]}") == entries[-1:]
    assert t.get(f"{LOGS}?limit=2") == entries[-2:]


def test_another_tenant_cannot_read_a_plugins_logs(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    a, host = _setup(http, admin_token, f"loga-{unique}")
    b = Tenant(http, admin_token, f"logb-{unique}")
    assert via_gateway(gateway.url, host, "/?n=1").status_code == 200
    wait_for(lambda: a.get(LOGS), what="a's log line")
    response = http.get(a.url(LOGS), headers=b.headers)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "charged" not in response.text
    # Not through b's own tenant either: b has no such namespace or plugin.
    assert http.get(b.url(LOGS), headers=b.headers).status_code == 404
    missing = http.get(a.url("/namespaces/prod/plugins/nope/logs"), headers=a.headers)
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/plugin-not-found")
    bad = http.get(a.url(LOGS), params={"limit": 0}, headers=a.headers)
    assert bad.status_code in (400, 422)
    assert "limit" in bad.text


def test_logs_are_capped_per_plugin_oldest_dropped(
    http: httpx.Client, admin_token: str, gateway_secret: str, unique: str, control_plane: ControlPlane
) -> None:
    t = Tenant(http, admin_token, f"logcap-{unique}")
    t.post("/namespaces", {"name": "prod"}, 201)
    t.post("/namespaces/prod/plugins", {"name": "shop"}, 201)
    now_ms = int(time.time() * 1000)

    def batch(first: int, count: int) -> bytes:
        logs = [
            {
                "tenant": t.slug,
                "namespace": "prod",
                "plugin": "shop",
                "version": "ab" * 32,
                "at": now_ms + i,
                "kind": "log",
                "level": "info",
                "message": f"line {i}",
            }
            for i in range(first, first + count)
        ]
        body = {
            "batch_id": str(uuid.uuid4()),
            "gateway": "test",
            "sealed_at": now_ms,
            "rows": [],
            "logs": logs,
        }
        return msgspec.json.encode(body)

    for first, count in ((0, 150), (150, 120)):
        body = batch(first, count)
        headers = signing.sign(gateway_secret, method="POST", path=INGEST_PATH, body=body)
        response = httpx.post(control_plane.url + INGEST_PATH, content=body, headers=headers, timeout=10)
        assert response.json()["status"] == "stored"
    entries = t.get(f"{LOGS}?limit=1000")
    assert len(entries) == 200  # PLUGYARD_LOG_LINES_PER_PLUGIN default
    assert entries[0]["message"] == "line 70"
    assert entries[-1]["message"] == "line 269"


def test_cli_follows_a_plugins_logs(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str, control_plane: ControlPlane
) -> None:
    t, host = _setup(http, admin_token, f"logcli-{unique}")
    assert via_gateway(gateway.url, host, "/?n=1").status_code == 200
    wait_for(lambda: t.get(LOGS), what="the first line")
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugyard", "logs", f"{t.slug}/prod/shop", "--follow", "--interval", "0.2"],
        env={**os.environ, "PLUGYARD_API_URL": control_plane.url, "PLUGYARD_TOKEN": t.token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()

    def next_matching(needle: str, timeout_s: float = 20) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} not printed within {timeout_s} s")

    try:
        assert "order 1 charged with [secret]" in next_matching("order 1")
        assert via_gateway(gateway.url, host, "/throw?n=42").status_code == 502
        assert "order 42 charged with [secret]" in next_matching("order 42")
        assert "TypeError: checkout failed for order 42" in next_matching("TypeError")
        assert "index.js" in next_matching("index.js")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
