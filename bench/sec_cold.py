"""Section 2: cold path. First request to a new version at the gateway vs a bare LOADER.get."""

from __future__ import annotations

import uuid

import httpx

from bench import load, pushes
from bench.report import Row, Section, ms, ratio, verdict
from bench.stack import Stack

P50_TARGET_MS = 6.0
P99_TARGET_MS = 20.0


def run(stack: Stack, *, count: int) -> Section:
    """Push `count` distinct versions, then alternate: one cold gateway request, one cold floor request.

    Every gateway version is a new loader id whose code the callback reads from the gateway's
    Registry (SQLite storage); every floor request uses a new id for the same code held in
    memory. A second (warm) request to each gateway version is timed too.
    """
    gateway = stack.gateway()
    run_id = uuid.uuid4().hex[:6]
    versions: dict[str, str] = {}
    bundles: dict[str, dict[str, object]] = {}
    routes = []
    for i in range(count):
        h, code = pushes.bundle(pushes.plugin_source(f"cold {run_id} {i}"))
        versions[f"p{i}"] = h
        bundles[h] = code
        routes.append((f"c{i}.cold-{run_id}.bench.test/*", f"p{i}"))
    payload = pushes.namespace_body(f"cold-{run_id}", "prod", 1, routes, versions, bundles)
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        pushes.push(http, stack.secret, f"cold-{run_id}", "prod", payload)
    gw = load.Client(gateway.url)
    floor = load.Client(stack.floor("front.capnp").url)
    cold: list[float] = []
    warm: list[float] = []
    bare: list[float] = []
    for i in range(count):
        host = f"c{i}.cold-{run_id}.bench.test"
        status, text, elapsed = gw.get("/", host=host)
        if status != 200 or text.decode() != f"cold {run_id} {i}":
            raise RuntimeError(f"cold request {i}: {status} {text[:200]!r}")
        cold.append(elapsed)
        status, _, elapsed = floor.get(f"/loader/x?id=cold-{run_id}-{i}")
        if status != 200:
            raise RuntimeError(f"floor cold request {i}: {status}")
        bare.append(elapsed)
        warm.append(gw.get("/", host=host)[2])
    gw.close()
    floor.close()
    section = Section(number="2", title="Cold path: first request to a new version")
    c50, c99 = load.percentile(cold, 50), load.percentile(cold, 99)
    b50, b99 = load.percentile(bare, 50), load.percentile(bare, 99)
    section.rows += [
        Row(
            measure=f"gateway, new version (code from storage), p50 of {count}",
            result=ms(c50),
            floor=ms(b50),
            ratio=ratio(c50, b50),
            target=f"≤ {P50_TARGET_MS:.0f} ms",
            verdict=verdict(c50 <= P50_TARGET_MS),
        ),
        Row(
            measure=f"gateway, new version, p99 of {count}",
            result=ms(c99),
            floor=ms(b99),
            ratio=ratio(c99, b99),
            target=f"≤ {P99_TARGET_MS:.0f} ms",
            verdict=verdict(c99 <= P99_TARGET_MS),
        ),
        Row(measure="bare LOADER.get, new id (floor), max", result=ms(max(bare))),
        Row(
            measure="gateway, same version again (warm), p50 / p99",
            result=f"{ms(load.percentile(warm, 50))} / {ms(load.percentile(warm, 99))}",
        ),
    ]
    section.notes.append(
        "Sequential requests from one keep-alive Python client (its own ~0.1-0.2 ms is in every "
        "figure); gateway and floor requests alternate."
    )
    return section
