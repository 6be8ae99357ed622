"""Authentication: tokens hashed at rest and revocable at once; the gateway refuses bad pushes.

The gateway's control API checks are also in tests/integration/test_gateway.py (per slug);
here they run as one sweep so the security suite holds every authentication guarantee.
"""

from __future__ import annotations

import hashlib
import time

import asyncpg
import httpx
import msgspec
import pytest

from plugyard import signing
from plugyard.gateway.process import GatewayProcess
from tests.conftest import ControlPlane
from tests.integration.helpers import Tenant
from tests.security.figures import record

pytestmark = pytest.mark.e2e


async def test_tokens_are_stored_only_as_hashes(
    control_plane: ControlPlane, database_url: str, admin_token: str, unique: str
) -> None:
    with httpx.Client(base_url=control_plane.url, timeout=30) as http:
        tenant = Tenant(http, admin_token, f"au-{unique}")
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT * FROM api_tokens")
    finally:
        await conn.close()
    stored = [str(value) for row in rows for value in row.values()]
    assert not [value for value in stored if tenant.token in value]
    hashes = {bytes(row["token_hash"]) for row in rows}
    assert hashlib.sha256(tenant.token.encode()).digest() in hashes


def test_a_revoked_token_is_refused_on_the_next_request(
    control_plane: ControlPlane, admin_token: str, unique: str
) -> None:
    with httpx.Client(base_url=control_plane.url, timeout=30) as http:
        tenant = Tenant(http, admin_token, f"rv-{unique}")
        spare = tenant.post("/tokens", {"name": "spare"}, 201)
        spare_headers = {"authorization": f"Bearer {spare['token']}"}
        assert http.get(tenant.url("/namespaces"), headers=spare_headers).status_code == 200
        assert http.delete(tenant.url(f"/tokens/{spare['id']}"), headers=tenant.headers).status_code in {
            200,
            204,
        }
        refused = http.get(tenant.url("/namespaces"), headers=spare_headers)
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert http.get(tenant.url("/namespaces"), headers=tenant.headers).status_code == 200


def test_gateway_control_api_refuses_tampered_stale_and_replayed_pushes(
    gateway: GatewayProcess, gateway_secret: str, unique: str
) -> None:
    path = f"/_plugyard/namespaces/sec-{unique}/ns"

    def body(revision: int) -> bytes:
        return msgspec.json.encode(
            {
                "tenant": f"sec-{unique}",
                "namespace": "ns",
                "revision": revision,
                "routes": [],
                "plugins": {},
                "bundles": {},
            }
        )

    def put(content: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.put(gateway.url + path, content=content, headers=headers, timeout=10)

    good = body(5)
    attempts = {
        "unsigned": (good, {}),
        "bad-signature": (good, signing.sign("not-the-secret", method="PUT", path=path, body=good)),
        "tampered": (good, signing.sign(gateway_secret, method="PUT", path=path, body=body(4))),
        "stale-request": (
            good,
            signing.sign(gateway_secret, method="PUT", path=path, body=good, now=time.time() - 3600),
        ),
    }
    expected = {"unsigned": "unsigned", "bad-signature": "bad-signature", "tampered": "bad-signature"}
    calls, failures = 0, []
    for name, (content, headers) in attempts.items():
        answer = put(content, headers)
        calls += 1
        if answer.status_code != 401 or not answer.json()["type"].endswith("/" + expected.get(name, name)):
            failures.append(f"{name}: {answer.status_code} {answer.text[:200]}")
    signed = signing.sign(gateway_secret, method="PUT", path=path, body=good)
    assert put(good, signed).status_code == 200
    replay = put(good, signed)
    calls += 2
    if replay.status_code != 401 or not replay.json()["type"].endswith("/replayed-request"):
        failures.append(f"replay: {replay.status_code} {replay.text[:200]}")
    record("gateway_control_auth", calls=calls, failures=len(failures))
    assert not failures, failures
