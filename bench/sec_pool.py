"""Section 7: the gateway pool. Warm-plugin throughput with K=1 vs K=2 serving processes, and the
cost of the pool's per-dispatch stdout lines (runaway attribution) against an unpooled gateway."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import httpx

from bench import load
from bench.report import Row, Section, ms, ratio, rps, verdict
from bench.stack import Stack
from plugyard import signing
from plugyard.gateway.supervisor import PoolSettings, Supervisor

HOST = "pool.bench.test"
TARGET = 1.6
CODE = 'export default { fetch() { return new Response("hello") } }'


def _push(url: str, secret: str) -> None:
    """Push the warm plugin straight to a gateway (signed; no control plane needed)."""
    bundle = {
        "mainModule": "index.js",
        "modules": {"index.js": {"js": CODE}},
        "compatibilityDate": "2025-11-01",
    }
    digest = hashlib.sha256(json.dumps(bundle, sort_keys=True).encode()).hexdigest()
    body = json.dumps(
        {
            "tenant": "bench-pool",
            "namespace": "prod",
            "revision": 1,
            "routes": [{"pattern": f"{HOST}/*", "plugin": "warm"}],
            "plugins": {"warm": {"version": digest, "env_hash": "0" * 16, "vars": {}, "limits": None}},
            "bundles": {digest: bundle},
        }
    ).encode()
    path = "/_plugyard/namespaces/bench-pool/prod"
    headers = {**signing.sign(secret, method="PUT", path=path, body=body), "content-type": "application/json"}
    response = httpx.put(url + path, content=body, headers=headers, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"push to {url} answered {response.status_code}: {response.text[:200]}")


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


def run(stack: Stack, *, seconds: float, rounds: int, connections: int) -> Section:
    """Interleave wrk over K=1, K=2 and the unpooled gateway, `rounds` times; medians."""
    pools = {1: _pool(stack, 1), 2: _pool(stack, 2)}
    try:
        single = stack.gateway()
        _push(single.url, stack.secret)
        targets = {
            "unpooled gateway (1 process, no dispatch lines)": single.url + "/x",
            "pool K=1": pools[1].url + "/x",
            "pool K=2": pools[2].url + "/x",
        }
        # A push is live on every pool process within its 1 s snapshot refresh; then load the
        # isolate everywhere before timing.
        time.sleep(1.5)
        for url in targets.values():
            client = load.Client(url.removesuffix("/x"))
            for _ in range(16):
                status, body, _ = client.get("/x", host=HOST)
                if status != 200:
                    raise RuntimeError(f"{url} answered {status}: {body[:200]!r}")
            client.close()
        # The server side of each target: its workerd processes (a pool's state process too).
        servers = {
            name: [p for p in pids if p is not None]
            for name, pids in zip(
                targets,
                (
                    [single.proc.pid if single.proc else None],
                    [m.pid for m in [pools[1].state, *pools[1].members] if m is not None],
                    [m.pid for m in [pools[2].state, *pools[2].members] if m is not None],
                ),
                strict=True,
            )
        }
        per_cpu_s: dict[str, list[float]] = {name: [] for name in targets}
        samples: dict[str, list[load.LoadResult]] = {name: [] for name in targets}
        lat: dict[str, list[load.LoadResult]] = {name: [] for name in targets}
        names = list(targets)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                cpu0, t0 = _cpu_s(servers[name]), time.monotonic()
                result = load.wrk(targets[name], seconds=seconds, connections=connections, host=HOST)
                cpu, elapsed = _cpu_s(servers[name]) - cpu0, time.monotonic() - t0
                samples[name].append(result)
                per_cpu_s[name].append(result.rps * elapsed / cpu if cpu > 0 else float("nan"))
                lat[name].append(load.hey(targets[name], seconds=seconds, connections=connections, host=HOST))
    finally:
        for pool in pools.values():
            pool.stop()
    med = {n: load.median([s.rps for s in samples[n]]) for n in targets}
    p50 = {n: load.median([s.p50_ms or 0 for s in lat[n]]) for n in targets}
    p99 = {n: load.median([s.p99_ms or 0 for s in lat[n]]) for n in targets}
    errors = {n: sum(s.errors for s in samples[n] + lat[n]) for n in targets}
    k1, k2, unpooled = "pool K=1", "pool K=2", names[0]
    section = Section(number="7", title="Gateway pool: K=1 vs K=2 serving processes (warm plugin)")
    for name in targets:
        section.rows.append(
            Row(
                measure=f"{name} (wrk c={connections})",
                result=rps(med[name]) + (f", {errors[name]} errors" if errors[name] else ""),
                floor=rps(med[k1]) if name == k2 else (rps(med[unpooled]) if name == k1 else ""),
                ratio=ratio(med[k2], med[k1])
                if name == k2
                else (ratio(med[k1], med[unpooled]) if name == k1 else ""),
                target=f"≥ {TARGET}x K=1" if name == k2 else "",
                verdict=verdict(med[k2] / med[k1] >= TARGET) if name == k2 else "",
            )
        )
    for name in targets:
        section.rows.append(
            Row(
                measure=f"{name} latency (hey c={connections})",
                result=f"p50 {ms(p50[name])}, p99 {ms(p99[name])}",
            )
        )
    eff = {n: load.median(per_cpu_s[n]) for n in targets}
    section.rows.append(
        Row(
            measure="server CPU efficiency (requests per CPU-second of the gateway's workerd processes)",
            result="; ".join(f"{name.split(' (')[0]} {eff[name] / 1000:.2f}k" for name in targets),
            floor=f"{eff[k1] / 1000:.2f}k",
            ratio=ratio(eff[k2], eff[k1]),
        )
    )
    cores = os.cpu_count() or 1
    section.notes.append(
        f"{rounds} interleaved round(s) of {seconds:.0f} s per target and tool; medians. {cores} cores, "
        "shared with the load generator (wrk -t1): K=2 competes with wrk for the second core, so the "
        "K=2/K=1 ratio here is a floor of what a box with a core per process plus a separate load "
        "generator gets. The K=1 row's ratio is pooled/unpooled: the cost of the dispatch lines "
        "(two synchronous stdout writes per request) and the supervisor reading them. The efficiency "
        "row divides each wrk run's requests by the utime+stime its workerd processes used meanwhile "
        "(/proc/PID/stat; a pool's state process included): a K=2/K=1 ratio near 1.0x there means each "
        "serving process does as much work per CPU-second as K=1's, so the pool scales per core and "
        "what K=2 misses is the CPU the load generator and the supervisor take on this box."
    )
    return section
