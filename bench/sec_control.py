"""Section 4: control plane. Authenticated reads and writes vs a bare Litestar + asyncpg route."""

from __future__ import annotations

import json

from bench import load, pushes
from bench.report import Row, Section, ms, ratio, rps, verdict
from bench.stack import Stack, make_tenant, plugin_with_route

READ_TARGET = 0.5


def run(stack: Stack, *, seconds: float, rounds: int, connections: int) -> Section:
    """hey on GET plugin vs the floor's SELECT 1 (interleaved); Python client on POST version vs floor."""
    cp = stack.control_plane.url
    floor = stack.litestar_floor.url
    with stack.api() as api:
        headers = make_tenant(api, stack.admin_token, "cp")
        plugin_with_route(api, headers, "cp", "hello", pushes.plugin_source("cp"), "cp.bench.test/*")
    auth = f"Authorization: {headers['authorization']}"
    path = "/v1/tenants/cp/namespaces/prod/plugins/hello"
    targets = {
        "floor: Litestar, no database": (floor + "/plain", ()),
        "floor: Litestar + asyncpg SELECT 1": (floor + "/select1", ()),
        "GET plugin (authenticated)": (cp + path, (auth,)),
    }
    results: dict[str, list[load.LoadResult]] = {n: [] for n in targets}
    for _ in range(rounds):
        for name, (url, extra) in targets.items():
            results[name].append(load.hey(url, seconds=seconds, connections=connections, headers=extra))
    floor_name = "floor: Litestar + asyncpg SELECT 1"
    med = {n: load.median([r.rps for r in results[n]]) for n in targets}
    section = Section(number="4", title="Control plane (granian, 1 worker) vs bare Litestar + asyncpg")
    for name, samples in results.items():
        is_read = name.startswith("GET")
        errors = sum(r.errors for r in samples)
        section.rows.append(
            Row(
                measure=f"{name} (hey c={connections})",
                result=f"{rps(med[name])}, p50 {ms(load.median([r.p50_ms or 0 for r in samples]))}, "
                f"p99 {ms(load.median([r.p99_ms or 0 for r in samples]))}"
                + (f", {errors} errors" if errors else ""),
                floor=rps(med[floor_name]) if name != floor_name else "",
                ratio=ratio(med[name], med[floor_name]),
                target=f"≥ {READ_TARGET}x SELECT 1" if is_read else "",
                verdict=verdict(med[name] / med[floor_name] >= READ_TARGET) if is_read else "",
            )
        )
    section.rows += _writes(stack, cp, floor, headers["authorization"], seconds=seconds * rounds)
    section.notes.append(
        "GET: hey, interleaved rounds, medians. POST: a Python asyncio client (every body is a new "
        "version, not activated, so no push), compared with the floor driven by the same client."
    )
    return section


def _writes(stack: Stack, cp: str, floor: str, token: str, *, seconds: float) -> list[Row]:
    path = "/v1/tenants/cp/namespaces/prod/plugins/hello/versions"
    headers = {"Authorization": token, "Content-Type": "application/json"}

    def new_version(n: int) -> bytes:
        body = {"modules": [{"name": "index.js", "content": pushes.plugin_source(f"post {n}")}]}
        return load.raw_request("POST", path, headers, json.dumps(body).encode())

    def select1(_: int) -> bytes:
        return load.raw_request("GET", "/select1", {})

    conns = 8
    floor_res = load.async_load(floor, select1, seconds=seconds / 2, connections=conns)
    post = load.async_load(cp, new_version, seconds=seconds / 2, connections=conns)
    return [
        Row(
            measure=f"floor: SELECT 1 via the Python client (c={conns})",
            result=f"{rps(floor_res.rps)}, p50 {ms(floor_res.p50_ms)}, p99 {ms(floor_res.p99_ms)}",
        ),
        Row(
            measure=f"POST new version, not activated (Python client c={conns})",
            result=f"{rps(post.rps)}, p50 {ms(post.p50_ms)}, p99 {ms(post.p99_ms)}"
            + (f", {post.errors} errors" if post.errors else ""),
            floor=rps(floor_res.rps),
            ratio=ratio(post.rps, floor_res.rps),
        ),
    ]
