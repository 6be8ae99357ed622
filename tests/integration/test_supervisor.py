"""The gateway pool: K workerd processes on one socket, restarted when they die."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.pool_helpers import Traffic, push, running_pool, text_plugin, wait_served, wait_until

pytestmark = pytest.mark.e2e


def _get(url: str, host: str) -> httpx.Response:
    return httpx.get(url + "/", headers={"host": host}, timeout=10)


def test_k_processes_serve_one_socket_with_the_pushed_state(tmp_path: Path, gateway_secret: str) -> None:
    with running_pool(tmp_path, gateway_secret, processes=2) as pool:
        status = pool.status()
        assert len(status["serving"]) == 2
        assert len({m["pid"] for m in status["serving"]} | {status["state"]["pid"]}) == 3
        push(pool.url, gateway_secret, "pool-a", 1, {"hello": ("hello.pool.test", text_plugin("hi"))})
        wait_served(pool, "hello.pool.test", "hi")
        with Traffic(pool.url, "hello.pool.test", threads=6, keepalive=False) as traffic:
            wait_until(lambda: len(traffic.results) >= 400, 60, "400 responses")
        assert traffic.failures() == []
        assert {body for *_, body in traffic.results} == {"hi"}
        # Both serving processes took plugin traffic (each loaded the isolate once).
        for member in pool.members:
            info = member.probe(2.0)
            assert info is not None
            assert info["dispatched"] > 0, (member.name, info)
            assert info["isolates"] == 1


def test_a_killed_process_is_replaced_and_serves_without_the_control_plane(
    tmp_path: Path, gateway_secret: str
) -> None:
    with running_pool(tmp_path, gateway_secret, processes=2) as pool:
        push(pool.url, gateway_secret, "pool-k", 1, {"hello": ("kill.pool.test", text_plugin("still here"))})
        wait_served(pool, "kill.pool.test", "still here")
        originals = [m.pid for m in pool.members]
        with Traffic(pool.url, "kill.pool.test", threads=4, keepalive=False) as traffic:
            time.sleep(0.5)
            killed_at = time.monotonic()
            os.kill(originals[0], signal.SIGKILL)
            wait_until(
                lambda: len(pool.members) == 2 and originals[0] not in [m.pid for m in pool.members],
                15,
                "a replacement for the killed process",
            )
            replaced_at = time.monotonic()
            time.sleep(1.0)
        assert replaced_at - killed_at < 5
        # Only requests in flight on the killed process at that instant may fail.
        failed = traffic.failures()
        assert len(failed) <= 4, failed
        assert all(start <= killed_at + 0.1 for start, *_ in failed), failed
        assert [e["event"] for e in pool.events if e["pid"] == originals[0]][-1] == "exited"

        # Kill the other original too: only fresh processes serve, with the state pushed before.
        os.kill(originals[1], signal.SIGKILL)
        wait_until(
            lambda: len(pool.members) == 2 and not {m.pid for m in pool.members} & set(originals),
            15,
            "both originals replaced",
        )
        wait_served(pool, "kill.pool.test", "still here")

        # The state process too: restarted on the same storage; serving goes on, pushes work.
        state_pid = pool.state.pid if pool.state else None
        assert state_pid is not None
        os.kill(state_pid, signal.SIGKILL)
        assert _get(pool.url, "kill.pool.test").text == "still here"  # served from memory
        wait_until(
            lambda: pool.state is not None and pool.state.pid != state_pid and pool.state.alive(), 15, "state"
        )
        push(pool.url, gateway_secret, "pool-k", 2, {"hello": ("kill.pool.test", text_plugin("v2"))})
        wait_served(pool, "kill.pool.test", "v2")
        # A process started now loads everything from the restarted state process.
        newest = pool.members[0].pid
        assert newest is not None
        os.kill(newest, signal.SIGKILL)
        wait_until(
            lambda: newest not in [m.pid for m in pool.members] and len(pool.members) == 2, 15, "replaced"
        )
        for _ in range(20):
            assert _get(pool.url, "kill.pool.test").text == "v2"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent has not reaped it yet).
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_stop_during_a_recycle_stops_the_old_process_too(tmp_path: Path, gateway_secret: str) -> None:
    # A recycled process left `members` before it joined the draining list; a stop() in between
    # (a CI run's pool test ending mid-recycle) never signalled it, and a process that ignores
    # SIGTERM for a while (many isolates; here: stopped) outlived the pool.
    with running_pool(tmp_path, gateway_secret, processes=1, probe_deadline_s=60.0) as pool:
        old = pool.members[0]
        assert old.pid is not None
        os.kill(old.pid, signal.SIGSTOP)  # takes no drain notice and acts on no SIGTERM
        try:
            recycle = threading.Thread(target=pool._recycle, args=(old,), daemon=True)
            recycle.start()
            wait_until(lambda: old not in pool.members, 30, "the fresh process taking over")
            pool.stop()  # while the old process is being drained
            assert not _alive(old.pid)
        finally:
            if _alive(old.pid):
                os.kill(old.pid, signal.SIGKILL)
        recycle.join(15)
