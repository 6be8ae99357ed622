"""Section 7: the gateway pool. Warm-plugin throughput with K=1 vs K=2 serving processes, and the
cost of the pool's per-dispatch stdout lines (runaway attribution) against an unpooled gateway."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import load, pushes
from bench.report import Row, Section, ms, ratio, rps, verdict
from bench.stack import Stack
from plugyard.gateway.supervisor import PoolSettings, Supervisor

HOST = "pool.bench.test"
TARGET = 1.6
CODE = 'export default { fetch() { return new Response("hello") } }'


def _push(url: str, secret: str) -> None:
    """Push the warm plugin straight to a gateway (signed; no control plane needed)."""
    pushes.push_plugin(url, secret, "bench-pool", "prod", f"{HOST}/*", "warm", CODE)


def _pool(stack: Stack, k: int) -> Supervisor:
    storage = stack.workdir / f"pool-k{k}"
    storage.mkdir(parents=True, exist_ok=True)
    pool = Supervisor(
        PoolSettings(processes=k, listen="127.0.0.1:0"),
        storage_dir=storage,
        secret=stack.secret,
        log_file=stack.log(f"pool-k{k}"),
    )
    pool.start()
    _push(pool.url, stack.secret)
    return pool


def _cpu_s(pids: list[int]) -> float:
    """utime + stime of the processes so far (Linux /proc/PID/stat), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# (label, wrk pipeline depth): one request per round trip, and pipelined, which takes the load
# generator's system calls (and so most of its CPU) out of the picture on a box it shares.
MODES: tuple[tuple[str, int | None], ...] = (("1 request per round trip", None), ("pipelined x8", 8))
UNPOOLED, K1, K2, TWO = (
    "unpooled gateway (1 process, no dispatch lines)",
    "pool K=1",
    "pool K=2",
    "2 unpooled gateways side by side (the box's ceiling)",
)


def _wrk_both(urls: list[str], *, seconds: float, connections: int, pipeline: int | None) -> load.LoadResult:
    """One wrk per URL at the same time, connections split between them; rates summed."""
    with ThreadPoolExecutor(len(urls)) as pool:
        runs = [
            pool.submit(
                load.wrk,
                url,
                seconds=seconds,
                connections=connections // len(urls),
                host=HOST,
                pipeline=pipeline,
            )
            for url in urls
        ]
        results = [r.result() for r in runs]
    return load.LoadResult(rps=sum(r.rps for r in results), errors=sum(r.errors for r in results))


