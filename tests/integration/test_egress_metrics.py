"""Egress counts end to end: plugin fetches → gateway Outbound → metrics batch → API and /metrics."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from plugyard import signing
from plugyard.gateway.process import GatewayProcess
from plugyard.metrics.schemas import INGEST_PATH
from tests.conftest import OUTPUT, ControlPlane
from tests.integration.helpers import Tenant, via_gateway
from tests.integration.test_egress import PROBE, Target
from tests.integration.test_metrics import wait_for
from tests.integration.test_metrics_delivery import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def targets() -> Iterator[tuple[Target, Target]]:
    allowed, forbidden = Target("allowed"), Target("forbidden")
    yield allowed, forbidden
    allowed.close()
    forbidden.close()


def egress(tenant: Tenant, status: int = 200, **params: str) -> Any:
    start = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    end = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    query = httpx.QueryParams({"from": start, "to": end, **params})
    return tenant.get(f"/metrics/egress?{query}", status)


def counts(tenant: Tenant, namespace: str = "prod") -> tuple[int, int]:
    body = egress(tenant, namespace=namespace)
    return body["totals"]["allowed"], body["totals"]["blocked"]


def prometheus(url: str, slug: str) -> dict[str, int]:
    """This tenant's `plugyard_egress_requests_total` series: `namespace/outcome` → value."""
    text = httpx.get(url + "/metrics", timeout=10).text
    pattern = re.compile(
        r'^plugyard_egress_requests_total\{namespace="([^"]+)",outcome="(\w+)",tenant="'
        + re.escape(slug)
        + r'"\} (\d+)$',
        re.M,
    )
    return {f"{ns}/{outcome}": int(value) for ns, outcome, value in pattern.findall(text)}


def fetch_through(gateway_url: str, host: str, url: str) -> httpx.Response:
    return via_gateway(gateway_url, host, "/", params={"url": url})


def test_allowed_and_blocked_fetches_are_counted_per_namespace(
    control_plane: ControlPlane,
    admin_token: str,
    gateway: GatewayProcess,
    unique: str,
    targets: tuple[Target, Target],
) -> None:
    allowed, forbidden = targets
    with httpx.Client(base_url=control_plane.url, timeout=30) as http:
        a = Tenant(http, admin_token, f"egm-a-{unique}")
        b = Tenant(http, admin_token, f"egm-b-{unique}")
        host = f"probe.{a.slug}.test"
        a.plugin_with_route(namespace="prod", plugin="probe", code=PROBE, pattern=f"{host}/*")
        a.put("/namespaces/prod/egress", {"allow": [allowed.address]})
        b.post("/namespaces", {"name": "prod"}, 201)

        for _ in range(3):
            ok = fetch_through(gateway.url, host, f"http://{allowed.address}/x")
            assert (ok.status_code, ok.text) == (200, "fetched allowed GET")
        for _ in range(2):
            assert fetch_through(gateway.url, host, f"http://{forbidden.address}/x").status_code == 599
        assert (allowed.hits, forbidden.hits) == (3, 0)

        wait_for(lambda: counts(a) == (3, 2), what="allowed=3, blocked=2 in the egress API")
        time.sleep(1)  # a late duplicate count would show up within a flush interval
        body = egress(a)
        assert body["step"] == "minute"
        assert body["totals"] == {"allowed": 3, "blocked": 2}
        [series] = body["series"]
        assert series["namespace"] == "prod"
        assert series["totals"] == {"allowed": 3, "blocked": 2}
        assert sum(p["allowed"] for p in series["points"]) == 3
        assert sum(p["blocked"] for p in series["points"]) == 2
        assert series["hosts"] == [
            {"host": allowed.address, "allowed": 3, "blocked": 0},
            {"host": forbidden.address, "allowed": 0, "blocked": 2},
        ]
        hourly = egress(a, step="hour")
        assert hourly["totals"] == {"allowed": 3, "blocked": 2}
        assert egress(a, namespace="other")["series"] == []

        # Tenant isolation: b cannot read a's egress, and sees none of it in its own.
        denied = http.get(a.url("/metrics/egress"), headers=b.headers)
        assert denied.status_code == 404, denied.text
        assert denied.headers["content-type"].startswith("application/problem+json")
        assert egress(b) | {"start": None, "end": None} == {
            "start": None,
            "end": None,
            "step": "minute",
            "totals": {"allowed": 0, "blocked": 0},
            "series": [],
        }
        bad = http.get(a.url("/metrics/egress?step=second"), headers=a.headers)
        assert bad.status_code == 422, bad.text
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert bad.json()["errors"][0]["field"] == "step"

        assert prometheus(control_plane.url, a.slug) == {"prod/allowed": 3, "prod/blocked": 2}
        assert prometheus(control_plane.url, b.slug) == {}


