"""Section 1: warm path. Gateway → warm plugin vs the same plugin behind a static service binding."""

from __future__ import annotations

from bench import load, pushes
from bench.procs import FLOORS
from bench.report import Row, Section, ms, ratio, rps, verdict
from bench.stack import Stack, make_tenant, plugin_with_route

HOST = "warm.bench.test"
TARGET = 0.9
GATEWAY = "gateway → warm plugin (as deployed: metrics and plugin logs on)"


def run(stack: Stack, *, seconds: float, rounds: int, connections: int) -> Section:
    """Interleave wrk (throughput) then hey (latency) over every target, `rounds` times; medians."""
    code = (FLOORS / "plugin.js").read_text()
    with stack.api() as api:
        headers = make_tenant(api, stack.admin_token, "warm")
        plugin_with_route(api, headers, "warm", "hello", code, f"{HOST}/*")
    # The same plugin on a gateway without metrics (no ingest URL: no log capture, no
    # counting), pushed straight to it: what metrics and plugin logs cost on the warm path.
    bare = stack.gateway("gateway-no-metrics", metrics=False)
    pushes.push_plugin(bare.url, stack.secret, "warm", "prod", f"{HOST}/*", "hello", code)
    front = stack.floor("front.capnp").url
    targets = {
        "plain worker (floor)": (stack.floor("plain.capnp").url + "/", None),
        "static service binding (floor)": (front + "/binding/x", None),
        "bare LOADER.get, warm (floor)": (front + "/loader/x?id=warm", None),
        "gateway → warm plugin, metrics off": (bare.url + "/x", HOST),
        GATEWAY: (stack.gateway().url + "/x", HOST),
    }
    # One request each first: the gateways load their snapshot and the isolate before timing.
    for gateway in (stack.gateway(), bare):
        client = load.Client(gateway.url)
        status, answer, _ = client.get("/x", host=HOST)
        client.close()
        if status != 200:
            raise RuntimeError(f"the warm plugin answered {status}: {answer[:200]!r}")
    samples: dict[str, list[load.LoadResult]] = {name: [] for name in targets}
    lat: dict[str, list[load.LoadResult]] = {name: [] for name in targets}
    names = list(targets)
    for r in range(rounds):
        # Rotate the order each round so no target always runs right after the same neighbour.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            url, host = targets[name]
            samples[name].append(load.wrk(url, seconds=seconds, connections=connections, host=host))
            lat[name].append(load.hey(url, seconds=seconds, connections=connections, host=host))
    med = {n: load.median([s.rps for s in samples[n]]) for n in targets}
    p50 = {n: load.median([s.p50_ms or 0 for s in lat[n]]) for n in targets}
    p99 = {n: load.median([s.p99_ms or 0 for s in lat[n]]) for n in targets}
    hey_rps = {n: load.median([s.rps for s in lat[n]]) for n in targets}
    errors = {n: sum(s.errors for s in samples[n] + lat[n]) for n in targets}
    binding = "static service binding (floor)"
    section = Section(number="1", title="Warm path: gateway vs static service binding")
    for name in targets:
        is_gateway = name == GATEWAY
        section.rows.append(
            Row(
                measure=f"{name} (wrk c={connections})",
                result=rps(med[name]) + (f", {errors[name]} errors" if errors[name] else ""),
                floor=rps(med[binding]) if name != binding else "",
                ratio=ratio(med[name], med[binding]) if name != binding else "1.00x",
                target=f"≥ {TARGET}x binding" if is_gateway else "",
                verdict=verdict(med[name] / med[binding] >= TARGET) if is_gateway else "",
            )
        )
    for name in targets:
        section.rows.append(
            Row(
                measure=f"{name} latency (hey c={connections})",
                result=f"p50 {ms(p50[name])}, p99 {ms(p99[name])} at {rps(hey_rps[name])}",
                floor=f"p50 {ms(p50[binding])}" if name != binding else "",
                ratio=ratio(p50[name], p50[binding]) if name != binding else "",
            )
        )
    section.notes.append(
        f"{rounds} interleaved round(s), order rotated each round, of {seconds:.0f} s per target "
        "and tool; medians. "
        "Ratios are result/floor (for latency, >1x is slower). The deployed gateway sends metrics "
        "and plugin logs to the run's control plane: every plugin isolate is loaded behind the "
        "gateway's generated main module that captures console output and exceptions (sent to the "
        "gateway only when there are any) and every request is counted; the metrics-off gateway "
        "holds the same plugin without either."
    )
    return section
