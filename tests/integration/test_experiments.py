"""A/B experiments end to end: real control plane, real workerd gateway, real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import pytest

from plugyard.experiments.bucketing import BucketConfig, assign
from plugyard.experiments.stats import srm
from plugyard.gateway.process import GatewayProcess
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant, check, plugin_code, via_gateway

pytestmark = pytest.mark.e2e
NS = "/namespaces/production"


@pytest.fixture
def http(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, timeout=30) as client:
        yield client


def wait_for(probe: Callable[[], Any], what: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def three_versions(t: Tenant, host: str, plugin: str = "shop") -> None:
    """Versions 1 (active, answers "v1"), 2 and 3 of a plugin routed at host."""
    t.plugin_with_route(namespace="production", plugin=plugin, code=plugin_code("v1"), pattern=f"{host}/*")
    for body in ("v2", "v3"):
        t.post(
            f"{NS}/plugins/{plugin}/versions",
            {"modules": [{"name": "index.js", "content": plugin_code(body)}]},
            201,
        )


def create(t: Tenant, key: str, weights: tuple[int, ...] = (50, 30, 20), **extra: Any) -> dict[str, Any]:
    names = ["control", "b", "c"][: len(weights)]
    variants = [
        {"name": n, "version": i + 1, "weight": w}
        for i, (n, w) in enumerate(zip(names, weights, strict=True))
    ]
    body = {"key": key, "plugin": extra.pop("plugin", "shop"), "variants": variants, **extra}
    return t.post(f"{NS}/experiments", body, 201)


async def visit_all(
    url: str, host: str, visitors: int, *, concurrency: int = 64
) -> list[tuple[str, str, str]]:
    """Each visitor: a first request (no cookie), then a return visit with the cookie it got.

    Returns (visitor id, first variant, returning variant) per visitor.
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"host": host}, timeout=30, limits=limits) as client:
        # Every visitor is a separate browser: the client must not keep cookies between them.
        client.cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))

        async def one(_: int) -> tuple[str, str, str]:
            async with semaphore:
                first = await client.get("/")
                assert first.status_code == 200, first.text
                cookie = first.headers["set-cookie"]
                vid = cookie.split(";")[0].split("=", 1)[1]
                again = await client.get("/", headers={"cookie": f"plugyard_vid={vid}"})
                assert "set-cookie" not in again.headers
                return vid, first.headers["x-plugyard-variant"], again.headers["x-plugyard-variant"]

        return await asyncio.gather(*(one(i) for i in range(visitors)))


