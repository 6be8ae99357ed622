"""PostgreSQL stopped and started under write load: 503 problems, recovery, no lost writes.

The test owns an embedded PostgreSQL (plugyard.embedded_db, its own data folder and socket) and
a private control plane pointing at it, so stopping the database disturbs nothing else.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from plugyard import db, embedded_db
from plugyard.settings import PROJECT_ROOT
from tests.conftest import OUTPUT, ControlPlane, free_port
from tests.security.figures import record

pytestmark = pytest.mark.e2e

WRITERS = 8
RUN_S = 9.0  # the load runs this long in all
OUTAGE_AT_S = 2.0
OUTAGE_S = 2.5
SLOW_S = 10.0  # no answer may take longer: an outage is a quick 503, not a hang


@pytest.fixture
def private_database() -> Iterator[tuple[str, Any]]:
    # Not pytest's tmp_path: as root the server runs as its own user, which cannot enter 0700
    # folders, so the data lives under a world-searchable folder of ours.
    folder = Path(tempfile.mkdtemp(prefix="plugyard-restart-"))
    folder.chmod(0o755)
    url, server = embedded_db.start(folder / "pgdata")

    async def migrate() -> None:
        conn = await db.connect(url)
        try:
            await db.migrate(conn, PROJECT_ROOT / "migrations")
        finally:
            await conn.close()

    asyncio.run(migrate())
    yield url, server
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def private_control_plane(private_database: tuple[str, Any]) -> Iterator[tuple[ControlPlane, str]]:
    url, _ = private_database
    admin = "pyd_admin_" + secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PLUGYARD_GATEWAY_URLS": "",
        "PLUGYARD_ADMIN_TOKEN": admin,
        "PLUGYARD_DB_POOL_MAX": "4",
        # One token writes as fast as it can: the API rate limit (50/s) would answer 429s.
        "PLUGYARD_RATE_LIMIT_PER_S": "0",
    }
    OUTPUT.mkdir(exist_ok=True)
    cp = ControlPlane(env, free_port(), OUTPUT / "control-plane-db-restart.log")
    cp.start()
    yield cp, admin
    cp.stop()


async def _load(base_url: str, headers: dict[str, str], tenant: str) -> list[tuple[str, int, float, Any]]:
    """WRITERS concurrent writers creating namespaces until RUN_S has passed."""
    results: list[tuple[str, int, float, Any]] = []
    deadline = time.monotonic() + RUN_S
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=SLOW_S + 5) as http:

        async def writer(w: int) -> None:
            for n in range(10_000):
                if time.monotonic() > deadline:
                    return
                name = f"w{w}-{n}"
                started = time.monotonic()
                try:
                    answer = await http.post(f"/v1/tenants/{tenant}/namespaces", json={"name": name})
                except httpx.HTTPError as exc:
                    results.append((name, 0, time.monotonic() - started, repr(exc)))
                    await asyncio.sleep(0.05)
                    continue
                took = time.monotonic() - started
                body = answer.json() if answer.content else None
                results.append((name, answer.status_code, took, (answer.headers, body)))
                if answer.status_code == 503:
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    return results


def test_database_restart_under_load_is_503_then_recovers_without_losing_writes(
    private_database: tuple[str, Any], private_control_plane: tuple[ControlPlane, str]
) -> None:
    url, server = private_database
    cp, admin = private_control_plane
    headers = {"authorization": f"Bearer {admin}"}
    tenant = "restart"
    created = httpx.post(cp.url + "/v1/tenants", json={"slug": tenant, "name": "Restart"}, headers=headers)
    assert created.status_code == 201, created.text

    def outage() -> None:
        time.sleep(OUTAGE_AT_S)
        server.stop()  # pg_ctl stop (fast): sessions are cut, new connections refused
        time.sleep(OUTAGE_S)
        server.ensure_postgres_running()

    restarter = threading.Thread(target=outage)
    restarter.start()
    results = asyncio.run(_load(cp.url, headers, tenant))
    restarter.join(timeout=60)
    assert not restarter.is_alive()

    acknowledged = {name for name, status, _, _ in results if status == 201}
    outage_answers = [extra for _, status, _, extra in results if status == 503]
    unexpected = [(name, status, extra) for name, status, _, extra in results if status not in {201, 503}]
    slowest = max(took for _, _, took, _ in results)
    record(
        "database_restart",
        calls=len(results),
        failures=len(unexpected),
        acknowledged=len(acknowledged),
        unavailable=len(outage_answers),
    )
    assert not unexpected, unexpected[:5]
    assert outage_answers, "the load never saw the outage"
    for answer_headers, body in outage_answers:
        assert answer_headers["content-type"].startswith("application/problem+json")
        assert body["status"] == 503
        assert body["type"].endswith("/database-unavailable")
        assert "retry-after" in answer_headers
    assert slowest < SLOW_S, slowest
    # Recovered by itself: the last answer of every writer was a success.
    last = {}
    for name, status, _, _ in results:
        last[name.split("-")[0]] = status
    assert set(last.values()) == {201}, last
    assert httpx.get(cp.url + "/healthz").status_code == 200

    async def stored() -> set[str]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT name FROM namespaces")
        finally:
            await conn.close()
        return {row["name"] for row in rows}

    missing = acknowledged - asyncio.run(stored())
    assert not missing, f"acknowledged but not stored: {sorted(missing)[:10]}"
