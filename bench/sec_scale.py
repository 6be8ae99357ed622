"""Section 6a: gateway at scale. Route lookup and one-namespace push time as tenants grow.

Every tenant has one namespace with 3 plugins and 3 routes: an exact host, a host + path
prefix, and a wildcard host. All plugins share one bundle (content-addressed), so only the first
push carries code. The gateway is a separate workerd so the other sections do not see this state.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from bench import load, pushes
from bench.report import Row, Section, ms, ratio, rps
from bench.stack import Stack

_HASH, _BUNDLE = pushes.bundle(pushes.plugin_source("scale"))


def tenant(i: int) -> str:
    """Tenant slug number i."""
    return f"t{i:05d}"


def routes(i: int) -> list[tuple[str, str]]:
    """The 3 routes of tenant i."""
    t = tenant(i)
    return [(f"a.{t}.scale.test/*", "a"), (f"{t}.scale.test/api/*", "b"), (f"*.w.{t}.scale.test/*", "c")]


def body(i: int, revision: int, *, with_bundle: bool = False) -> bytes:
    """Tenant i's push body."""
    return pushes.namespace_body(
        tenant(i),
        "prod",
        revision,
        routes(i),
        {"a": _HASH, "b": _HASH, "c": _HASH},
        {_HASH: _BUNDLE} if with_bundle else {},
    )


class _State:
    def __init__(self) -> None:
        self.count = 0
        self.revision = 1


def _lookups(gw: load.Client, probes: int) -> tuple[list[float], list[float]]:
    hosts = [("a.t00000.scale.test", "/"), ("t00000.scale.test", "/api/x"), ("x.w.t00000.scale.test", "/")]
    matched, missed = [], []
    for k in range(probes):
        host, path = hosts[k % 3]
        status, _, elapsed = gw.get(path, host=host)
        if status != 200:
            raise RuntimeError(f"{host}{path} answered {status}")
        matched.append(elapsed)
        status, _, elapsed = gw.get("/", host=f"nomatch{k % 97}.t{k % 10007:05d}.scale.test")
        if status != 404:
            raise RuntimeError(f"a miss answered {status}")
        missed.append(elapsed)
    return matched, missed


def run(stack: Stack, *, sizes: list[int], probes: int, push_samples: int, seconds: float) -> Section:
    """Grow to each size, then time route lookups (matched and missed), throughput and pushes."""
    gateway = stack.gateway("gateway-scale")
    state = _State()
    section = Section(number="6a", title="Gateway at scale: N tenants x 3 plugins x 3 routes")
    gw = load.Client(gateway.url)
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        pushes.push(http, stack.secret, tenant(0), "prod", body(0, 1, with_bundle=True))
        state.count = 1
        base: dict[str, float] = {}
        for size in [1, *sizes]:
            started = time.perf_counter()
            items = [(tenant(i), "prod", body(i, 1)) for i in range(state.count, size)]
            asyncio.run(pushes.push_many(gateway.url, stack.secret, items))
            seed_s = time.perf_counter() - started
            state.count = max(state.count, size)
            matched, missed = _lookups(gw, probes)
            through = load.hey(gateway.url + "/", seconds=seconds, connections=32, host="a.t00000.scale.test")
            push_ms = []
            for _ in range(push_samples):
                state.revision += 1
                payload = body(0, state.revision)
                t0 = time.perf_counter()
                pushes.push(http, stack.secret, tenant(0), "prod", payload)
                push_ms.append((time.perf_counter() - t0) * 1000)
            figures = {
                "match p50": load.percentile(matched, 50),
                "match p99": load.percentile(matched, 99),
                "miss p50": load.percentile(missed, 50),
                "push p50": load.percentile(push_ms, 50),
                "push p99": load.percentile(push_ms, 99),
                "rps": through.rps,
            }
            if size == 1:
                base = figures
            section.rows.append(
                Row(
                    measure=f"{size:>6} tenants ({3 * size} routes)",
                    result=f"lookup p50 {ms(figures['match p50'])} p99 {ms(figures['match p99'])}, "
                    f"miss p50 {ms(figures['miss p50'])}; {rps(through.rps)}; "
                    f"push p50 {ms(figures['push p50'])} p99 {ms(figures['push p99'])}",
                    floor="size 1" if size != 1 else "",
                    ratio=f"lookup {ratio(figures['match p50'], base['match p50'])}, "
                    f"push {ratio(figures['push p50'], base['push p50'])}",
                    verdict=f"seeded {len(items)} in {seed_s:.1f} s" if items else "",
                )
            )
    gw.close()
    section.notes.append(
        f"lookup: {probes} sequential requests to tenant 0's 3 routes (matched, served by the plugin) "
        "and as many to unmatched hosts (404 no-route: the lookup alone); throughput: hey c=32 on "
        f"one matched route; push: {push_samples} sequential signed pushes of tenant 0's namespace "
        "(new revision, no bundle). Ratios are against the same gateway holding 1 tenant."
    )
    return section
