"""Isolate budget: a process past its budget of loaded isolates is replaced by a fresh one and
drained, so memory stays bounded and no request fails: every response is counted, and no client
retries anything."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.pool_helpers import Traffic, push, running_pool, text_plugin, wait_served, wait_until

pytestmark = pytest.mark.e2e
BUDGET = 40
VERSIONS = 3 * 2 * BUDGET  # 3x the budget of each of the 2 processes


def test_recycling_bounds_memory_without_failing_a_request(tmp_path: Path, gateway_secret: str) -> None:
    with running_pool(
        tmp_path, gateway_secret, processes=2, isolate_budget=BUDGET, probe_interval_s=0.25
    ) as pool:
        push(pool.url, gateway_secret, "budget-warm", 1, {"warm": ("warm.budget.test", text_plugin("warm"))})
        # One push with VERSIONS plugins, each a distinct version (a distinct isolate).
        plugins = {f"p{i}": (f"v{i}.budget.test", text_plugin(f"version {i}")) for i in range(VERSIONS)}
        push(pool.url, gateway_secret, "budget-many", 1, plugins)
        wait_served(pool, "warm.budget.test", "warm")
        wait_served(pool, f"v{VERSIONS - 1}.budget.test", f"version {VERSIONS - 1}")
        baseline = max(m.rss_bytes() or 0 for m in pool.members)

        peak_rss = 0
        peak_isolates = 0
        sampling = threading.Event()

        def sample() -> None:
            nonlocal peak_rss, peak_isolates
            while not sampling.wait(0.1):
                for m in list(pool.members):
                    peak_rss = max(peak_rss, m.rss_bytes() or 0)
                    peak_isolates = max(peak_isolates, m.isolates)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        answers: list[tuple[int | str, str]] = []
        fresh = Traffic(pool.url, "warm.budget.test", threads=2, keepalive=False)
        with fresh, Traffic(pool.url, "warm.budget.test", threads=2, keepalive=True) as traffic:
            # Version loads on one keep-alive connection: it meets every recycled process.
            with httpx.Client(timeout=30) as client:
                for i in range(VERSIONS):
                    try:
                        r = client.get(pool.url + "/", headers={"host": f"v{i}.budget.test"})
                        answers.append((r.status_code, r.text))
                    except httpx.HTTPError as exc:
                        answers.append((type(exc).__name__, str(exc)))
                    time.sleep(0.01)
            # Traffic goes on until every recycled process has exited by itself.
            wait_until(
                lambda: (
                    [e["event"] for e in pool.events].count("drained")
                    == [e["event"] for e in pool.events].count("recycled")
                ),
                30,
                "the recycled processes to exit",
            )
        sampling.set()
        sampler.join()

        assert answers == [(200, f"version {i}") for i in range(VERSIONS)]
        # Nothing fails, with clients that never re-send (docs/operations.md, "Isolate budget").
        assert fresh.failures() == []
        assert traffic.failures() == []
        assert len(fresh.results) > 100
        assert len(traffic.results) > 100
        events = [e["event"] for e in pool.events]
        assert events.count("recycled") >= 4, events
        assert "exited" not in events
        assert "hung" not in events
        # Every recycled process finished its requests and exited by itself.
        assert events.count("drained") == events.count("recycled")
        # Bounded: never far above the budget, memory never near what 3x the budget would take.
        assert peak_isolates < 2 * BUDGET, peak_isolates
        # ~1.6 MiB per idle isolate, up to ~4 MiB with heaps grown by traffic (measured here):
        # without recycling a process would hold ~3x the budget.
        assert peak_rss < baseline + 2 * BUDGET * 3 * 2**20 + 32 * 2**20, (peak_rss, baseline)
        print(
            f"budget {BUDGET}: {VERSIONS} versions, {events.count('recycled')} recycles, peak isolates "
            f"{peak_isolates}, RSS baseline {baseline / 2**20:.0f} MiB, peak {peak_rss / 2**20:.0f} MiB, "
            f"{len(fresh.results)} warm requests on new connections and {len(traffic.results)} on keep-alive "
            f"ones and {len(answers)} version loads, 0 failed, none retried"
        )