def test_ten_thousand_visitors_are_sticky_and_split_by_weight(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = Tenant(http, admin_token, f"ab-{unique}")
    host = f"shop.{t.slug}.test"
    three_versions(t, host)
    create(t, "checkout")
    started = t.post(f"{NS}/experiments/checkout/start", {}, 200)
    assert started["experiment"]["state"] == "running"
    assert started["deployment"]["pushes"][0]["status"] == "succeeded"

    seen = asyncio.run(visit_all(gateway.url, host, 10_000))
    assert len({vid for vid, _, _ in seen}) == 10_000
    assert all(first == again for _, first, again in seen), "every returning visitor keeps their variant"
    counts = Counter(first for _, first, _ in seen)
    check_srm = srm([counts["control"], counts["b"], counts["c"]], [0.5, 0.3, 0.2])
    assert not check_srm.mismatch, check_srm
    assert check_srm.p_value > 0.001
    # The control plane counted the same visitors (gateway reports) and runs the same SRM check.
    res = wait_for(
        lambda: (
            (r := t.get(f"{NS}/experiments/checkout/results"))["sample_ratio"]["observed"]
            == [counts["control"], counts["b"], counts["c"]]
            and r
        ),
        "the results to count all 10,000 visitors",
    )
    assert res["sample_ratio"]["mismatch"] is False
    assert res["sample_ratio"]["p_value"] == pytest.approx(check_srm.p_value)
    assert res["sample_ratio"]["p_value"] > 0.001
    # The control plane's assignment API agrees with the gateway for a sample of visitors.
    for vid, first, _ in seen[:50]:
        answer = t.get(f"{NS}/experiments/checkout/assignment?visitor={vid}")
        assert answer["variant"] == first


def test_a_skewed_split_is_flagged_as_sample_ratio_mismatch(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = Tenant(http, admin_token, f"srm-{unique}")
    host = f"shop.{t.slug}.test"
    three_versions(t, host)
    create(t, "skewed", weights=(50, 50), sticky={"header": "x-user"})
    t.post(f"{NS}/experiments/skewed/start", {}, 200)
    # Visitors chosen so that 60 % land in control against a configured 50/50 (as a broken
    # redirect or a bot filter applied to one arm would do).
    config = BucketConfig(seed="skewed", coverage=1.0, weights=[0.5, 0.5])
    users: dict[int, list[str]] = {0: [], 1: []}
    for i in range(5000):
        v = assign(config, f"u{i}").variant
        assert v is not None
        if len(users[v]) < (600 if v == 0 else 400):
            users[v].append(f"u{i}")
    for user in users[0] + users[1]:
        assert via_gateway(gateway.url, host, headers={"x-user": user}).status_code == 200
    res = wait_for(
        lambda: (
            (r := t.get(f"{NS}/experiments/skewed/results"))["sample_ratio"]["observed"] == [600, 400] and r
        ),
        "the results to count 1,000 visitors",
    )
    assert res["sample_ratio"]["mismatch"] is True
    assert res["sample_ratio"]["p_value"] < 0.001
    assert res["sample_ratio"]["expected"] == [500.0, 500.0]


def test_set_cookie_attributes_and_variant_header(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = Tenant(http, admin_token, f"ck-{unique}")
    host = f"shop.{t.slug}.test"
    three_versions(t, host)
    create(t, "cookies")
    t.post(f"{NS}/experiments/cookies/start", {}, 200)
    plain = via_gateway(gateway.url, host)
    cookie = plain.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    assert plain.text == {"control": "v1", "b": "v2", "c": "v3"}[plain.headers["x-plugyard-variant"]]
    https = via_gateway(gateway.url, host, headers={"x-forwarded-proto": "https"})
    assert "; Secure" in https.headers["set-cookie"]


def test_pause_resume_and_stop_with_a_winner(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = Tenant(http, admin_token, f"pr-{unique}")
    host = f"shop.{t.slug}.test"
    three_versions(t, host)
    create(t, "flow", sticky={"header": "x-user"})
    t.post(f"{NS}/experiments/flow/start", {}, 200)
    users = [f"user-{i}" for i in range(300)]

    def variants() -> dict[str, tuple[str, str]]:
        out = {}
        for u in users:
            r = via_gateway(gateway.url, host, headers={"x-user": u})
            out[u] = (r.headers["x-plugyard-variant"], r.text)
        return out

    before = variants()
    assert {v for v, _ in before.values()} == {"control", "b", "c"}

    paused = t.post(f"{NS}/experiments/flow/pause", {}, 200)
    assert paused["deployment"]["pushes"][0]["status"] == "succeeded"
    during = variants()  # right after the one push: everyone gets the active version (v1)
    assert all(text == "v1" and v == "none" for v, text in during.values())

    t.post(f"{NS}/experiments/flow/resume", {}, 200)
    assert variants() == before, "resuming gives every visitor their earlier variant back"

    stopped = t.post(f"{NS}/experiments/flow/stop", {"winner": "b"}, 200)
    assert stopped["experiment"]["state"] == "stopped"
    assert stopped["experiment"]["winner"] == "b"
    assert t.get(f"{NS}/plugins/shop")["active_version"] == 2
    after = [via_gateway(gateway.url, host, headers={"x-user": u}) for u in users]
    assert all(r.text == "v2" and "x-plugyard-variant" not in r.headers for r in after)

    audit = t.get("/audit-log?subject=experiment:production/flow")
    assert [e["action"] for e in audit] == [
        "experiment.stop",
        "experiment.resume",
        "experiment.pause",
        "experiment.start",
        "experiment.created",
    ]
    assert all(e["actor"].startswith("token:") for e in audit)
    history = t.get(f"{NS}/deployments")
    assert history[0]["reason"] == "experiment flow: stop"


def test_weight_change_on_a_running_experiment_needs_a_new_phase(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = Tenant(http, admin_token, f"ph-{unique}")
    host = f"shop.{t.slug}.test"
    three_versions(t, host)
    create(t, "phased")
    t.post(f"{NS}/experiments/phased/start", {}, 200)
    refused = http.patch(
        t.url(f"{NS}/experiments/phased"), json={"weights": {"control": 1, "b": 1, "c": 1}}, headers=t.headers
    )
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["type"].endswith("/new-phase-required")
    assert '"new_phase": true' in problem["detail"]
    assert "reassign" in problem["detail"] or "move visitors" in problem["detail"]
    assert t.get(f"{NS}/experiments/phased")["variants"][0]["weight"] == 0.5  # nothing stored

    accepted = check(
        http.patch(
            t.url(f"{NS}/experiments/phased"),
            json={"weights": {"control": 1, "b": 1, "c": 1}, "new_phase": True},
            headers=t.headers,
        ),
        200,
    )
    assert accepted["experiment"]["phase"] == 2
    assert accepted["experiment"]["seed"] == "phased:2"
    assert accepted["deployment"]["pushes"][0]["status"] == "succeeded"


def test_state_machine_refuses_invalid_transitions_and_second_live_experiment(
    http: httpx.Client, admin_token: str, unique: str
) -> None:
    t = Tenant(http, admin_token, f"sm-{unique}")
    three_versions(t, f"shop.{t.slug}.test")
    create(t, "one")
    create(t, "two")
    problem = t.post(f"{NS}/experiments/one/resume", {}, 409)
    assert problem["type"].endswith("/invalid-transition")
    t.post(f"{NS}/experiments/one/start", {}, 200)
    second = t.post(f"{NS}/experiments/two/start", {}, 409)
    assert second["type"].endswith("/experiment-already-running")
    killed = t.post(f"{NS}/experiments/one/kill", {}, 200)
    assert killed["experiment"]["state"] == "stopped"
    assert killed["experiment"]["status_reason"] == "killed"
    t.post(f"{NS}/experiments/two/start", {}, 200)


def test_bad_input_names_the_field_and_stores_nothing(
    http: httpx.Client, admin_token: str, unique: str
) -> None:
    t = Tenant(http, admin_token, f"bi-{unique}")
    three_versions(t, f"shop.{t.slug}.test")
    bad = t.post(
        f"{NS}/experiments",
        {
            "key": "x",
            "plugin": "shop",
            "variants": [{"name": "a", "version": 1}, {"name": "b", "version": 9}],
        },
        422,
    )
    assert bad["errors"][0]["field"] == "variants[1].version"
    assert t.get(f"{NS}/experiments") == []
    one = t.post(
        f"{NS}/experiments", {"key": "x", "plugin": "shop", "variants": [{"name": "a", "version": 1}]}, 422
    )
    assert one["errors"][0]["field"] == "variants"


def test_exclusion_ranges_may_not_overlap(http: httpx.Client, admin_token: str, unique: str) -> None:
    t = Tenant(http, admin_token, f"ex-{unique}")
    three_versions(t, f"a.{t.slug}.test", plugin="shop")
    three_versions(t, f"b.{t.slug}.test", plugin="other")
    create(t, "left", weights=(1, 1), exclusion={"group": "checkout", "start": 0, "end": 0.5})
    taken = t.post(
        f"{NS}/experiments",
        {
            "key": "right",
            "plugin": "other",
            "variants": [{"name": "control", "version": 1}, {"name": "b", "version": 2}],
            "exclusion": {"group": "checkout", "start": 0.4, "end": 1},
        },
        409,
    )
    assert taken["type"].endswith("/exclusion-range-taken")
    create(
        t, "right", weights=(1, 1), plugin="other", exclusion={"group": "checkout", "start": 0.5, "end": 1}
    )
    # A visitor is in at most one of the two.
    for i in range(200):
        a = t.get(f"{NS}/experiments/left/assignment?visitor=v{i}")
        b = t.get(f"{NS}/experiments/right/assignment?visitor=v{i}")
        assert (a["variant"] is None) != (b["variant"] is None)


def test_namespace_holdout_keeps_visitors_out_of_every_experiment(
    http: httpx.Client, admin_token: str, gateway: GatewayProcess, unique: str
) -> None:
    t = Tenant(http, admin_token, f"ho-{unique}")
    host = f"shop.{t.slug}.test"
    three_versions(t, host)
    create(t, "held", weights=(1, 1), sticky={"header": "x-user"})
    t.post(f"{NS}/experiments/held/start", {}, 200)
    deployment = t.put(f"{NS}/experiment-holdout", {"share": 0.3})
    assert deployment["pushes"][0]["status"] == "succeeded"
    assert t.get(f"{NS}/experiment-holdout")["share"] == 0.3
    held_out = 0
    for i in range(100):
        answer = t.get(f"{NS}/experiments/held/assignment?visitor=u{i}")
        r = via_gateway(gateway.url, host, headers={"x-user": f"u{i}"})
        if answer["reason"] == "holdout":
            held_out += 1
            assert r.text == "v1"
            assert r.headers["x-plugyard-variant"] == "none"
        else:
            assert r.headers["x-plugyard-variant"] == answer["variant"]
    assert 15 <= held_out <= 45
    bad = http.put(t.url(f"{NS}/experiment-holdout"), json={"share": 0.9}, headers=t.headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "share"


def test_tenant_b_cannot_see_tenant_a_experiments(http: httpx.Client, admin_token: str, unique: str) -> None:
    a = Tenant(http, admin_token, f"ea-{unique}")
    b = Tenant(http, admin_token, f"eb-{unique}")
    three_versions(a, f"shop.{a.slug}.test")
    create(a, "secret")
    for path in ("", "/assignment?visitor=x", "/results"):
        r = http.get(f"/v1/tenants/{a.slug}{NS}/experiments/secret{path}", headers=b.headers)
        assert r.status_code == 404
    r = http.post(f"/v1/tenants/{a.slug}{NS}/experiments/secret/start", headers=b.headers)
    assert r.status_code == 404
