"""The gateway killed mid-traffic: reported unhealthy, serves again after a restart by itself.

A private gateway (workerd) and a control-plane process on a fresh database. End-user traffic
runs through the gateway from a thread while the test SIGKILLs workerd, changes the plugin
during the outage (its push fails), and starts workerd again on the same port and storage. No
one pushes by hand: the gateway serves its stored state at once and the reconciler brings it the
change made while it was down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from plugyard.gateway.process import GatewayProcess
from tests.integration import deploy_helpers
from tests.integration.deploy_helpers import Replica, held, wait_until
from tests.integration.helpers import Tenant, plugin_code
from tests.security.figures import record

pytestmark = pytest.mark.e2e

own_database = deploy_helpers.own_database
own_gateway = deploy_helpers.own_gateway

OUTAGE_REPORTED_S = 10.0  # the report must say "unreachable" within this
RECOVERY_S = 15.0  # ...and "reachable, nothing behind" within this after the restart


@pytest.fixture
def control_plane(own_database: str, own_gateway: GatewayProcess, admin_token: str) -> Iterator[Replica]:
    cp = Replica(own_database, own_gateway, admin_token, "gateway-killed")
    cp.start()
    yield cp
    cp.stop()


class Traffic:
    """End users asking the gateway for one host in a loop: (monotonic time, status or error)."""

    def __init__(self, gateway_url: str, host: str) -> None:
        self.results: list[tuple[float, int | str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(gateway_url, host))

    def _run(self, url: str, host: str) -> None:
        with httpx.Client(timeout=5) as http:
            while not self._stop.is_set() and len(self.results) < 20_000:
                try:
                    answer = http.get(url + "/", headers={"host": host})
                    self.results.append((time.monotonic(), answer.status_code, answer.text))
                except httpx.HTTPError as exc:
                    self.results.append((time.monotonic(), type(exc).__name__, ""))
                    self._stop.wait(0.02)  # refused at once while down: do not spin

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _report(cp: Replica, headers: dict[str, str]) -> dict[str, object]:
    answer = httpx.get(cp.url + "/v1/gateways", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    (gateway,) = answer.json()["gateways"]
    assert isinstance(gateway, dict)
    return gateway


def _gauge(cp: Replica, gateway: GatewayProcess) -> str:
    text = httpx.get(cp.url + "/metrics", timeout=10).text
    prefix = f'plugyard_gateway_up{{gateway="{gateway.url}"}} '
    (line,) = [line for line in text.splitlines() if line.startswith(prefix)]
    return line.removeprefix(prefix)


def test_a_killed_gateway_is_reported_down_and_serves_again_after_restart(
    control_plane: Replica, own_gateway: GatewayProcess, admin_token: str, unique: str
) -> None:
    cp, gateway = control_plane, own_gateway
    admin = {"authorization": f"Bearer {admin_token}"}
    tenant = Tenant(httpx.Client(base_url=cp.url, timeout=30), admin_token, f"gk-{unique}")
    host = f"gk{unique}.test"
    tenant.plugin_with_route(namespace="prod", plugin="p", code=plugin_code("one"), pattern=f"{host}/*")
    tenant.post(
        "/namespaces/prod/plugins/p/versions",
        {"modules": [{"name": "index.js", "content": plugin_code("two")}]},
    )
    key = f"{tenant.slug}/prod"

    # Healthy: reachable, holding the one namespace, nothing behind. Tenants may not look.
    healthy = _report(cp, admin)
    assert healthy["reachable"] is True, healthy
    assert healthy["namespaces_held"] == 1
    assert healthy["namespaces_behind"] == 0
    assert _gauge(cp, gateway) == "1"
    refused = httpx.get(cp.url + "/v1/gateways", headers=tenant.headers, timeout=10)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith("/admin-only")

    with Traffic(gateway.url, host) as traffic:
        wait_until(lambda: sum(1 for _, s, _ in traffic.results if s == 200) >= 100, timeout_s=10)
        killed_at = time.monotonic()
        gateway.kill()  # SIGKILL: no shutdown of any kind
        took_to_report = wait_until(
            lambda: _report(cp, admin)["reachable"] is False, timeout_s=OUTAGE_REPORTED_S
        )
        down = _report(cp, admin)
        assert down["error"], down
        assert down["namespaces_held"] is None
        assert _gauge(cp, gateway) == "0"
        # A change while the gateway is down: committed, its push fails, nobody retries by hand.
        changed = tenant.put("/namespaces/prod/plugins/p/active-version", {"version": 2})
        revision = changed["deployment"]["revision"]
        assert [p["status"] for p in changed["deployment"]["pushes"]] == ["failed"]

        gateway.start()  # same port, same storage; no push, no reconcile call from the test
        restarted_at = time.monotonic()
        took_to_recover = wait_until(
            lambda: (r := _report(cp, admin))["reachable"] is True and r["namespaces_behind"] == 0,
            timeout_s=RECOVERY_S,
        )
        assert held(gateway).namespaces[key] == revision
        wait_until(
            lambda: any(t > restarted_at and text == "two" for t, _, text in traffic.results), timeout_s=10
        )
        converged_at = time.monotonic()
        wait_until(lambda: sum(1 for t, _, _ in traffic.results if t > converged_at) >= 200, timeout_s=10)
    assert _gauge(cp, gateway) == "1"
    report = _report(cp, admin)
    assert report["namespaces_held"] == 1, report
    assert report["last_seen"]

    results = traffic.results
    before = [r for r in results if r[0] < killed_at]
    after_restart = [r for r in results if r[0] > restarted_at]
    first_ok = next(i for i, r in enumerate(after_restart) if r[1] == 200)
    recovered = after_restart[first_ok:]
    failed_after_recovery = [r for r in recovered if r[1] != 200]
    failed_outage = [r for r in results if killed_at <= r[0] <= restarted_at and r[1] != 200]
    # Served from its own storage before the reconciler's push arrives: the old version, then the new.
    bodies = [text for _, status, text in recovered if status == 200]
    assert set(bodies) <= {"one", "two"}
    assert bodies[-1] == "two"
    odd = [r for r in before if r[1:] != (200, "one")]
    assert not odd, odd[:5]
    record(
        "gateway_killed",
        calls=len(results),
        failures=len(failed_after_recovery),
        during_outage=len(failed_outage),
        after_recovery=len(recovered),
        reported_down_ms=round(took_to_report * 1000),
        recovered_ms=round(took_to_recover * 1000),
    )
    assert not failed_after_recovery, failed_after_recovery[:5]
    assert failed_outage, "the traffic never saw the outage"
