"""Per-token API rate limits (plugyard/ratelimit.py): 429 problems with Retry-After, before any work.

Each test builds its own control plane in process (Litestar's AsyncTestClient, real PostgreSQL)
with a low limit, so the buckets start empty and the session's other tests are not disturbed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import structlog
from litestar.testing import AsyncTestClient

from plugyard.app import create_app
from plugyard.settings import DatabaseSettings, MetricsSettings, RateLimitSettings, Settings
from tests.security.figures import record

Client = AsyncTestClient[Any]
RATE, BURST = 1.0, 5
PROBLEMS = "https://plugyard.dev/problems/"


def _settings(database_url: str, admin_token: str, limits: RateLimitSettings) -> Settings:
    return Settings(
        database=DatabaseSettings(url=database_url, pool_min=1, pool_max=2),
        metrics=MetricsSettings(rollup=False),
        admin_token=admin_token,
        retry_pushes=False,
        guardrail_interval_s=0,
        rate_limit=limits,
    )


AppFactory = Callable[[RateLimitSettings], AbstractAsyncContextManager[Client]]


@pytest.fixture
def app_with(database_url: str, admin_token: str) -> AppFactory:
    """A fresh control plane (fresh buckets) with the given limits."""

    @asynccontextmanager
    async def make(limits: RateLimitSettings) -> AsyncIterator[Client]:
        async with AsyncTestClient(create_app(_settings(database_url, admin_token, limits))) as client:
            yield client

    return make


LOW = RateLimitSettings(per_s=RATE, burst=BURST, client_per_s=RATE, client_burst=BURST)


async def _tenant(client: Client, admin_token: str, slug: str, tokens: int = 2) -> list[dict[str, str]]:
    """A tenant and `tokens` of its tokens (as headers); costs 1 + tokens admin requests."""
    admin = {"authorization": f"Bearer {admin_token}"}
    answer = await client.post("/v1/tenants", json={"slug": slug, "name": "RL"}, headers=admin)
    assert answer.status_code == 201, answer.text
    headers = []
    for i in range(tokens):
        created = await client.post(f"/v1/tenants/{slug}/tokens", json={"name": f"t{i}"}, headers=admin)
        assert created.status_code == 201, created.text
        headers.append({"authorization": f"Bearer {created.json()['token']}"})
    return headers


def _is_429_problem(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    retry = answer.headers["retry-after"]
    assert retry.isdigit(), retry
    assert int(retry) >= 1, retry
    body: dict[str, Any] = answer.json()
    assert body["type"] == PROBLEMS + "too-many-requests"
    assert body["status"] == 429
    assert body["title"] == "Too many requests"
    assert f"{BURST} requests at once" in body["detail"], body
    assert "1 per second" in body["detail"], body
    return body


async def test_a_burst_beyond_the_limit_gets_429_with_retry_after_and_does_no_work(
    app_with: AppFactory, admin_token: str, unique: str
) -> None:
    async with app_with(LOW) as client:
        a, b = await _tenant(client, admin_token, f"rl-{unique}")
        base = f"/v1/tenants/rl-{unique}/namespaces"
        started = time.monotonic()
        with structlog.testing.capture_logs() as logs:
            answers = [await client.post(base, json={"name": f"n{i}"}, headers=a) for i in range(3 * BURST)]
        elapsed = time.monotonic() - started
        created = [r for r in answers if r.status_code == 201]
        refused = [r for r in answers if r.status_code != 201]
        # The first request of a new token is charged to the client; then the token's own bucket.
        assert BURST <= len(created) <= BURST + 1 + int(elapsed * RATE) + 1, (len(created), elapsed)
        assert refused, "no request was refused"
        for answer in refused:
            _is_429_problem(answer)
        # Normal answers carry the RateLimit headers; the remaining count goes down.
        assert created[-1].headers["ratelimit-limit"] == str(BURST)
        remaining = [int(r.headers["ratelimit-remaining"]) for r in created]
        assert 0 <= remaining[-1] < remaining[0], remaining
        assert int(created[0].headers["ratelimit-reset"]) >= 1
        # The token is never logged, the 429s are.
        assert any(e["event"] == "rate_limited" for e in logs)
        assert a["authorization"].split()[1] not in repr(logs)

        # Another token of the same tenant is not affected.
        other = await client.get(base, headers=b)
        assert other.status_code == 200, other.text

        # Refused before any work: only the allowed creations exist.
        wait = int(refused[-1].headers["retry-after"])
        await asyncio.sleep(wait)
        listed = await client.get(base, headers=a, params={"limit": 200})
        assert listed.status_code == 200, listed.text
        assert sorted(n["name"] for n in listed.json()) == sorted(r.json()["name"] for r in created)

        # After waiting Retry-After once more, the token works again.
        again = await client.get(base, headers=a)
        if again.status_code == 429:
            await asyncio.sleep(int(again.headers["retry-after"]))
            again = await client.get(base, headers=a)
        assert again.status_code == 200, again.text
    record("rate_limit_per_token", calls=len(answers), failures=0, refused=len(refused))


async def test_unauthenticated_calls_and_made_up_tokens_share_the_client_limit(
    app_with: AppFactory, admin_token: str, unique: str
) -> None:
    async with app_with(LOW) as client:
        (a,) = await _tenant(client, admin_token, f"rl-{unique}", tokens=1)
        base = f"/v1/tenants/rl-{unique}/namespaces"
        assert (await client.get(base, headers=a)).status_code == 200  # a's own bucket from now on
        statuses = []
        for i in range(3 * BURST):
            headers = {} if i % 2 else {"authorization": f"Bearer pyd_made-up-{i}"}
            statuses.append((await client.get(base, headers=headers)).status_code)
        assert set(statuses) == {401, 429}, statuses
        assert statuses.count(401) <= BURST, statuses
        _is_429_problem(await client.get(base, headers={"authorization": "Bearer pyd_one-more"}))
        # A token known to be valid keeps its own bucket.
        assert (await client.get(base, headers=a)).status_code == 200
    record("rate_limit_per_client", calls=len(statuses), failures=0, refused=statuses.count(429))


async def test_signed_gateway_endpoints_health_and_pages_are_not_limited(
    app_with: AppFactory, admin_token: str
) -> None:
    async with app_with(RateLimitSettings(per_s=RATE, burst=1, client_per_s=RATE, client_burst=1)) as client:
        # Unsigned gateway posts are refused by their signature check, never by the limit.
        for path in ("/v1/ingest/metrics", "/v1/ingest/experiments", "/v1/gateway/quarantines"):
            for _ in range(3):
                answer = await client.post(path, content=b"{}", headers={"content-type": "application/json"})
                assert answer.status_code != 429, (path, answer.status_code)
                assert "ratelimit-limit" not in answer.headers
        for _ in range(3):
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/login")).status_code != 429


async def test_a_limit_of_zero_turns_it_off(app_with: AppFactory, admin_token: str, unique: str) -> None:
    async with app_with(RateLimitSettings(per_s=0, client_per_s=0)) as client:
        (a,) = await _tenant(client, admin_token, f"rl-{unique}", tokens=1)
        base = f"/v1/tenants/rl-{unique}/namespaces"
        for _ in range(3 * BURST):
            answer = await client.get(base, headers=a)
            assert answer.status_code == 200, answer.text
            assert "ratelimit-limit" not in answer.headers
        for _ in range(3 * BURST):
            assert (await client.get(base)).status_code == 401
