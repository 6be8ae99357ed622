"""Section 6b: control-plane list endpoints and their plans as the tenant count grows."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg

from bench import explain, load, seed
from bench.report import Row, Section, ms, ratio
from bench.stack import Stack
from plugyard import db


def _endpoints(i: int) -> list[tuple[str, str, bool]]:
    t = seed.slug(i)
    ns = f"/v1/tenants/{t}/namespaces"
    return [
        ("GET /v1/tenants?limit=50 (admin)", f"/v1/tenants?limit=50&after={t}", True),
        ("GET namespaces", ns, False),
        ("GET plugins", f"{ns}/prod/plugins", False),
        ("GET plugin", f"{ns}/prod/plugins/a", False),
        ("GET versions", f"{ns}/prod/plugins/a/versions", False),
        ("GET routes", f"{ns}/prod/routes", False),
        ("GET deployments", f"{ns}/prod/deployments", False),
    ]


RECONCILE_TIMEOUT_S = 600.0


def _wait_reconciled(cp: load.Client, admin: dict[str, str]) -> float:
    """Wait (bounded) until no gateway is behind (`GET /v1/gateways`); returns the seconds waited."""
    started = time.perf_counter()
    while True:
        status, body, _ = cp.get("/v1/gateways", **admin)
        if status != 200:
            raise RuntimeError(f"/v1/gateways: {status} {body[:200]!r}")
        gateways = json.loads(body)["gateways"]
        if gateways and all(g.get("namespaces_behind") == 0 for g in gateways):
            return time.perf_counter() - started
        if time.perf_counter() - started > RECONCILE_TIMEOUT_S:
            raise RuntimeError(f"still behind after {RECONCILE_TIMEOUT_S:.0f} s: {body[:200]!r}")
        time.sleep(0.5)


def run(stack: Stack, *, sizes: list[int], probes: int) -> Section:
    """Seed to each size with COPY, time each list endpoint for a middle tenant, EXPLAIN at the end."""
    section = Section(number="6b", title="Control plane at scale: list endpoints, COPY-seeded")
    cp = load.Client(stack.control_plane.url)
    curves: dict[str, list[tuple[float, float]]] = {}
    seeded = 0
    verdicts: list[tuple[str, str, float]] = []
    for size in sizes:
        started = time.perf_counter()
        asyncio.run(_seed(stack.database.url, seeded, size, stack.gateway().url))
        copy_s = time.perf_counter() - started
        section.notes.append(f"seeded tenants {seeded}..{size - 1} with COPY in {copy_s:.2f} s")
        seeded = size
        # The seeded namespaces are not on the run's gateway: the reconciler pushes them there
        # (drift), thousands of pushes that took the control plane's one worker away from the
        # timed requests (seen: list endpoints 3-5x slower at 10,000). Time the steady state.
        waited = _wait_reconciled(cp, {"Authorization": f"Bearer {stack.admin_token}"})
        section.notes.append(f"the reconciler caught the gateway up with {size} tenants in {waited:.1f} s")
        mid = size // 2
        user = {"Authorization": f"Bearer {seed.token(mid)}"}
        admin = {"Authorization": f"Bearer {stack.admin_token}"}
        endpoints = _endpoints(mid)
        for _, path, as_admin in endpoints:  # untimed: connections and plan caches warm
            for _ in range(5):
                cp.get(path, **(admin if as_admin else user))
        for name, path, as_admin in endpoints:
            samples = []
            for _ in range(probes):
                status, body, elapsed = cp.get(path, **(admin if as_admin else user))
                if status != 200:
                    raise RuntimeError(f"{path}: {status} {body[:200]!r}")
                samples.append(elapsed)
            curves.setdefault(name, []).append((load.percentile(samples, 50), load.percentile(samples, 99)))
        if size == sizes[-1]:
            verdicts = asyncio.run(_explain(stack.database.url, mid))
    cp.close()
    for name, points in curves.items():
        section.rows.append(
            Row(
                measure=name,
                result=" → ".join(f"{ms(p50)}" for p50, _ in points),
                floor=f"p99 at {sizes[-1]}: {ms(points[-1][1])}",
                ratio=ratio(points[-1][0], points[0][0]),
                target="flat (paginated, indexed)",
                verdict="",
            )
        )
    section.notes.insert(
        0,
        f"p50 latency of {probes} sequential requests per endpoint for the middle tenant at "
        f"{' → '.join(str(s) for s in sizes)} tenants; ratio = largest / smallest size.",
    )
    section.notes.append(f"EXPLAIN ANALYZE verdicts at {sizes[-1]} tenants (middle tenant):")
    section.notes.append("")
    section.notes.append("| query | plan verdict | execution |")
    section.notes.append("|---|---|---|")
    section.notes += [f"| {label} | {v} | {ms(t)} |" for label, v, t in verdicts]
    return section


async def _seed(url: str, start: int, stop: int, gateway: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await seed.seed(conn, start, stop, gateway)
    finally:
        await conn.close()


async def _explain(url: str, i: int) -> list[tuple[str, str, float]]:
    conn = await db.connect(url)
    try:
        return await explain.explain_all(conn, i)
    finally:
        await conn.close()
