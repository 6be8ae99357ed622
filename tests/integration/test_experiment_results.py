"""Experiment results and guardrails end to end: conversions a real plugin emits through
env.PLUGYARD.track, error rates from the gateway's metrics, and a guardrail that pauses."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from plugyard.gateway.process import GatewayProcess
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant, via_gateway

pytestmark = pytest.mark.e2e
NS = "/namespaces/production"
Z = 1.959963984540054

TRACKING = """
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/signup") await env.PLUGYARD.track("signup");
    return new Response(%s);
  },
};
"""
FLAKY = """
export default {
  async fetch(request, env) {
    if (Math.random() < 0.5) throw new Error("variant b is broken");
    return new Response("v2");
  },
};
"""


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def wait_for(probe: Callable[[], Any], what: str, timeout_s: float = 40) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def wilson(x: int, n: int) -> tuple[float, float]:
    p = x / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


def setup_plugin(t: Tenant, host: str, codes: list[str]) -> None:
    t.plugin_with_route(namespace="production", plugin="shop", code=codes[0], pattern=f"{host}/*")
    for code in codes[1:]:
        t.post(f"{NS}/plugins/shop/versions", {"modules": [{"name": "index.js", "content": code}]}, 201)


def test_conversions_from_two_variants_show_up_in_results(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = Tenant(http, admin_token, f"cv-{unique}")
    host = f"shop.{t.slug}.test"
    setup_plugin(t, host, [TRACKING % '"v1"', TRACKING % '"v2"'])
    t.post(
        f"{NS}/experiments",
        {
            "key": "signup",
            "plugin": "shop",
            "variants": [{"name": "control", "version": 1}, {"name": "b", "version": 2}],
            "sticky": {"header": "x-user"},
        },
        201,
    )
    t.post(f"{NS}/experiments/signup/start", {}, 200)

    variant_of: dict[str, str] = {}
    converted: Counter[str] = Counter()
    for i in range(240):
        user = f"user-{i}"
        r = via_gateway(gateway.url, host, "/", headers={"x-user": user})
        variant_of[user] = r.headers["x-plugyard-variant"]
        # Control converts one user in 6, b one in 3: a deterministic, known split.
        if i % (6 if variant_of[user] == "control" else 3) == 0:
            s = via_gateway(gateway.url, host, "/signup", headers={"x-user": user})
            assert s.status_code == 200
            converted[variant_of[user]] += 1
    visitors = Counter(variant_of.values())
    # A preview request (QA override) is served but never counted.
    token = t.post(f"{NS}/experiments/signup/preview-tokens", {"variant": "b"}, 201)
    forced = via_gateway(
        gateway.url, host, "/signup", headers={token["header"]: token["token"], "x-user": "qa"}
    )
    assert forced.text == "v2"
    assert forced.headers["x-plugyard-variant"] == "b"

    def complete() -> dict[str, Any] | None:
        res = t.get(f"{NS}/experiments/signup/results")
        by = {v["name"]: v for v in res["variants"]}
        done = all(by[n]["visitors"] == visitors[n] and by[n]["conversions"] == converted[n] for n in by)
        exposures = sum(by[n]["exposures"] for n in by)
        return res if done and exposures >= 240 + sum(converted.values()) else None

    res = wait_for(complete, "results to count every visitor and conversion")
    assert res["event"] == "signup"
    by = {v["name"]: v for v in res["variants"]}
    for name in ("control", "b"):
        n, x = visitors[name], converted[name]
        assert by[name]["conversion_rate"] == pytest.approx(x / n)
        assert by[name]["conversion_ci"] == pytest.approx(list(wilson(x, n)))
        assert by[name]["exposures"] == n + x  # preview request not counted
    p_c, p_b = converted["control"] / visitors["control"], converted["b"] / visitors["b"]
    se = math.sqrt(p_c * (1 - p_c) / visitors["control"] + p_b * (1 - p_b) / visitors["b"])
    vs = by["b"]["vs_control"]
    assert vs["lift"] == pytest.approx((p_b - p_c) / p_c)
    assert vs["lift_ci"] == pytest.approx([(p_b - p_c - Z * se) / p_c, (p_b - p_c + Z * se) / p_c])
    pooled = (converted["control"] + converted["b"]) / 240
    z = (p_b - p_c) / math.sqrt(pooled * (1 - pooled) * (1 / visitors["control"] + 1 / visitors["b"]))
    assert vs["p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    assert res["sample_ratio"]["observed"] == [visitors["control"], visitors["b"]]


def test_an_error_rate_guardrail_pauses_the_experiment_by_itself(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = Tenant(http, admin_token, f"gr-{unique}")
    host = f"shop.{t.slug}.test"
    setup_plugin(t, host, [TRACKING % '"v1"', FLAKY])
    t.post(
        f"{NS}/experiments",
        {
            "key": "risky",
            "plugin": "shop",
            "variants": [{"name": "control", "version": 1}, {"name": "b", "version": 2}],
            "sticky": {"header": "x-user"},
            "guardrail": {"metric": "error_rate", "margin": 0.05, "min_requests": 40},
        },
        201,
    )
    t.post(f"{NS}/experiments/risky/start", {}, 200)
    statuses = Counter()
    for i in range(200):
        r = via_gateway(gateway.url, host, headers={"x-user": f"u{i}"})
        statuses[(r.headers.get("x-plugyard-variant"), r.status_code)] += 1
    assert statuses[("b", 502)] > 0

    def paused() -> dict[str, Any] | None:
        exp = t.get(f"{NS}/experiments/risky")
        return exp if exp["state"] == "paused" else None

    exp = wait_for(paused, "the guardrail to pause the experiment")
    trip = exp["guardrail_trip"]
    assert trip["metric"] == "error_rate"
    assert trip["variant"] == "b"
    assert trip["p_value"] < 0.01
    assert "guardrail tripped" in exp["status_reason"]
    # Traffic is back on the active version for everyone, without anyone acting.
    for i in range(60):
        r = via_gateway(gateway.url, host, headers={"x-user": f"u{i}"})
        assert r.status_code == 200
        assert r.text == "v1"
        assert r.headers["x-plugyard-variant"] == "none"
    audit = t.get("/audit-log?subject=experiment:production/risky")
    assert audit[0]["action"] == "experiment.pause"
    assert audit[0]["actor"] == "guardrail"
    assert audit[0]["details"]["guardrail"]["variant"] == "b"
    assert t.get(f"{NS}/deployments")[0]["actor"] == "guardrail"
    results = t.get(f"{NS}/experiments/risky/results")
    assert results["guardrail_trip"]["variant"] == "b"
    assert results["state"] == "paused"
