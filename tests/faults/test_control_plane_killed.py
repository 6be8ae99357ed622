"""The control plane SIGKILLed mid-push: every deployment is whole and ends up on the gateway.

A private gateway and control-plane processes on a fresh database. Between them sits a loopback
TCP proxy that holds every chunk bound for the gateway for PUSH_DELAY_S, so each push takes a
noticeable time and a kill lands inside the push window often (the figure is recorded). Client
threads activate versions and add routes in two namespaces while the test SIGKILLs the whole
control-plane process group at a random point, ROUNDS times; a fresh control plane then
reconciles. Afterwards every namespace's revisions are gapless, every deployment has its push
row and none stays pending or failed, every acknowledged change is in the database and in the
latest deployment, and the gateway holds and serves each namespace's latest revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from plugyard.gateway.process import GatewayProcess
from tests.conftest import free_port
from tests.integration import deploy_helpers
from tests.integration.deploy_helpers import Replica, held, wait_until
from tests.integration.helpers import Tenant, plugin_code, via_gateway
from tests.security.figures import record

pytestmark = pytest.mark.e2e

own_database = deploy_helpers.own_database
own_gateway = deploy_helpers.own_gateway

ROUNDS = 4
NAMESPACES = ("ns0", "ns1")
CLIENTS_PER_NAMESPACE = 2
PUSH_DELAY_S = 0.15
SETTLE_S = 20.0  # pending pushes are retried after 3 s; all must be settled well within this
SEED = 9


class SlowProxy:
    """A loopback TCP proxy to the gateway that holds each chunk sent to it `delay_s` seconds.

    It stands for a slow network between control plane and gateway; replies pass unchanged.
    """

    def __init__(self, target_port: int, delay_s: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.delay_s = delay_s
        self._target = target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> SlowProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer, slow=True), self._pump(up_reader, writer, slow=False)
        )
        self._writers -= {writer, up_writer}

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, slow: bool) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(65536):
                if slow and self.delay_s:
                    await asyncio.sleep(self.delay_s)
                dst.write(data)
                await dst.drain()
        dst.close()


@pytest.fixture
def proxy(own_gateway: GatewayProcess) -> Iterator[SlowProxy]:
    with SlowProxy(own_gateway.port, PUSH_DELAY_S) as running:
        yield running


class Client(threading.Thread):
    """Changes one namespace in a loop until the control plane stops answering.

    Every 2xx answer is kept as (namespace, kind, what, revision) for the final checks.
    """

    def __init__(self, url: str, tenant: Tenant, namespace: str, name: str, rng: random.Random) -> None:
        super().__init__()
        self.url, self.tenant, self.namespace, self.name = url, tenant, namespace, name
        self.rng = rng
        self.acked: list[tuple[str, str, str, int]] = []
        self.unexpected: list[str] = []

    def run(self) -> None:
        path = self.tenant.url(f"/namespaces/{self.namespace}")
        with httpx.Client(base_url=self.url, headers=self.tenant.headers, timeout=30) as http:
            for n in range(1000):
                try:
                    if self.rng.random() < 0.5:
                        version = self.rng.choice((1, 2))
                        answer = http.put(path + "/plugins/p/active-version", json={"version": version})
                        kind, what = "active", f"v{version}"
                    else:
                        what = f"{self.name}-{n}.{self.namespace}.kill.test/*"
                        answer = http.post(path + "/routes", json={"pattern": what, "plugin": "p"})
                        kind = "route"
                except httpx.TransportError:
                    return  # the control plane is gone
                if answer.status_code not in {200, 201}:
                    self.unexpected.append(f"{answer.status_code} {answer.text[:200]}")
                    return
                self.acked.append((self.namespace, kind, what, answer.json()["deployment"]["revision"]))


async def _pending(database_url: str) -> set[Any]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT deployment_id FROM pushes WHERE status = 'pending'")
    finally:
        await conn.close()
    return {row["deployment_id"] for row in rows}


async def _database(database_url: str) -> dict[str, Any]:
    """Everything the invariant is checked against, per namespace name."""
    conn = await asyncpg.connect(database_url)
    try:
        deployments = await conn.fetch(
            "SELECT n.name, d.revision, d.state, "
            "       (SELECT array_agg(p.status) FROM pushes p WHERE p.deployment_id = d.id) AS pushes "
            "FROM deployments d JOIN namespaces n ON n.id = d.namespace_id ORDER BY n.name, d.revision"
        )
        routes = await conn.fetch(
            "SELECT n.name, r.pattern FROM routes r JOIN namespaces n ON n.id = r.namespace_id"
        )
        active = await conn.fetch(
            "SELECT n.name, v.number, v.hash FROM plugins p JOIN namespaces n ON n.id = p.namespace_id "
            "JOIN plugin_versions v ON v.id = p.active_version_id"
        )
        hashes = await conn.fetch("SELECT number, hash, plugin_id FROM plugin_versions")
    finally:
        await conn.close()
    return {"deployments": deployments, "routes": routes, "active": active, "hashes": hashes}


def _state(deployment: Any) -> Any:
    state = deployment["state"]
    return json.loads(state) if isinstance(state, str) else state


def test_a_control_plane_killed_mid_push_leaves_every_deployment_whole_and_delivered(
    own_database: str, own_gateway: GatewayProcess, proxy: SlowProxy, admin_token: str, unique: str
) -> None:
    rng = random.Random(SEED)
    replicas: list[Replica] = []

    def start() -> Replica:
        cp = Replica(own_database, own_gateway, admin_token, f"killed-{len(replicas)}")
        cp.env["PLUGYARD_GATEWAY_URLS"] = proxy.url  # every push goes through the slow link
        replicas.append(cp)
        cp.start()
        return cp

    try:
        cp = start()
        tenant = Tenant(httpx.Client(base_url=cp.url, timeout=30), admin_token, f"ck-{unique}")
        for ns in NAMESPACES:
            tenant.plugin_with_route(
                namespace=ns, plugin="p", code=plugin_code(f"{ns} v1"), pattern=f"h.{ns}.kill.test/*"
            )
            tenant.post(
                f"/namespaces/{ns}/plugins/p/versions",
                {"modules": [{"name": "index.js", "content": plugin_code(f"{ns} v2")}]},
            )
        clients: list[Client] = []
        hit_open_push = open_pushes_cut = 0
        for round_ in range(ROUNDS):
            if round_:
                cp = start()
            pending_before = asyncio.run(_pending(own_database))
            batch = [
                Client(cp.url, tenant, ns, f"r{round_}c{i}", random.Random(rng.random()))
                for ns in NAMESPACES
                for i in range(CLIENTS_PER_NAMESPACE)
            ]
            for client in batch:
                client.start()
            # Kill once the clients are under way, at a random point of their stream of pushes.
            wait_until(lambda b=batch: sum(len(c.acked) for c in b) >= 2, timeout_s=20)
            time.sleep(rng.uniform(0.0, 0.6))
            cp.kill()
            killed_at = time.monotonic()
            for client in batch:
                client.join(timeout=40)
                assert not client.is_alive()
            # A push was open at the kill (recorded, not yet answered) if a new pending row is left.
            cut = asyncio.run(_pending(own_database)) - pending_before
            hit_open_push += bool(cut)
            open_pushes_cut += len(cut)
            clients += batch

        # A fresh control plane over a fast link: its reconciler must finish what the others left.
        proxy.delay_s = 0.0
        cp = start()

        def settled() -> bool:
            data = asyncio.run(_database(own_database))
            return all(
                d["pushes"] is not None and set(d["pushes"]) <= {"succeeded", "superseded"}
                for d in data["deployments"]
            )

        wait_until(settled, timeout_s=SETTLE_S, interval_s=0.2)
        took_to_settle = time.monotonic() - killed_at  # the last kill: includes the restart
        data = asyncio.run(_database(own_database))
        latest: dict[str, Any] = {}
        for d in data["deployments"]:
            latest[d["name"]] = d
        keys = {f"{tenant.slug}/{ns}": latest[ns]["revision"] for ns in NAMESPACES}
        wait_until(
            lambda: all(held(own_gateway).namespaces.get(k) == r for k, r in keys.items()), timeout_s=10
        )
    finally:
        for replica in replicas:
            replica.stop()

    # No client saw anything but success or a dropped connection.
    unexpected = [u for c in clients for u in c.unexpected]
    assert not unexpected, unexpected[:5]
    acked = [a for c in clients for a in c.acked]

    # Every deployment is whole: gapless revisions, exactly one push row each (one gateway),
    # delivered or superseded; nothing pending or failed.
    by_ns: dict[str, list[Any]] = {}
    for d in data["deployments"]:
        by_ns.setdefault(d["name"], []).append(d)
    for ns, rows in by_ns.items():
        assert [d["revision"] for d in rows] == list(range(1, len(rows) + 1)), ns
        for d in rows:
            assert len(d["pushes"] or ()) == 1, (ns, d["revision"], d["pushes"])
        assert rows[-1]["pushes"] == ["succeeded"], (ns, rows[-1]["pushes"])

    # Nothing committed without its deployment: the latest snapshot has every stored route and
    # the active version; every acknowledged change is stored and in the deployment it named.
    stored_routes = {(r["name"], r["pattern"]) for r in data["routes"]}
    active = {a["name"]: (a["number"], a["hash"]) for a in data["active"]}
    for ns in NAMESPACES:
        state = _state(latest[ns])
        assert {r["pattern"] for r in state["routes"]} == {p for n, p in stored_routes if n == ns}
        assert state["plugins"]["p"]["version"] == active[ns][1]
    revisions = {(d["name"], d["revision"]): d for d in data["deployments"]}
    for ns, kind, what, revision in acked:
        assert (ns, revision) in revisions, (ns, kind, what, revision)
        if kind == "route":
            assert (ns, what) in stored_routes, what
            assert what in {r["pattern"] for r in _state(revisions[(ns, revision)])["routes"]}

    # The gateway serves each namespace's latest state: the active version on the first route
    # and on the last acknowledged route.
    for ns in NAMESPACES:
        want = f"{ns} v{active[ns][0]}"
        assert via_gateway(own_gateway.url, f"h.{ns}.kill.test").text == want
        routes = [what for n, kind, what, _ in acked if n == ns and kind == "route"]
        if routes:
            assert via_gateway(own_gateway.url, routes[-1].removesuffix("/*")).text == want

    record(
        "control_plane_killed",
        calls=len(acked) + len(clients),
        failures=0,
        kills=ROUNDS,
        kills_inside_push=hit_open_push,
        open_pushes_cut=open_pushes_cut,
        acknowledged=len(acked),
        deployments=len(data["deployments"]),
        settled_ms=round(took_to_settle * 1000),
    )
    assert hit_open_push >= 1, "no kill landed while a push was open"
