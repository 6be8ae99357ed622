"""The gateway's signed control API, persistence across restarts, and failed-push retries."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from plugyard import signing
from plugyard.app import create_app
from plugyard.gateway.process import GatewayProcess
from plugyard.settings import GatewaySettings, Settings
from tests.conftest import OUTPUT, free_port
from tests.integration import deploy_helpers
from tests.integration.helpers import plugin_code, via_gateway

# The reconciler refills a fresh gateway with every namespace of its database: the tests below
# use a database of their own, so a restart does not wait for the whole session's namespaces.
own_database = deploy_helpers.own_database

PATH = "/_plugyard/namespaces/sig/ns"


def _body(revision: int = 1) -> bytes:
    return msgspec.json.encode(
        {"tenant": "sig", "namespace": "ns", "revision": revision, "routes": [], "plugins": {}, "bundles": {}}
    )


def _put(gateway: GatewayProcess, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.put(gateway.url + PATH, content=body, headers=headers, timeout=10)


def test_control_api_accepts_a_signed_push(gateway: GatewayProcess, gateway_secret: str) -> None:
    body = _body(revision=1)
    response = _put(gateway, body, signing.sign(gateway_secret, method="PUT", path=PATH, body=body))
    assert response.status_code == 200, response.text
    assert response.json()["status"] in {"applied", "unchanged"}


@pytest.mark.parametrize(
    ("tamper", "slug"),
    [
        ("unsigned", "unsigned"),
        ("wrong-secret", "bad-signature"),
        ("tampered-body", "bad-signature"),
        ("other-path", "bad-signature"),
        ("stale", "stale-request"),
    ],
)
def test_control_api_rejects_bad_signatures(
    gateway: GatewayProcess, gateway_secret: str, tamper: str, slug: str
) -> None:
    body = _body(revision=99)
    headers: dict[str, str] = {}
    if tamper == "wrong-secret":
        headers = signing.sign("not-the-secret", method="PUT", path=PATH, body=body)
    elif tamper == "tampered-body":
        headers = signing.sign(gateway_secret, method="PUT", path=PATH, body=_body(revision=98))
    elif tamper == "other-path":
        headers = signing.sign(
            gateway_secret, method="PUT", path="/_plugyard/namespaces/sig/other", body=body
        )
    elif tamper == "stale":
        headers = signing.sign(gateway_secret, method="PUT", path=PATH, body=body, now=time.time() - 3600)
    response = _put(gateway, body, headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/" + slug)
    # Nothing was applied: the gateway still holds a lower revision than 99.
    health = httpx.get(
        gateway.url + "/_plugyard/health",
        headers=signing.sign(gateway_secret, method="GET", path="/_plugyard/health"),
        timeout=10,
    ).json()
    assert health["namespaces"].get("sig/ns", 0) < 98


def test_control_api_rejects_a_replayed_push(gateway: GatewayProcess, gateway_secret: str) -> None:
    body = _body(revision=2)
    headers = signing.sign(gateway_secret, method="PUT", path=PATH, body=body)
    assert _put(gateway, body, headers).status_code == 200
    replay = _put(gateway, body, headers)
    assert replay.status_code == 401
    assert replay.json()["type"].endswith("/replayed-request")


def test_health_is_terse_unsigned_and_full_signed(gateway: GatewayProcess, gateway_secret: str) -> None:
    unsigned = httpx.get(gateway.url + "/_plugyard/health", timeout=10).json()
    assert unsigned == {"status": "ok"}
    signed = httpx.get(
        gateway.url + "/_plugyard/health",
        headers=signing.sign(gateway_secret, method="GET", path="/_plugyard/health"),
        timeout=10,
    ).json()
    assert signed["status"] == "ok"
    assert isinstance(signed["namespaces"], dict)


# A private gateway per test below: these tests stop and restart it.


@pytest.fixture
def private_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    OUTPUT.mkdir(exist_ok=True)
    with (OUTPUT / "workerd-private.log").open("ab") as log:
        proc = GatewayProcess(
            port=free_port(), storage_dir=tmp_path / "storage", secret=secrets.token_hex(16), log=log
        )
        yield proc
        proc.stop()


@pytest.fixture
async def private_client(
    settings: Settings, private_gateway: GatewayProcess, own_database: str
) -> AsyncIterator[AsyncTestClient[Any]]:
    custom = msgspec.structs.replace(
        settings,
        database=msgspec.structs.replace(settings.database, url=own_database),
        gateway=GatewaySettings(
            urls=(private_gateway.url,), secret=private_gateway.secret, retry_interval_s=0.2
        ),
        retry_pushes=True,
    )
    async with AsyncTestClient(create_app(custom)) as client:
        yield client


async def _setup(
    client: AsyncTestClient[Any],
    admin_token: str,
    slug: str,
    host: str,
    before_deploy: Callable[[], None] | None = None,
) -> dict[str, Any]:
    admin = {"authorization": f"Bearer {admin_token}"}
    assert (
        await client.post("/v1/tenants", json={"slug": slug, "name": slug}, headers=admin)
    ).status_code == 201
    token = (await client.post(f"/v1/tenants/{slug}/tokens", json={"name": "t"}, headers=admin)).json()[
        "token"
    ]
    auth = {"authorization": f"Bearer {token}"}
    ns = f"/v1/tenants/{slug}/namespaces/prod"
    await client.post(f"/v1/tenants/{slug}/namespaces", json={"name": "prod"}, headers=auth)
    await client.post(f"{ns}/plugins", json={"name": "p"}, headers=auth)
    # Uploading needs a gateway (it validates the bundle); activating is a separate deployment.
    uploaded = await client.post(
        f"{ns}/plugins/p/versions",
        json={"modules": [{"name": "index.js", "content": plugin_code("persisted")}]},
        headers=auth,
    )
    assert uploaded.status_code == 201, uploaded.text
    if before_deploy is not None:
        before_deploy()
    await client.put(f"{ns}/plugins/p/active-version", json={"version": 1}, headers=auth)
    route = await client.post(f"{ns}/routes", json={"pattern": f"{host}/*", "plugin": "p"}, headers=auth)
    assert route.status_code == 201, route.text
    return {"auth": auth, "ns": ns, "route": route.json()}


async def test_restarted_gateway_serves_the_last_push_without_the_control_plane(
    private_client: AsyncTestClient[Any], private_gateway: GatewayProcess, admin_token: str, unique: str
) -> None:
    private_gateway.start()
    host = f"keep.r{unique}.test"
    setup = await _setup(private_client, admin_token, f"restart-{unique}", host)
    assert setup["route"]["deployment"]["pushes"][0]["status"] == "succeeded"
    assert via_gateway(private_gateway.url, host).text == "persisted"

    private_gateway.kill()  # no graceful shutdown: storage must already be durable
    private_gateway.start()
    # The first request after the restart is served from the Durable Object's storage.
    served = via_gateway(private_gateway.url, host)
    assert (served.status_code, served.text) == (200, "persisted")


async def test_a_failed_push_is_visible_and_retried_until_the_gateway_takes_it(
    private_client: AsyncTestClient[Any], private_gateway: GatewayProcess, admin_token: str, unique: str
) -> None:
    host = f"late.f{unique}.test"
    # The gateway validates the upload, then stops: every push fails.
    private_gateway.start()
    setup = await _setup(
        private_client, admin_token, f"retry-{unique}", host, before_deploy=private_gateway.stop
    )
    push = setup["route"]["deployment"]["pushes"][0]
    assert push["status"] == "failed"
    assert push["gateway"] == private_gateway.url
    assert push["last_error"]
    history = (await private_client.get(f"{setup['ns']}/deployments", headers=setup["auth"])).json()
    assert [d["pushes"][0]["status"] for d in history] == ["failed", "failed"]

    private_gateway.start()
    deadline = time.monotonic() + 15
    statuses: list[str] = []
    while time.monotonic() < deadline:
        history = (await private_client.get(f"{setup['ns']}/deployments", headers=setup["auth"])).json()
        statuses = [d["pushes"][0]["status"] for d in history]
        if statuses[0] == "succeeded":
            break
        await _sleep(0.2)
    # The latest revision is delivered; the older one is marked superseded, not re-sent.
    assert statuses == ["succeeded", "superseded"]
    # Serving converges within the gateway's documented refresh interval (about 1 s).
    deadline = time.monotonic() + 5
    served = via_gateway(private_gateway.url, host)
    while served.text != "persisted" and time.monotonic() < deadline:
        await _sleep(0.1)
        served = via_gateway(private_gateway.url, host)
    assert (served.status_code, served.text) == (200, "persisted")


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_a_gateway_back_from_an_outage_gets_its_failed_pushes_at_once(
    private_client: AsyncTestClient[Any],
    private_gateway: GatewayProcess,
    own_database: str,
    admin_token: str,
    unique: str,
) -> None:
    host = f"back.b{unique}.test"
    private_gateway.start()
    setup = await _setup(
        private_client, admin_token, f"back-{unique}", host, before_deploy=private_gateway.stop
    )
    assert setup["route"]["deployment"]["pushes"][0]["status"] == "failed"
    # A long outage: every failed push's backoff has grown to its 30 s cap.
    conn = await asyncpg.connect(own_database)
    try:
        await conn.execute("UPDATE pushes SET attempts = 20, updated_at = now() WHERE status = 'failed'")
    finally:
        await conn.close()
    await _sleep(0.5)  # the reconciler finds the gateway down at least once more
    private_gateway.start()
    started = time.monotonic()
    statuses: list[str] = []
    while time.monotonic() - started < 10:
        history = (await private_client.get(f"{setup['ns']}/deployments", headers=setup["auth"])).json()
        statuses = [d["pushes"][0]["status"] for d in history]
        if statuses[0] == "succeeded":
            break
        await _sleep(0.1)
    # Without the recovery fast path the push would wait out its 30 s backoff.
    assert statuses == ["succeeded", "superseded"]
    assert time.monotonic() - started < 10