def run(stack: Stack, *, seconds: float, rounds: int, connections: int) -> Section:
    """Interleave wrk over K=1, K=2, the unpooled gateway and two of them, `rounds` times; medians."""
    pools = {1: _pool(stack, 1), 2: _pool(stack, 2)}
    try:
        single, other = (
            stack.gateway("gateway-pool-a", metrics=False),
            stack.gateway("gateway-pool-b", metrics=False),
        )
        for gateway in (single, other):
            _push(gateway.url, stack.secret)
        targets = {
            UNPOOLED: [single.url + "/x"],
            K1: [pools[1].url + "/x"],
            K2: [pools[2].url + "/x"],
            TWO: [single.url + "/x", other.url + "/x"],
        }
        # A push is live on every pool process within its 1 s snapshot refresh; then load the
        # isolate everywhere before timing.
        time.sleep(1.5)
        for url in {u for urls in targets.values() for u in urls}:
            client = load.Client(url.removesuffix("/x"))
            for _ in range(16):
                status, body, _ = client.get("/x", host=HOST)
                if status != 200:
                    raise RuntimeError(f"{url} answered {status}: {body[:200]!r}")
            client.close()
        # The server side of each target: its workerd processes (a pool's state process too).
        servers = {
            UNPOOLED: [single.proc.pid if single.proc else None],
            K1: [m.pid for m in [pools[1].state, *pools[1].members] if m is not None],
            K2: [m.pid for m in [pools[2].state, *pools[2].members] if m is not None],
        }
        per_cpu_s: dict[str, list[float]] = {name: [] for name in servers}
        samples: dict[tuple[str, str], list[load.LoadResult]] = {
            (n, m): [] for n in targets for m, _ in MODES
        }
        lat: dict[str, list[load.LoadResult]] = {name: [] for name in servers}
        names = list(targets)
        for r in range(rounds):
            # Rotate the order each round so no target always runs right after the same neighbour.
            for name in names[r % len(names) :] + names[: r % len(names)]:
                for mode, depth in MODES:
                    pids = [p for p in servers.get(name, []) if p is not None]
                    cpu0, t0 = _cpu_s(pids), time.monotonic()
                    result = _wrk_both(
                        targets[name], seconds=seconds, connections=connections, pipeline=depth
                    )
                    cpu, elapsed = _cpu_s(pids) - cpu0, time.monotonic() - t0
                    samples[(name, mode)].append(result)
                    if depth is None and name in servers:
                        per_cpu_s[name].append(result.rps * elapsed / cpu if cpu > 0 else float("nan"))
                if name in servers:
                    lat[name].append(
                        load.hey(targets[name][0], seconds=seconds, connections=connections, host=HOST)
                    )
    finally:
        for pool in pools.values():
            pool.stop()
    section = Section(number="7", title="Gateway pool: K=1 vs K=2 serving processes (warm plugin)")
    # Each row's floor: K=2 against K=1 (the target), the rest against the unpooled gateway.
    against = {K1: UNPOOLED, K2: K1, TWO: UNPOOLED}
    for mode, _ in MODES:
        med = {n: load.median([s.rps for s in samples[(n, mode)]]) for n in targets}
        errors = {n: sum(s.errors for s in samples[(n, mode)]) for n in targets}
        for name in targets:
            floor = against.get(name)
            section.rows.append(
                Row(
                    measure=f"{name}, wrk c={connections}, {mode}",
                    result=rps(med[name]) + (f", {errors[name]} errors" if errors[name] else ""),
                    floor=rps(med[floor]) if floor else "",
                    ratio=ratio(med[name], med[floor]) if floor else "",
                    target=f"≥ {TARGET}x K=1" if name == K2 else "",
                    verdict=verdict(med[K2] / med[K1] >= TARGET) if name == K2 else "",
                )
            )
    for name in servers:
        p50 = load.median([s.p50_ms or 0 for s in lat[name]])
        p99 = load.median([s.p99_ms or 0 for s in lat[name]])
        section.rows.append(
            Row(measure=f"{name} latency (hey c={connections})", result=f"p50 {ms(p50)}, p99 {ms(p99)}")
        )
    eff = {n: load.median(per_cpu_s[n]) for n in servers}
    section.rows.append(
        Row(
            measure="server CPU efficiency (requests per CPU-second of the gateway's workerd processes)",
            result="; ".join(f"{name.split(' (')[0]} {eff[name] / 1000:.2f}k" for name in servers),
            floor=f"{eff[K1] / 1000:.2f}k",
            ratio=ratio(eff[K2], eff[K1]),
        )
    )
    cores = os.cpu_count() or 1
    section.notes.append(
        f"{rounds} interleaved round(s) of {seconds:.0f} s per target, client mode and tool; medians. "
        f"{cores} cores, shared with the load generator (wrk -t1): with one request per round trip, "
        "wrk's system calls (and the loopback TCP work done in them) take a good part of the second "
        "core that K=2 needs, so that row is a floor of what a box with a core per process and a "
        "separate load generator gets. Pipelined (wrk writes 8 requests per round trip on each "
        "connection; bench/wrk_pipeline.lua) the client takes far less CPU per request, which is "
        "the closer measure of how the pool itself scales. The ceiling row runs two independent "
        "unpooled gateways at once, each with its own wrk and half the connections: what two "
        "workerd processes can get out of this box at all. The K=1 row's ratio is pooled/unpooled: "
        "the cost of the dispatch lines (two synchronous stdout writes per request) and the "
        "supervisor reading them. The efficiency row divides each unpipelined wrk run's requests by "
        "the utime+stime its workerd processes used meanwhile (/proc/PID/stat; a pool's state "
        "process included)."
    )
    return section
