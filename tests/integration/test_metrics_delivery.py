"""Metrics delivery: replayed batches change nothing; a control plane outage loses nothing.

Each test runs its own control plane and gateway (the outage test stops the control plane).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from plugyard import signing
from plugyard.gateway.process import GatewayProcess
from plugyard.metrics.schemas import INGEST_PATH
from tests.conftest import OUTPUT, ControlPlane, free_port
from tests.integration.helpers import Tenant, via_gateway
from tests.integration.test_metrics import SLOW_PLUGIN, query, wait_for

pytestmark = pytest.mark.e2e

LOGGING_PLUGIN = SLOW_PLUGIN.replace("const url", 'console.log("seen", request.url);\n    const url')


class Recorder:
    """A loopback relay between the gateway and the control plane that keeps every request.

    It forwards the gateway's real batches unchanged, so the test can deliver them again.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.seen: list[tuple[dict[str, str], bytes, int]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k: v for k, v in self.headers.items() if k.lower().startswith("x-plugyard-")}
                try:
                    answer = httpx.post(
                        recorder.target + self.path,
                        content=body,
                        headers={**headers, "content-type": "application/json"},
                        timeout=10,
                    )
                    status, content = answer.status_code, answer.content
                except httpx.HTTPError:
                    status, content = 502, b""
                recorder.seen.append((headers, body, status))
                self.send_response(status)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{INGEST_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b, status in self.seen if status == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Stack:
    """A private control plane and gateway sharing a secret."""

    def __init__(self, database_url: str, admin_token: str, storage: Path, *, relay: bool) -> None:
        self.secret = secrets.token_hex(16)
        self.cp_port = free_port()
        cp_url = f"http://127.0.0.1:{self.cp_port}"
        self.recorder = Recorder(cp_url) if relay else None
        self._log = (OUTPUT / "workerd-metrics.log").open("ab")
        self.gateway = GatewayProcess(
            port=free_port(),
            storage_dir=storage,
            secret=self.secret,
            log=self._log,
            ingest_url=self.recorder.url if self.recorder else cp_url + INGEST_PATH,
        )
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "PLUGYARD_GATEWAY_URLS": self.gateway.url,
            "PLUGYARD_GATEWAY_SECRET": self.secret,
            "PLUGYARD_ADMIN_TOKEN": admin_token,
            "PLUGYARD_RETRY_INTERVAL_S": "0.5",
        }
        self.cp = ControlPlane(env, self.cp_port, OUTPUT / "control-plane-metrics.log")

    def start(self) -> None:
        self.gateway.start()
        self.cp.start()

    def stop(self) -> None:
        self.cp.stop()
        self.gateway.stop()
        self._log.close()
        if self.recorder:
            self.recorder.close()

    def health(self) -> dict[str, Any]:
        path = "/_plugyard/health"
        response = httpx.get(
            self.gateway.url + path, headers=signing.sign(self.secret, method="GET", path=path), timeout=10
        )
        metrics: dict[str, Any] = response.json()["metrics"]
        return metrics


@pytest.fixture
def stack(database_url: str, admin_token: str, tmp_path: Path) -> Iterator[Stack]:
    OUTPUT.mkdir(exist_ok=True)
    s = Stack(database_url, admin_token, tmp_path / "gw", relay=True)
    s.start()
    yield s
    s.stop()


def _post(cp: ControlPlane, headers: dict[str, str], body: bytes) -> httpx.Response:
    return httpx.post(
        cp.url + INGEST_PATH,
        content=body,
        headers={**headers, "content-type": "application/json"},
        timeout=10,
    )


def _snapshot(t: Tenant, today: str) -> tuple[Any, ...]:
    body = query(t)
    logs = t.get("/namespaces/prod/plugins/p/logs?limit=1000")
    return body["totals"], t.get(f"/usage?from={today}&to={today}"), [e["id"] for e in logs]


