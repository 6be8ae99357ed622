"""Metrics end to end: requests through the real gateway show up in the query API exactly once."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from plugyard.gateway.process import GatewayProcess
from plugyard.metrics.histogram import bucket_index
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant, check, via_gateway

pytestmark = pytest.mark.e2e

# Sleeps `?ms=` milliseconds, answers `?status=` (default 200), throws on /throw.
SLOW_PLUGIN = """
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/throw") throw new Error("planned failure");
    const ms = Number(url.searchParams.get("ms") || 0);
    if (ms) await new Promise((resolve) => setTimeout(resolve, ms));
    return new Response("ok", { status: Number(url.searchParams.get("status") || 200) });
  },
};
"""
_DUR = re.compile(r"plugin;dur=([0-9.]+)")


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def wait_for(probe: Callable[[], Any], *, timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Poll until `probe` returns a truthy value (bounded in time)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what} not reached within {timeout_s} s (last: {last!r})")


def query(tenant: Tenant, **params: str) -> dict[str, Any]:
    start = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    end = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    result: dict[str, Any] = tenant.get(
        "/metrics?" + httpx.QueryParams({"from": start, "to": end, **params}).__str__()
    )
    return result


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def send(gateway: GatewayProcess, host: str, path: str, durations: list[float]) -> httpx.Response:
    # x-plugyard-debug: the gateway adds server-timing (the duration it counted) only when asked.
    response = via_gateway(gateway.url, host, path, headers={"x-plugyard-debug": "1"})
    timing = _DUR.search(response.headers.get("server-timing", ""))
    if timing:
        durations.append(float(timing.group(1)))
    return response


def test_requests_to_two_tenants_are_counted_exactly(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    a = Tenant(http, admin_token, f"meta-{unique}")
    b = Tenant(http, admin_token, f"metb-{unique}")
    a.plugin_with_route(namespace="prod", plugin="slow", code=SLOW_PLUGIN, pattern=f"slow.{a.slug}.test/*")
    b.plugin_with_route(namespace="prod", plugin="edge", code=SLOW_PLUGIN, pattern=f"edge.{b.slug}.test/*")

    # Tenant A: 20 fast 200s, 10 x 30 ms 200s, 6 x 120 ms 200s, 4 x 404.
    durations_a: list[float] = []
    plan_a = ["/"] * 20 + ["/?ms=30"] * 10 + ["/?ms=120"] * 6 + ["/?status=404"] * 4
    statuses_a = [send(gateway, f"slow.{a.slug}.test", path, durations_a).status_code for path in plan_a]
    assert statuses_a.count(200) == 36
    assert statuses_a.count(404) == 4
    # Tenant B: 15 200s, 5 x 503 answered by the plugin, 3 thrown (502 from the gateway).
    durations_b: list[float] = []
    plan_b = ["/?ms=5"] * 15 + ["/?status=503"] * 5 + ["/throw"] * 3
    statuses_b = [send(gateway, f"edge.{b.slug}.test", path, durations_b).status_code for path in plan_b]
    assert statuses_b.count(200) == 15
    assert statuses_b.count(503) == 5
    assert statuses_b.count(502) == 3

    def totals_a() -> Any:
        body = query(a)
        return body if body["totals"]["requests"] >= len(plan_a) else None

    body_a = wait_for(totals_a, what="tenant A's requests in the query API")
    # Exactly once, even after more flushes.
    time.sleep(3)
    body_a = query(a)
    [series] = body_a["series"]
    assert (series["namespace"], series["plugin"], series["variant"]) == ("prod", "slow", "default")
    assert len(series["version"]) == 64
    totals = series["totals"]
    assert totals["requests"] == 40
    assert (totals["s2xx"], totals["s3xx"], totals["s4xx"], totals["s5xx"]) == (36, 0, 4, 0)
    assert totals["errors"] == 0
    assert totals["failures"] == 0
    assert sum(p["counters"]["requests"] for p in series["points"]) == 40

    # Latency percentiles within one histogram bucket of the gateway's own measurement.
    assert len(durations_a) == 40
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        reported = totals["latency_ms"][name]
        exact = nearest_rank(durations_a, q)
        assert abs(bucket_index(reported) - bucket_index(exact)) <= 1, (name, reported, exact)
    assert sum(totals["latency_histogram"]) == 40
    assert (
        totals["latency_histogram"][bucket_index(120)] + totals["latency_histogram"][bucket_index(120) + 1]
        >= 6
    )

    def outcomes_b() -> Any:
        body = query(b)
        counters = body["totals"]
        return body if counters["requests"] >= 23 and counters["outcomes"]["exception"] >= 3 else None

    body_b = wait_for(outcomes_b, what="tenant B's requests and tail outcomes")
    [series_b] = body_b["series"]
    assert series_b["plugin"] == "edge"
    tb = series_b["totals"]
    assert tb["requests"] == 23
    assert (tb["s2xx"], tb["s4xx"], tb["s5xx"]) == (15, 0, 8)
    assert tb["failures"] == 3
    assert tb["errors"] == 8
    # The tail saw every invocation: 20 ok (503 is a response, not an exception), 3 exceptions.
    assert tb["outcomes"]["exception"] == 3
    wait_for(lambda: query(b)["totals"]["outcomes"]["ok"] == 20, what="20 ok outcomes")
    assert len(durations_b) == 20

    # Grouping by plugin only and filtering by version prefix give the same totals.
    by_plugin = query(a, group_by="plugin", version=series["version"][:12])
    assert [(s["plugin"], s["version"], s["totals"]["requests"]) for s in by_plugin["series"]] == [
        ("slow", None, 40)
    ]
    hourly = query(a, step="hour")
    assert hourly["totals"]["requests"] == 40

    # Usage: what an operator bills on.
    today = datetime.now(UTC).date().isoformat()
    usage = a.get(f"/usage?from={today}&to={today}")
    assert usage == [{"day": today, "requests": 40, "errors": 0, "versions": 1}]
    usage_b = b.get(f"/usage?from={today}&to={today}")
    assert usage_b == [{"day": today, "requests": 23, "errors": 8, "versions": 1}]


def test_another_tenant_cannot_read_metrics_or_usage(
    http: httpx.Client, admin_token: str, unique: str
) -> None:
    a = Tenant(http, admin_token, f"mown-{unique}")
    b = Tenant(http, admin_token, f"mspy-{unique}")
    for path in ("/metrics", "/usage"):
        response = http.get(a.url(path), headers=b.headers)
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        check(http.get(a.url(path), headers=a.headers), 200)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"step": "day"}, "step"),
        ({"group_by": "colour"}, "group_by"),
        ({"version": "XYZ"}, "version"),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "end"),
        ({"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "start"),
    ],
)
def test_bad_queries_are_problems_naming_the_field(
    http: httpx.Client, admin_token: str, unique: str, params: dict[str, str], field: str
) -> None:
    t = Tenant(http, admin_token, f"mbad-{unique}")
    response = http.get(t.url("/metrics"), params=params, headers=t.headers)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text


def test_prometheus_metrics_have_no_tenant_labels(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = Tenant(http, admin_token, f"mprom-{unique}")
    t.plugin_with_route(namespace="prod", plugin="p", code=SLOW_PLUGIN, pattern=f"p.{t.slug}.test/*")
    assert via_gateway(gateway.url, f"p.{t.slug}.test").status_code == 200
    wait_for(lambda: query(t)["totals"]["requests"] == 1, what="one request counted")
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for name in (
        "plugyard_http_requests_total",
        "plugyard_ingest_batches_total",
        "plugyard_ingest_lag_seconds_bucket",
        "plugyard_gateway_up",
        "plugyard_gateway_pending_batches",
        "plugyard_gateway_last_batch_age_seconds",
        "plugyard_pushes_open",
    ):
        assert name in text, name
    assert f'plugyard_gateway_up{{gateway="{gateway.url}"}} 1' in text
    assert 'result="stored"' in text
    assert t.slug not in text  # no outbound request: not even in the egress counter
    assert "plugin=" not in text
    # The one documented exception (docs/metrics.md): the egress counter, per namespace.
    for line in text.splitlines():
        if "tenant=" in line or "namespace=" in line:
            assert line.startswith("plugyard_egress_requests_total{"), line
    for line in text.splitlines():
        assert line.startswith("#") or re.match(r"^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$", line), line