def _batch(batch_id: str, **extra: Any) -> bytes:
    return msgspec.json.encode(
        {
            "batch_id": batch_id,
            "gateway": "egress-test",
            "sealed_at": int(time.time() * 1000),
            "rows": [],
            "logs": [],
            **extra,
        }
    )


def _post_signed(cp: ControlPlane, secret: str, body: bytes) -> httpx.Response:
    headers = signing.sign(secret, method="POST", path=INGEST_PATH, body=body)
    return httpx.post(
        cp.url + INGEST_PATH,
        content=body,
        headers={**headers, "content-type": "application/json"},
        timeout=10,
    )


def test_replayed_batches_do_not_count_egress_twice(
    database_url: str,
    admin_token: str,
    tmp_path: Path,
    unique: str,
    targets: tuple[Target, Target],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allowed, forbidden = targets
    monkeypatch.setenv("PLUGYARD_EGRESS_PRIVATE", "1")  # loopback targets
    OUTPUT.mkdir(exist_ok=True)
    stack = Stack(database_url, admin_token, tmp_path / "gw", relay=True)
    stack.start()
    try:
        assert stack.recorder is not None
        with httpx.Client(base_url=stack.cp.url, timeout=30) as http:
            t = Tenant(http, admin_token, f"egm-r-{unique}")
            host = f"probe.{t.slug}.test"
            t.plugin_with_route(namespace="prod", plugin="probe", code=PROBE, pattern=f"{host}/*")
            t.put("/namespaces/prod/egress", {"allow": [allowed.address]})
            for url in (
                f"http://{allowed.address}/",
                f"http://{allowed.address}/",
                f"http://{forbidden.address}/",
            ):
                fetch_through(stack.gateway.url, host, url)
            wait_for(lambda: counts(t) == (2, 1), what="allowed=2, blocked=1")
            wait_for(lambda: stack.health()["pending_batches"] == 0, what="an empty gateway outbox")
            before = egress(t)["series"], prometheus(stack.cp.url, t.slug)
            assert before[1] == {"prod/allowed": 2, "prod/blocked": 1}
            delivered = [body for _, body in stack.recorder.delivered() if b'"egress"' in body]
            assert delivered, "no delivered batch carried egress rows"

            for body in delivered:
                again = _post_signed(stack.cp, stack.secret, body)
                assert again.status_code == 200, again.text
                assert again.json()["status"] == "duplicate"
            assert (egress(t)["series"], prometheus(stack.cp.url, t.slug)) == before

            # Backward compatible: a batch without `egress` (an older gateway) is stored, and one
            # with it adds exactly its counts.
            plain = _post_signed(stack.cp, stack.secret, _batch(str(uuid.uuid4())))
            assert plain.json()["status"] == "stored", plain.text
            minute = int(time.time()) // 60 * 60
            row = {"tenant": t.slug, "namespace": "prod", "host": "api.example.com", "minute": minute}
            extra = _post_signed(
                stack.cp, stack.secret, _batch(str(uuid.uuid4()), egress=[{**row, "blocked": 4}])
            )
            assert extra.json()["status"] == "stored", extra.text
            assert counts(t) == (2, 5)
            assert prometheus(stack.cp.url, t.slug) == {"prod/allowed": 2, "prod/blocked": 5}
            invalid = _post_signed(
                stack.cp, stack.secret, _batch(str(uuid.uuid4()), egress=[{**row, "minute": minute + 1}])
            )
            assert invalid.status_code == 422, invalid.text
            assert "egress" in invalid.json()["errors"][0]["field"]
    finally:
        stack.stop()