def test_batches_delivered_twice_or_after_a_restart_change_nothing(
    stack: Stack, admin_token: str, unique: str
) -> None:
    assert stack.recorder is not None
    with httpx.Client(base_url=stack.cp.url, timeout=30) as http:
        t = Tenant(http, admin_token, f"mrep-{unique}")
        host = f"p.{t.slug}.test"
        t.plugin_with_route(namespace="prod", plugin="p", code=LOGGING_PLUGIN, pattern=f"{host}/*")
        for path in ["/"] * 12 + ["/?status=500"] * 3 + ["/throw"] * 2:
            via_gateway(stack.gateway.url, host, path)
        wait_for(lambda: query(t)["totals"]["outcomes"]["exception"] == 2, what="17 requests with outcomes")
        # Log entries travel apart from the counters (sent by the plugin's isolate).
        logs_path = "/namespaces/prod/plugins/p/logs?limit=1000"
        wait_for(lambda: len(t.get(logs_path)) == 17 + 2, what="17 console lines and 2 exceptions")
        wait_for(lambda: stack.health()["pending_batches"] == 0, what="an empty gateway outbox")
        today = time.strftime("%Y-%m-%d", time.gmtime())
        before = _snapshot(t, today)
        assert before[0]["requests"] == 17
        assert before[0]["s5xx"] == 5
        assert before[0]["failures"] == 2
        assert before[1] == [{"day": today, "requests": 17, "errors": 5, "versions": 1}]
        assert len(before[2]) == 17 + 2  # one console line per invocation, two exceptions
        delivered = stack.recorder.delivered()
        assert delivered, "the relay saw no batch"

        # The very same requests again (same signature headers: within the window).
        for headers, body in delivered:
            again = _post(stack.cp, headers, body)
            assert again.status_code == 200, again.text
            assert again.json()["status"] == "duplicate"
        # Freshly signed, same bodies: still the same batch ids.
        for _, body in delivered:
            resigned = _post(
                stack.cp, signing.sign(stack.secret, method="POST", path=INGEST_PATH, body=body), body
            )
            assert resigned.json()["status"] == "duplicate"
        assert _snapshot(t, today) == before

        # After a control-plane restart, the replay is still recognised.
        stack.cp.stop()
        stack.cp.start()
        for headers, body in delivered:
            assert _post(stack.cp, headers, body).json()["status"] == "duplicate"
        assert _snapshot(t, today) == before

        # A gateway restart (the outbox re-sends anything unacknowledged) changes nothing either.
        stack.gateway.stop()
        stack.gateway.start()
        wait_for(lambda: stack.health()["pending_batches"] == 0, what="an empty outbox after restart")
        time.sleep(2.5)
        assert _snapshot(t, today) == before


def test_ingest_refuses_bad_signatures_stale_and_invalid_batches(stack: Stack) -> None:
    body = msgspec.json.encode(
        {
            "batch_id": "0b7f9a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
            "gateway": "g",
            "sealed_at": 1,
            "rows": [],
            "logs": [],
        }
    )
    sign = signing.sign
    cases = [
        ({}, body, 401, "unsigned"),
        (sign("wrong", method="POST", path=INGEST_PATH, body=body), body, 401, "bad-signature"),
        (
            sign(stack.secret, method="POST", path=INGEST_PATH, body=body, now=time.time() - 3600),
            body,
            401,
            "stale",
        ),
        (sign(stack.secret, method="POST", path=INGEST_PATH, body=body), body, 409, "batch-expired"),
    ]
    bad = msgspec.json.encode(
        {
            "batch_id": "0b7f9a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5c",
            "gateway": "g",
            "sealed_at": int(time.time() * 1000),
            "rows": [
                {
                    "tenant": "x",
                    "namespace": "n",
                    "plugin": "p",
                    "version": "ab",
                    "variant": "v",
                    "minute": 61,
                }
            ],
            "logs": [],
        }
    )
    cases.append((sign(stack.secret, method="POST", path=INGEST_PATH, body=bad), bad, 422, "minute"))
    for headers, payload, status, needle in cases:
        response = _post(stack.cp, headers, payload)
        assert response.status_code == status, (needle, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert needle in response.text


def test_a_control_plane_down_for_60_seconds_loses_no_request(
    database_url: str, admin_token: str, tmp_path: Path, unique: str
) -> None:
    OUTPUT.mkdir(exist_ok=True)
    s = Stack(database_url, admin_token, tmp_path / "gw", relay=False)
    s.start()
    try:
        with httpx.Client(base_url=s.cp.url, timeout=30) as http:
            t = Tenant(http, admin_token, f"mout-{unique}")
            host = f"p.{t.slug}.test"
            t.plugin_with_route(namespace="prod", plugin="p", code=SLOW_PLUGIN, pattern=f"{host}/*")
            sent = 0
            for _ in range(20):
                assert via_gateway(s.gateway.url, host).status_code == 200
                sent += 1
            s.cp.stop()
            down_at = time.monotonic()
            with httpx.Client(base_url=s.gateway.url, headers={"host": host}, timeout=10) as gw:
                while time.monotonic() - down_at < 60:
                    assert gw.get("/").status_code == 200
                    sent += 1
                    time.sleep(0.02)
            during = s.health()
            assert during["pending_batches"] >= 1, during
            assert during["dropped"] == {"requests": 0, "logs": 0, "batches": 0, "egress": 0}
            s.cp.start()
            wait_for(lambda: query(t)["totals"]["requests"] >= sent, timeout_s=60, what=f"{sent} requests")
            wait_for(lambda: s.health()["pending_batches"] == 0, what="an empty outbox")
            time.sleep(2.5)
            assert query(t)["totals"]["requests"] == sent
            assert s.health()["dropped_reported"] == {"requests": 0, "logs": 0, "batches": 0, "egress": 0}
    finally:
        s.stop()
